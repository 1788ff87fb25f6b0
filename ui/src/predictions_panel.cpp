#include "segscope/ui/predictions_panel.h"

#include "segscope/core/data/overlay.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/class_colors.h"
#include "segscope/ui/image_convert.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/worker.h"

#include <QtConcurrent>
#include <QtWidgets>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <unordered_set>

namespace segscope::ui {

// A graphics view whose zoom and scroll position follow its siblings.
class SyncedView : public QGraphicsView {
public:
    SyncedView() {
        setScene(new QGraphicsScene(this));
        item_ = scene()->addPixmap({});
        setDragMode(QGraphicsView::ScrollHandDrag);
        setTransformationAnchor(QGraphicsView::AnchorUnderMouse);
        setBackgroundBrush(QColor(40, 40, 40));
        setMinimumSize(160, 160);
    }
    void setImage(const QImage& image) {
        if (item_->pixmap().isNull() || item_->pixmap().size() != image.size()) zoomed_ = false;
        item_->setPixmap(QPixmap::fromImage(image));
        scene()->setSceneRect(item_->boundingRect());
        if (!zoomed_ && !image.isNull()) fitInView(item_, Qt::KeepAspectRatio);
    }
    std::vector<SyncedView*> siblings;

protected:
    void wheelEvent(QWheelEvent* event) override {
        const double factor = event->angleDelta().y() > 0 ? 1.25 : 0.8;
        for (SyncedView* view : siblings) {
            view->zoomed_ = true;
            view->scale(factor, factor);
        }
        zoomed_ = true;
        scale(factor, factor);
        event->accept();
    }
    // Until the user zooms, the image fills the pane whatever its size.
    void resizeEvent(QResizeEvent* event) override {
        QGraphicsView::resizeEvent(event);
        if (!zoomed_ && !item_->pixmap().isNull()) fitInView(item_, Qt::KeepAspectRatio);
    }
    void scrollContentsBy(int dx, int dy) override {
        QGraphicsView::scrollContentsBy(dx, dy);
        if (syncing_) return;
        for (SyncedView* view : siblings) {
            view->syncing_ = true;
            view->horizontalScrollBar()->setValue(horizontalScrollBar()->value());
            view->verticalScrollBar()->setValue(verticalScrollBar()->value());
            view->syncing_ = false;
        }
    }

private:
    QGraphicsPixmapItem* item_ = nullptr;
    bool syncing_ = false;
    bool zoomed_ = false;
};

namespace {

QString percent(const std::optional<double>& value) { return QString::fromStdString(core::formatPercent(value)); }

QIcon swatch(const core::Rgb& colour) {
    QPixmap pixmap(14, 14);
    pixmap.fill(QColor(colour.r, colour.g, colour.b));
    return QIcon(pixmap);
}

// A table item that sorts by a number (percent columns show "-" for undefined: those sort last).
class NumberItem : public QTableWidgetItem {
public:
    NumberItem(const QString& text, double value) : QTableWidgetItem(text) { setData(Qt::UserRole, value); }
    bool operator<(const QTableWidgetItem& other) const override {
        return data(Qt::UserRole).toDouble() < other.data(Qt::UserRole).toDouble();
    }
};

constexpr int kGalleryPage = 48;
constexpr int kThumbnailSide = 120;

} // namespace

std::vector<std::size_t> galleryIndices(const core::PredictionSet& set, GallerySort sort, GalleryFilter filter,
                                        int classIndex) {
    std::vector<std::size_t> order;
    switch (sort) {
    case GallerySort::MeanIouAscending: order = set.rankByMeanIou(core::SortOrder::Ascending); break;
    case GallerySort::MeanIouDescending: order = set.rankByMeanIou(core::SortOrder::Descending); break;
    case GallerySort::ClassIouAscending: order = set.rankByClassIou(classIndex, core::SortOrder::Ascending); break;
    case GallerySort::ClassIouDescending: order = set.rankByClassIou(classIndex, core::SortOrder::Descending); break;
    case GallerySort::ConfusedPixels: order = set.mostConfused(classIndex); break;
    }
    if (filter == GalleryFilter::All) return order;
    std::unordered_set<std::size_t> keep;
    if (filter == GalleryFilter::ContainsClass)
        for (std::size_t i : set.containingClass(classIndex)) keep.insert(i);
    else
        for (std::size_t i : set.mostConfused(classIndex)) keep.insert(i);
    std::vector<std::size_t> filtered;
    for (std::size_t i : order)
        if (keep.count(i)) filtered.push_back(i);
    return filtered;
}

PredictionsPanel::PredictionsPanel(QString workspace, QWidget* parent)
    : QWidget(parent), workspace_(std::move(workspace)), colors_(std::make_unique<ClassColors>(workspace_)) {
    setAcceptDrops(true);
    thumbnails_ = new QThreadPool(this);
    thumbnails_->setMaxThreadCount(1);
    auto* layout = new QVBoxLayout(this);

    auto* source = new QHBoxLayout;
    run_ = new QComboBox;
    run_->setMinimumContentsLength(40);
    run_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    checkpoint_ = new QComboBox;
    checkpoint_->setEditable(true);
    checkpoint_->addItems({QStringLiteral("best"), QStringLiteral("latest")});
    split_ = new QComboBox;
    split_->setEditable(true);
    split_->addItems({QStringLiteral("val"), QStringLiteral("train")});
    predictButton_ = new QPushButton(tr("Predict"));
    predictButton_->setStyleSheet(QStringLiteral("font-weight: bold;"));
    predictButton_->setToolTip(tr("Predict the split with the checkpoint (reopens the cached predictions when valid)"));
    cancelButton_ = new QPushButton(tr("Cancel"));
    cancelButton_->setEnabled(false);
    auto* openImage = new QPushButton(tr("Open image…"));
    openImage->setToolTip(tr("Run the model on any image file (or drop one here)"));
    progress_ = new QProgressBar;
    progress_->setRange(0, 1);
    progress_->setValue(0);
    progress_->setMaximumWidth(200);
    source->addWidget(new QLabel(tr("Run")));
    source->addWidget(run_, 1);
    source->addWidget(new QLabel(tr("Checkpoint")));
    source->addWidget(checkpoint_);
    source->addWidget(new QLabel(tr("Split")));
    source->addWidget(split_);
    source->addWidget(predictButton_);
    source->addWidget(cancelButton_);
    source->addWidget(progress_);
    source->addWidget(openImage);
    layout->addLayout(source);
    summary_ = new QLabel(tr("Pick a run and press Predict."));
    summary_->setWordWrap(true);
    layout->addWidget(summary_);

    views_ = new QTabWidget;
    layout->addWidget(views_, 1);

    // ---- Images ----
    auto* imagesPage = new QWidget;
    auto* imagesLayout = new QHBoxLayout(imagesPage);
    imageList_ = new QListWidget;
    imageList_->setMaximumWidth(230);
    imagesLayout->addWidget(imageList_);
    auto* panesColumn = new QVBoxLayout;
    auto* panes = new QHBoxLayout;
    const QStringList titles{tr("Image"), tr("Ground truth"), tr("Prediction")};
    for (int p = 0; p < 3; ++p) {
        auto* column = new QVBoxLayout;
        paneTitles_[p] = new QLabel(titles[p]);
        paneTitles_[p]->setAlignment(Qt::AlignCenter);
        paneTitles_[p]->setWordWrap(true);
        // Long titles must not widen one pane: the three stay the same size.
        paneTitles_[p]->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
        paneViews_[p] = new SyncedView;
        column->addWidget(paneTitles_[p]);
        column->addWidget(paneViews_[p], 1);
        panes->addLayout(column, 1);
    }
    for (int p = 0; p < 3; ++p)
        for (int q = 0; q < 3; ++q)
            if (p != q) paneViews_[p]->siblings.push_back(paneViews_[q]);
    panesColumn->addLayout(panes, 1);
    auto* paneControls = new QHBoxLayout;
    opacity_ = new QSlider(Qt::Horizontal);
    opacity_->setRange(0, 100);
    opacity_->setValue(55);
    errorClass_ = new QComboBox;
    errorClass_->setMinimumContentsLength(16);
    errorClass_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    auto* exportButton = new QPushButton(tr("Export overlay…"));
    paneControls->addWidget(new QLabel(tr("Opacity")));
    paneControls->addWidget(opacity_, 1);
    paneControls->addWidget(new QLabel(tr("Errors of class")));
    paneControls->addWidget(errorClass_);
    paneControls->addWidget(exportButton);
    panesColumn->addLayout(paneControls);
    auto* errorLegend = new QLabel;
    {
        QStringList parts;
        const std::pair<core::PixelOutcome, QString> outcomes[] = {{core::PixelOutcome::TruePositive, tr("TP")},
                                                                   {core::PixelOutcome::FalsePositive, tr("FP")},
                                                                   {core::PixelOutcome::FalseNegative, tr("FN")},
                                                                   {core::PixelOutcome::Ignored, tr("ignored")}};
        for (const auto& [outcome, name] : outcomes) {
            const core::Rgb c = core::outcomeColor(outcome);
            parts << QStringLiteral("<span style='background:rgb(%1,%2,%3)'>&nbsp;&nbsp;&nbsp;</span> %4")
                         .arg(c.r).arg(c.g).arg(c.b).arg(name);
        }
        errorLegend->setText(tr("Error view: ") + parts.join(QStringLiteral(" &nbsp; ")));
    }
    panesColumn->addWidget(errorLegend);
    imagesLayout->addLayout(panesColumn, 1);
    auto* legendColumn = new QVBoxLayout;
    legendColumn->addWidget(new QLabel(tr("Classes (tick to show,\ndouble-click to recolour)")));
    legend_ = new QListWidget;
    legend_->setMaximumWidth(200);
    legendColumn->addWidget(legend_, 1);
    imagesLayout->addLayout(legendColumn);
    views_->addTab(imagesPage, tr("Images"));

    // ---- Gallery ----
    auto* galleryPage = new QWidget;
    auto* galleryLayout = new QVBoxLayout(galleryPage);
    auto* galleryControls = new QHBoxLayout;
    gallerySort_ = new QComboBox;
    gallerySort_->addItems({tr("mIoU, worst first"), tr("mIoU, best first"), tr("IoU of class, worst first"),
                            tr("IoU of class, best first"), tr("Pixels where class was confused")});
    galleryFilter_ = new QComboBox;
    galleryFilter_->addItems({tr("All images"), tr("Images containing class"), tr("Images where class was confused")});
    galleryClass_ = new QComboBox;
    galleryMore_ = new QPushButton(tr("More"));
    galleryControls->addWidget(new QLabel(tr("Sort")));
    galleryControls->addWidget(gallerySort_);
    galleryControls->addWidget(new QLabel(tr("Show")));
    galleryControls->addWidget(galleryFilter_);
    galleryControls->addWidget(new QLabel(tr("Class")));
    galleryControls->addWidget(galleryClass_);
    galleryControls->addStretch(1);
    galleryControls->addWidget(galleryMore_);
    galleryLayout->addLayout(galleryControls);
    galleryView_ = new QListWidget;
    galleryView_->setViewMode(QListView::IconMode);
    galleryView_->setIconSize(QSize(kThumbnailSide, kThumbnailSide));
    galleryView_->setGridSize(QSize(kThumbnailSide + 24, kThumbnailSide + 44));
    galleryView_->setResizeMode(QListView::Adjust);
    galleryView_->setMovement(QListView::Static);
    galleryView_->setWordWrap(true);
    galleryLayout->addWidget(galleryView_, 1);
    views_->addTab(galleryPage, tr("Failure gallery"));

    // ---- Confusion ----
    auto* confusionPage = new QWidget;
    auto* confusionLayout = new QHBoxLayout(confusionPage);
    auto* matrixColumn = new QVBoxLayout;
    rowNormalised_ = new QCheckBox(tr("Row-normalised (share of each true class)"));
    confusion_ = new QTableWidget;
    confusion_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    confusion_->setSelectionMode(QAbstractItemView::SingleSelection);
    metrics_ = new QTableWidget;
    metrics_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    metrics_->setSortingEnabled(true);
    matrixColumn->addWidget(new QLabel(tr("Confusion matrix (rows: ground truth, columns: prediction); click a cell")));
    matrixColumn->addWidget(rowNormalised_);
    matrixColumn->addWidget(confusion_, 3);
    matrixColumn->addWidget(new QLabel(tr("Per-class metrics (click a header to sort)")));
    matrixColumn->addWidget(metrics_, 2);
    confusionLayout->addLayout(matrixColumn, 3);
    auto* cellColumn = new QVBoxLayout;
    cellTitle_ = new QLabel(tr("Click a cell to list its images."));
    cellTitle_->setWordWrap(true);
    cellView_ = new QListWidget;
    cellColumn->addWidget(cellTitle_);
    cellColumn->addWidget(cellView_, 1);
    confusionLayout->addLayout(cellColumn, 1);
    views_->addTab(confusionPage, tr("Confusion matrix"));

    // ---- Side by side ----
    auto* comparePage = new QWidget;
    auto* compareLayout = new QHBoxLayout(comparePage);
    auto* compareColumn = new QVBoxLayout;
    compareColumn->addWidget(new QLabel(tr("Tick 2–4 runs:")));
    compareList_ = new QListWidget;
    compareList_->setMaximumWidth(300);
    compareColumn->addWidget(compareList_, 1);
    auto* compareButton = new QPushButton(tr("Show side by side"));
    compareColumn->addWidget(compareButton);
    compareLayout->addLayout(compareColumn);
    compareGrid_ = new QWidget;
    new QGridLayout(compareGrid_);
    compareLayout->addWidget(compareGrid_, 1);
    views_->addTab(comparePage, tr("Side by side"));

    connect(predictButton_, &QPushButton::clicked, this, [this] { predict(); });
    connect(cancelButton_, &QPushButton::clicked, this, &PredictionsPanel::cancel);
    connect(openImage, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open image"), workspace_,
                                                          tr("Images (*.jpg *.jpeg *.png *.bmp)"));
        if (!path.isEmpty()) openImageFile(path);
    });
    connect(imageList_, &QListWidget::currentRowChanged, this, [this](int row) {
        if (row < 0 || !set_) return;
        highlightCell_.reset();
        showImage(std::size_t(imageList_->item(row)->data(Qt::UserRole).toULongLong()));
    });
    connect(opacity_, &QSlider::valueChanged, this, [this] { renderCurrent(); });
    connect(errorClass_, &QComboBox::currentIndexChanged, this, [this] { renderCurrent(); });
    connect(legend_, &QListWidget::itemChanged, this, [this](QListWidgetItem* item) {
        const int c = legend_->row(item);
        if (c >= 0 && std::size_t(c) < visible_.size() && visible_[std::size_t(c)] != (item->checkState() == Qt::Checked)) {
            visible_[std::size_t(c)] = item->checkState() == Qt::Checked;
            renderCurrent();
        }
    });
    connect(legend_, &QListWidget::itemDoubleClicked, this, [this](QListWidgetItem* item) {
        const int c = legend_->row(item);
        const auto classes = displayClasses();
        if (c < 0 || std::size_t(c) >= classes.size()) return;
        const core::Rgb old = classes[std::size_t(c)].color;
        const QColor chosen = QColorDialog::getColor(QColor(old.r, old.g, old.b), this, tr("Colour of %1").arg(item->text()));
        if (chosen.isValid()) setClassColor(c, chosen);
    });
    connect(exportButton, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export overlay"), workspace_, tr("PNG (*.png)"));
        if (!path.isEmpty() && !exportOverlay(path)) Q_EMIT statusMessage(tr("Could not write %1").arg(path));
    });
    const auto galleryChanged = [this] {
        setGallery(GallerySort(gallerySort_->currentIndex()), GalleryFilter(galleryFilter_->currentIndex()),
                   std::max(0, galleryClass_->currentIndex()));
    };
    connect(gallerySort_, &QComboBox::currentIndexChanged, this, galleryChanged);
    connect(galleryFilter_, &QComboBox::currentIndexChanged, this, galleryChanged);
    connect(galleryClass_, &QComboBox::currentIndexChanged, this, galleryChanged);
    connect(galleryMore_, &QPushButton::clicked, this, [this] {
        galleryShown_ += kGalleryPage;
        rebuildGallery();
    });
    connect(galleryView_, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) {
        activateGalleryItem(galleryView_->row(item));
    });
    connect(galleryView_, &QListWidget::itemClicked, this, [this](QListWidgetItem* item) {
        activateGalleryItem(galleryView_->row(item));
    });
    connect(rowNormalised_, &QCheckBox::toggled, this, [this] { rebuildConfusion(); });
    connect(confusion_, &QTableWidget::cellClicked, this, [this](int row, int column) { clickCell(row, column); });
    connect(cellView_, &QListWidget::itemClicked, this, [this](QListWidgetItem* item) { activateCellItem(cellView_->row(item)); });
    connect(compareButton, &QPushButton::clicked, this, [this] {
        QStringList ids;
        for (int row = 0; row < compareList_->count(); ++row)
            if (compareList_->item(row)->checkState() == Qt::Checked)
                ids << compareList_->item(row)->data(Qt::UserRole).toString();
        compareRuns(ids);
    });
    refreshRuns();
}

PredictionsPanel::~PredictionsPanel() {
    if (worker_) {
        worker_->cancel();
        if (QThread* thread = worker_->thread()) {
            thread->quit();
            thread->wait();
        }
    }
    ++*galleryGeneration_;
    thumbnails_->clear();
    thumbnails_->waitForDone();
}

void PredictionsPanel::refreshRuns() {
    std::vector<core::RunSummary> runs;
    try {
        runs = core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly)->listRuns();
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
    }
    const QString current = run_->currentData().toString();
    QSet<QString> checked;
    for (int row = 0; row < compareList_->count(); ++row)
        if (compareList_->item(row)->checkState() == Qt::Checked) checked << compareList_->item(row)->data(Qt::UserRole).toString();
    QSignalBlocker block(run_);
    run_->clear();
    compareList_->clear();
    for (const auto& run : runs) {
        const QString id = QString::fromStdString(run.id);
        const QString text = runLabel(run);
        run_->addItem(text, id);
        auto* item = new QListWidgetItem(text, compareList_);
        item->setData(Qt::UserRole, id);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(checked.contains(id) ? Qt::Checked : Qt::Unchecked);
    }
    const int index = run_->findData(current);
    if (index >= 0) run_->setCurrentIndex(index);
}

void PredictionsPanel::setSource(const QString& runId, const QString& checkpoint, const QString& split) {
    int index = run_->findData(runId);
    if (index < 0) {
        refreshRuns();
        index = run_->findData(runId);
    }
    if (index < 0) {
        run_->addItem(runId, runId);
        index = run_->count() - 1;
    }
    run_->setCurrentIndex(index);
    checkpoint_->setCurrentText(checkpoint);
    split_->setCurrentText(split);
}

void PredictionsPanel::startWorker(
    std::function<void(const std::atomic<bool>&, const std::function<void(qint64, qint64)>&)> task,
    std::function<void(const QString&)> done) {
    worker_ = TaskWorker::start(std::move(task), this);
    predictButton_->setEnabled(false);
    cancelButton_->setEnabled(true);
    progress_->setRange(0, 0);
    connect(worker_, &TaskWorker::progress, this, [this](qint64 value, qint64 total) {
        progress_->setRange(0, int(std::max<qint64>(1, total)));
        progress_->setValue(int(value));
    });
    connect(worker_, &TaskWorker::finished, this, [this, done](const QString& error) {
        worker_ = nullptr;
        predictButton_->setEnabled(true);
        cancelButton_->setEnabled(false);
        progress_->setRange(0, 1);
        progress_->setValue(error.isEmpty() ? 1 : 0);
        done(error);
    });
}

bool PredictionsPanel::predict(bool force) {
    if (worker_) return false;
    const QString runId = run_->currentData().toString();
    if (runId.isEmpty()) {
        Q_EMIT statusMessage(tr("No run chosen."));
        return false;
    }
    const std::string workspace = workspace_.toStdString(), id = runId.toStdString();
    const std::string checkpoint = checkpoint_->currentText().toStdString(), split = split_->currentText().toStdString();
    auto result = std::make_shared<core::SplitPrediction>();
    auto loaded = std::make_shared<std::shared_ptr<core::LoadedRun>>();
    summary_->setText(tr("Predicting %1 (%2, %3)…").arg(runId, checkpoint_->currentText(), split_->currentText()));
    startWorker(
        [=](const std::atomic<bool>& cancel, const std::function<void(qint64, qint64)>& progress) {
            auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
            const auto record = store->run(id);
            if (!record) throw core::Error("unknown run " + id);
            // The cache is checked from the key alone, so a valid cache opens without the model.
            if (!force) {
                const core::PredictionKey key = core::predictionKey(*store, id, checkpoint, split);
                core::CacheLookup lookup = core::openPredictions(core::predictionFolder(record->folder, key.checkpoint, split), key);
                if (lookup.set) {
                    result->set = std::move(lookup.set);
                    result->fromCache = true;
                    return;
                }
            }
            *loaded = std::make_shared<core::LoadedRun>(core::loadRun(*store, id, checkpoint));
            core::PredictionOptions options;
            options.force = force;
            options.cancel = &cancel;
            options.progress = [&](std::size_t done, std::size_t total) { progress(qint64(done), qint64(total)); };
            *result = core::predictSplit(**loaded, record->folder, split, options);
        },
        [=](const QString& error) {
            if (*loaded) {
                loadedRun_ = *loaded;
                loadedKey_ = runId + QLatin1Char('|') + QString::fromStdString(checkpoint);
            }
            if (!error.isEmpty() || !result->set) {
                const QString text = error == QStringLiteral("cancelled") || result->cancelled
                                         ? tr("Prediction cancelled; the cache was left as it was.")
                                         : tr("Prediction failed: %1").arg(error);
                summary_->setText(text);
                Q_EMIT statusMessage(text);
                return;
            }
            lastFromCache_ = result->fromCache;
            const QString label = QStringLiteral("%1 · %2 · %3").arg(runId, QString::fromStdString(checkpoint),
                                                                   QString::fromStdString(split));
            setPredictions(std::move(*result->set), label);
        });
    return true;
}

void PredictionsPanel::cancel() {
    if (worker_) worker_->cancel();
}

void PredictionsPanel::setPredictions(core::PredictionSet set, const QString& label) {
    set_ = std::make_shared<const core::PredictionSet>(std::move(set));
    setLabel_ = label;
    predictionsChanged();
}

std::vector<core::ClassInfo> PredictionsPanel::displayClasses() const {
    return set_ ? colors_->apply(set_->classInfo()) : std::vector<core::ClassInfo>{};
}

void PredictionsPanel::predictionsChanged() {
    const core::PredictionSet& set = *set_;
    const core::SegmentationMetrics metrics = set.metrics();
    summary_->setText(tr("%1: %2 images%3 · at their original size: mIoU %4 · aAcc %5 · mAcc %6 · cache %7")
                          .arg(setLabel_.isEmpty() ? tr("predictions") : setLabel_)
                          .arg(set.size())
                          .arg(lastFromCache_ ? tr(" (reopened from the cache)") : QString())
                          .arg(percent(metrics.mIoU), percent(metrics.aAcc), percent(metrics.mAcc),
                               QString::fromStdString(set.folder().string())));
    visible_.assign(std::size_t(set.classes()), true);
    // A black background class (VOC, the demo) only darkens the overlay: hidden until ticked.
    if (set.classes() > 1 && set.classInfo()[0].color.r == 0 && set.classInfo()[0].color.g == 0 &&
        set.classInfo()[0].color.b == 0)
        visible_[0] = false;
    externalImage_.release();
    externalPrediction_.release();
    rebuildLegend();
    {
        QSignalBlocker a(errorClass_), b(galleryClass_);
        errorClass_->clear();
        errorClass_->addItem(tr("(none: prediction overlay)"));
        galleryClass_->clear();
        for (const auto& name : set.classNames()) {
            errorClass_->addItem(QString::fromStdString(name));
            galleryClass_->addItem(QString::fromStdString(name));
        }
        galleryClass_->setCurrentIndex(set.classes() > 1 ? 1 : 0);
    }
    {
        QSignalBlocker block(imageList_);
        imageList_->clear();
        for (std::size_t i = 0; i < set.size(); ++i) {
            auto* item = new QListWidgetItem(QStringLiteral("%1  (%2)").arg(QString::fromStdString(set.image(i).id),
                                                                          percent(set.imageMeanIou(i))),
                                             imageList_);
            item->setData(Qt::UserRole, qulonglong(i));
        }
    }
    current_.reset();
    highlightCell_.reset();
    cellImages_.clear();
    cellView_->clear();
    rebuildConfusion();
    setGallery(GallerySort(gallerySort_->currentIndex()), GalleryFilter(galleryFilter_->currentIndex()),
               std::max(0, galleryClass_->currentIndex()));
    if (set.size() > 0) showImage(gallery_.empty() ? 0 : gallery_.front());
    Q_EMIT predictionsReady();
}

void PredictionsPanel::rebuildLegend() {
    QSignalBlocker block(legend_);
    legend_->clear();
    const auto classes = displayClasses();
    for (std::size_t c = 0; c < classes.size(); ++c) {
        auto* item = new QListWidgetItem(swatch(classes[c].color), QString::fromStdString(classes[c].name), legend_);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(c < visible_.size() && visible_[c] ? Qt::Checked : Qt::Unchecked);
    }
}

QImage PredictionsPanel::renderLabels(const cv::Mat& rgb, const cv::Mat& labels) const {
    if (labels.empty() || labels.size() != rgb.size()) return toQImage(rgb);
    const auto classes = displayClasses();
    core::LabelColours colours;
    for (std::size_t c = 0; c < classes.size() && c < visible_.size() && c < colours.size(); ++c)
        if (visible_[c]) colours[c] = classes[c].color;
    return toQImage(core::blendLabels(rgb, labels, colours, opacity_->value() / 100.0));
}

void PredictionsPanel::showImage(std::size_t index) {
    if (!set_ || index >= set_->size()) return;
    current_ = index;
    externalImage_.release();
    externalPrediction_.release();
    for (int row = 0; row < imageList_->count(); ++row)
        if (imageList_->item(row)->data(Qt::UserRole).toULongLong() == index) {
            QSignalBlocker block(imageList_);
            imageList_->setCurrentRow(row);
        }
    views_->setCurrentIndex(0);
    renderCurrent();
    rebuildComparison();
}

void PredictionsPanel::renderCurrent() {
    cv::Mat rgb, prediction, truth;
    QString title;
    try {
        if (!externalImage_.empty()) {
            rgb = externalImage_;
            prediction = externalPrediction_;
            title = QFileInfo(externalPath_).fileName();
        } else if (set_ && current_) {
            rgb = set_->loadImage(*current_);
            prediction = set_->loadPrediction(*current_);
            truth = set_->loadGroundTruth(*current_);
            title = QString::fromStdString(set_->image(*current_).id);
            if (rgb.size() != prediction.size()) cv::resize(rgb, rgb, prediction.size(), 0, 0, cv::INTER_LINEAR);
        } else {
            return;
        }
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
        return;
    }
    imageImage_ = toQImage(rgb);
    groundTruthImage_ = truth.empty() ? QImage() : renderLabels(rgb, truth);
    const int errorClass = errorClass_->currentIndex() - 1;
    const double alpha = opacity_->value() / 100.0;
    QString predictionTitle = tr("Prediction");
    if (highlightCell_ && !truth.empty()) {
        const auto [i, j] = *highlightCell_;
        const cv::Mat mask = core::cellMask(prediction, truth, i, j);
        core::LabelColours magenta;
        magenta[255] = core::Rgb{255, 0, 255};
        predictionImage_ = toQImage(core::blendLabels(rgb, mask, magenta, alpha));
        const auto names = set_->classNames();
        predictionTitle = tr("Pixels of true %1 predicted as %2: %3")
                              .arg(QString::fromStdString(names[std::size_t(i)]), QString::fromStdString(names[std::size_t(j)]))
                              .arg(cv::countNonZero(mask));
    } else if (errorClass >= 0 && !truth.empty()) {
        const cv::Mat outcomes = core::errorMap(prediction, truth, errorClass);
        predictionImage_ = toQImage(core::overlayErrorMap(rgb, outcomes, alpha));
        predictionTitle = tr("Errors of %1 (TP green, FP red, FN blue, ignored white)").arg(errorClass_->currentText());
    } else {
        predictionImage_ = renderLabels(rgb, prediction);
    }
    paneTitles_[0]->setText(title);
    paneTitles_[1]->setText(truth.empty() ? tr("Ground truth (none for this image)")
                                          : tr("Ground truth · image mIoU %1").arg(percent(set_->imageMeanIou(*current_))));
    paneTitles_[2]->setText(predictionTitle);
    paneViews_[0]->setImage(imageImage_);
    paneViews_[1]->setImage(groundTruthImage_.isNull() ? imageImage_ : groundTruthImage_);
    paneViews_[2]->setImage(predictionImage_);
}

void PredictionsPanel::setOpacity(double opacity) { opacity_->setValue(int(std::lround(opacity * 100))); }

void PredictionsPanel::setErrorClass(int c) { errorClass_->setCurrentIndex(c + 1); }

void PredictionsPanel::setClassVisible(int c, bool visible) {
    if (c < 0 || c >= legend_->count()) return;
    legend_->item(c)->setCheckState(visible ? Qt::Checked : Qt::Unchecked);
}

bool PredictionsPanel::setClassColor(int c, const QColor& color) {
    if (!set_ || c < 0 || c >= set_->classes()) return false;
    if (!colors_->setColor(QString::fromStdString(set_->classNames()[std::size_t(c)]), color)) {
        Q_EMIT statusMessage(tr("Class colour not saved: %1").arg(colors_->error()));
        return false;
    }
    rebuildLegend();
    renderCurrent();
    rebuildGallery();
    rebuildComparison();
    return true;
}

bool PredictionsPanel::exportOverlay(const QString& path) const {
    return !predictionImage_.isNull() && predictionImage_.save(path, "PNG");
}

bool PredictionsPanel::openImageFile(const QString& path) {
    if (worker_) return false;
    const QString runId = run_->currentData().toString();
    if (runId.isEmpty()) {
        Q_EMIT statusMessage(tr("Choose a run whose model should predict the image."));
        return false;
    }
    const QString key = runId + QLatin1Char('|') + checkpoint_->currentText();
    std::shared_ptr<core::LoadedRun> cached = key == loadedKey_ ? loadedRun_ : nullptr;
    const std::string workspace = workspace_.toStdString(), id = runId.toStdString();
    const std::string checkpoint = checkpoint_->currentText().toStdString();
    auto loaded = std::make_shared<std::shared_ptr<core::LoadedRun>>(cached);
    auto image = std::make_shared<cv::Mat>();
    auto labels = std::make_shared<cv::Mat>();
    const std::string file = path.toStdString();
    startWorker(
        [=](const std::atomic<bool>&, const std::function<void(qint64, qint64)>&) {
            if (!*loaded) {
                auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
                *loaded = std::make_shared<core::LoadedRun>(core::loadRun(*store, id, checkpoint));
            }
            *image = core::readImageRgb(file);
            *labels = core::predictImage(*(*loaded)->model, *image, core::transformConfig((*loaded)->experiment),
                                         (*loaded)->device);
        },
        [=](const QString& error) {
            if (*loaded) {
                loadedRun_ = *loaded;
                loadedKey_ = key;
            }
            if (!error.isEmpty()) {
                Q_EMIT statusMessage(tr("Cannot predict %1: %2").arg(path, error));
                return;
            }
            if (!set_) {
                // Legend and colours come from the run's classes when no split was predicted yet.
                core::PredictionKey none;
                none.classes = int((*loaded)->classInfo.size());
                set_ = std::make_shared<const core::PredictionSet>(none, (*loaded)->classInfo,
                                                                   std::vector<core::PredictionImage>{},
                                                                   std::vector<std::int64_t>{});
                visible_.assign((*loaded)->classInfo.size(), true);
                rebuildLegend();
            }
            externalImage_ = *image;
            externalPrediction_ = *labels;
            externalPath_ = path;
            current_.reset();
            highlightCell_.reset();
            views_->setCurrentIndex(0);
            renderCurrent();
            Q_EMIT imagePredicted(path);
        });
    return true;
}

void PredictionsPanel::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void PredictionsPanel::dropEvent(QDropEvent* event) {
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile()) {
            openImageFile(url.toLocalFile());
            return;
        }
}

void PredictionsPanel::setGallery(GallerySort sort, GalleryFilter filter, int classIndex) {
    {
        QSignalBlocker a(gallerySort_), b(galleryFilter_), c(galleryClass_);
        gallerySort_->setCurrentIndex(int(sort));
        galleryFilter_->setCurrentIndex(int(filter));
        if (classIndex < galleryClass_->count()) galleryClass_->setCurrentIndex(classIndex);
    }
    gallery_.clear();
    if (set_ && set_->classes() > 0 && classIndex >= 0 && classIndex < set_->classes())
        gallery_ = galleryIndices(*set_, sort, filter, classIndex);
    galleryShown_ = kGalleryPage;
    rebuildGallery();
}

void PredictionsPanel::rebuildGallery() {
    galleryView_->clear();
    const quint64 generation = ++*galleryGeneration_;
    if (!set_) return;
    const int shown = std::min<int>(galleryShown_, int(gallery_.size()));
    galleryMore_->setEnabled(shown < int(gallery_.size()));
    galleryMore_->setText(tr("More (%1 of %2 shown)").arg(shown).arg(gallery_.size()));
    const int classIndex = std::max(0, galleryClass_->currentIndex());
    const bool classSort = gallerySort_->currentIndex() >= int(GallerySort::ClassIouAscending);
    const auto names = set_->classNames();
    std::vector<std::size_t> page(gallery_.begin(), gallery_.begin() + shown);
    for (std::size_t index : page) {
        QString text = QString::fromStdString(set_->image(index).id) + QLatin1Char('\n');
        if (gallerySort_->currentIndex() == int(GallerySort::ConfusedPixels))
            text += tr("%1 px confused").arg(set_->confusedPixels(index, classIndex));
        else if (classSort)
            text += tr("%1 IoU %2").arg(QString::fromStdString(names[std::size_t(classIndex)]),
                                        percent(set_->imageClassIou(index, classIndex)));
        else
            text += tr("mIoU %1").arg(percent(set_->imageMeanIou(index)));
        auto* item = new QListWidgetItem(text, galleryView_);
        item->setData(Qt::UserRole, qulonglong(index));
        item->setTextAlignment(Qt::AlignHCenter | Qt::AlignTop);
    }
    // Thumbnails are drawn off the GUI thread, a page at a time: the masks stay on disk.
    const std::shared_ptr<const core::PredictionSet> set = set_;
    const auto classes = displayClasses();
    const std::vector<bool> visible = visible_;
    // The panel outlives the task: its destructor waits for the pool.
    PredictionsPanel* self = this;
    const auto current = galleryGeneration_;
    (void)QtConcurrent::run(thumbnails_, [self, current, set, classes, visible, page, generation] {
        for (std::size_t position = 0; position < page.size(); ++position) {
            if (*current != generation) return;
            QImage thumbnail;
            try {
                cv::Mat rgb = set->loadImage(page[position]);
                cv::Mat labels = set->loadPrediction(page[position]);
                if (rgb.size() != labels.size()) cv::resize(rgb, rgb, labels.size());
                const double scale = double(kThumbnailSide) / std::max(rgb.cols, rgb.rows);
                const cv::Size size(std::max(1, int(rgb.cols * scale)), std::max(1, int(rgb.rows * scale)));
                cv::resize(rgb, rgb, size, 0, 0, cv::INTER_AREA);
                cv::resize(labels, labels, size, 0, 0, cv::INTER_NEAREST);
                for (int y = 0; y < labels.rows; ++y)
                    for (int x = 0; x < labels.cols; ++x) {
                        const std::size_t c = labels.at<std::uint8_t>(y, x);
                        if (c >= classes.size() || c >= visible.size() || !visible[c]) continue;
                        auto& p = rgb.at<cv::Vec3b>(y, x);
                        p = cv::Vec3b(uchar((p[0] + classes[c].color.r) / 2), uchar((p[1] + classes[c].color.g) / 2),
                                      uchar((p[2] + classes[c].color.b) / 2));
                    }
                thumbnail = toQImage(rgb);
            } catch (const std::exception&) {
                continue;  // the item keeps its text; opening it reports the error
            }
            QMetaObject::invokeMethod(
                self,
                [self, current, generation, position, thumbnail] {
                    if (*current != generation) return;
                    if (QListWidgetItem* item = self->galleryView_->item(int(position)))
                        item->setIcon(QIcon(QPixmap::fromImage(thumbnail)));
                },
                Qt::QueuedConnection);
        }
    });
}

void PredictionsPanel::activateGalleryItem(int row) {
    if (row < 0 || row >= galleryView_->count()) return;
    highlightCell_.reset();
    showImage(std::size_t(galleryView_->item(row)->data(Qt::UserRole).toULongLong()));
}

void PredictionsPanel::setRowNormalised(bool on) { rowNormalised_->setChecked(on); }

void PredictionsPanel::rebuildConfusion() {
    confusion_->clear();
    metrics_->setSortingEnabled(false);
    metrics_->clear();
    if (!set_) return;
    const int k = set_->classes();
    const auto names = set_->classNames();
    QStringList headers;
    for (const auto& n : names) headers << QString::fromStdString(n);
    confusion_->setRowCount(k);
    confusion_->setColumnCount(k);
    confusion_->setHorizontalHeaderLabels(headers);
    confusion_->setVerticalHeaderLabels(headers);
    const core::ConfusionMatrix& totals = set_->totals();
    const bool normalised = rowNormalised_->isChecked();
    std::int64_t maximum = 1;
    for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j) maximum = std::max(maximum, totals.count(i, j));
    for (int i = 0; i < k; ++i) {
        const std::int64_t row = totals.groundTruthPixels(i);
        for (int j = 0; j < k; ++j) {
            const std::int64_t n = totals.count(i, j);
            const double share = row > 0 ? double(n) / double(row) : 0.0;
            const double heat = normalised ? share : std::log1p(double(n)) / std::log1p(double(maximum));
            auto* item = new QTableWidgetItem(normalised ? QStringLiteral("%1%").arg(100.0 * share, 0, 'f', 1)
                                                         : QLocale().toString(qlonglong(n)));
            item->setTextAlignment(Qt::AlignCenter);
            // White to dark blue; diagonal cells in green so errors stand out.
            const int level = int(std::lround(255 * (1.0 - 0.85 * heat)));
            item->setBackground(i == j ? QColor(level, 255 - int(0.35 * (255 - level)), level) : QColor(level, level, 255));
            item->setForeground(heat > 0.55 ? Qt::white : Qt::black);
            item->setToolTip(tr("true %1 predicted as %2: %3 pixels (%4% of the true class)")
                                 .arg(headers[i], headers[j])
                                 .arg(n)
                                 .arg(100.0 * share, 0, 'f', 2));
            confusion_->setItem(i, j, item);
        }
    }
    confusion_->resizeColumnsToContents();

    const core::SegmentationMetrics m = set_->metrics();
    const QStringList columns{tr("Class"), tr("IoU"), tr("Acc"), tr("Dice"), tr("Precision"), tr("Recall"), tr("Pixel share")};
    metrics_->setColumnCount(columns.size());
    metrics_->setHorizontalHeaderLabels(columns);
    metrics_->setRowCount(int(m.perClass.size()));
    for (int r = 0; r < int(m.perClass.size()); ++r) {
        const core::ClassMetrics& c = m.perClass[std::size_t(r)];
        metrics_->setItem(r, 0, new QTableWidgetItem(QString::fromStdString(c.name)));
        const std::optional<double> values[] = {c.iou, c.acc, c.dice, c.precision, c.recall, c.pixelShare};
        for (int col = 0; col < 6; ++col)
            metrics_->setItem(r, col + 1, new NumberItem(percent(values[col]), values[col].value_or(-1.0)));
    }
    metrics_->resizeColumnsToContents();
    metrics_->setSortingEnabled(true);
}

void PredictionsPanel::clickCell(int target, int prediction) {
    if (!set_ || target < 0 || prediction < 0 || target >= set_->classes() || prediction >= set_->classes()) return;
    cellImages_ = set_->imagesForCell(target, prediction);
    const auto names = set_->classNames();
    cellTitle_->setText(tr("True %1 predicted as %2: %n image(s), most pixels first", "", int(cellImages_.size()))
                            .arg(QString::fromStdString(names[std::size_t(target)]),
                                 QString::fromStdString(names[std::size_t(prediction)])));
    cellView_->clear();
    for (std::size_t index : cellImages_) {
        auto* item = new QListWidgetItem(tr("%1 — %2 px").arg(QString::fromStdString(set_->image(index).id))
                                             .arg(set_->count(index, target, prediction)),
                                         cellView_);
        item->setData(Qt::UserRole, qulonglong(index));
    }
    highlightCell_ = std::make_pair(target, prediction);
}

void PredictionsPanel::activateCellItem(int row) {
    if (row < 0 || row >= cellView_->count()) return;
    const auto cell = highlightCell_;
    highlightCell_.reset();
    showImage(std::size_t(cellView_->item(row)->data(Qt::UserRole).toULongLong()));
    highlightCell_ = cell;
    renderCurrent();  // the prediction pane now highlights the cell's pixels
}

bool PredictionsPanel::compareRuns(const QStringList& runIds) {
    if (worker_) return false;
    if (runIds.size() < 2 || runIds.size() > 4) {
        Q_EMIT statusMessage(tr("Tick 2 to 4 runs to compare."));
        return false;
    }
    for (int row = 0; row < compareList_->count(); ++row)
        compareList_->item(row)->setCheckState(runIds.contains(compareList_->item(row)->data(Qt::UserRole).toString())
                                                   ? Qt::Checked
                                                   : Qt::Unchecked);
    const std::string workspace = workspace_.toStdString(), split = split_->currentText().toStdString();
    const std::string checkpoint = checkpoint_->currentText().toStdString();
    std::vector<std::string> ids;
    for (const QString& id : runIds) ids.push_back(id.toStdString());
    auto sets = std::make_shared<std::vector<std::shared_ptr<const core::PredictionSet>>>();
    startWorker(
        [=](const std::atomic<bool>& cancel, const std::function<void(qint64, qint64)>& progress) {
            auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
            for (std::size_t r = 0; r < ids.size(); ++r) {
                if (cancel) throw TaskCancelled{};
                const auto record = store->run(ids[r]);
                if (!record) throw core::Error("unknown run " + ids[r]);
                const core::PredictionKey key = core::predictionKey(*store, ids[r], checkpoint, split);
                core::CacheLookup lookup = core::openPredictions(core::predictionFolder(record->folder, key.checkpoint, split), key);
                if (!lookup.set) {
                    const core::LoadedRun loaded = core::loadRun(*store, ids[r], checkpoint);
                    core::PredictionOptions options;
                    options.cancel = &cancel;
                    core::SplitPrediction prediction = core::predictSplit(loaded, record->folder, split, options);
                    if (!prediction.set) throw TaskCancelled{};
                    lookup.set = std::move(prediction.set);
                }
                sets->push_back(std::make_shared<const core::PredictionSet>(std::move(*lookup.set)));
                progress(qint64(r + 1), qint64(ids.size()));
            }
        },
        [=](const QString& error) {
            if (!error.isEmpty()) {
                Q_EMIT statusMessage(tr("Side by side: %1").arg(error));
                return;
            }
            compareSets_.clear();
            for (std::size_t r = 0; r < sets->size(); ++r) compareSets_.emplace_back(runIds[int(r)], (*sets)[r]);
            if (!set_ && !compareSets_.empty()) {
                set_ = compareSets_.front().second;
                predictionsChanged();
            }
            rebuildComparison();
            views_->setCurrentIndex(3);
            Q_EMIT comparisonReady();
        });
    return true;
}

void PredictionsPanel::rebuildComparison() {
    auto* grid = static_cast<QGridLayout*>(compareGrid_->layout());
    while (QLayoutItem* item = grid->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    if (compareSets_.empty() || !set_) return;
    std::string id;
    if (current_) id = set_->image(*current_).id;
    else if (set_->size() > 0) id = set_->image(0).id;
    // The ground truth first, then each run's prediction.
    const int cells = int(compareSets_.size()) + 1;
    const int columns = cells > 3 ? (cells + 1) / 2 : cells;
    {
        auto* cell = new QWidget;
        auto* cellLayout = new QVBoxLayout(cell);
        auto* title = new QLabel;
        auto* picture = new QLabel;
        picture->setAlignment(Qt::AlignCenter);
        picture->setMinimumSize(200, 160);
        picture->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Ignored);
        try {
            const std::size_t index = current_ ? *current_ : 0;
            cv::Mat rgb = set_->loadImage(index);
            const cv::Mat truth = set_->loadGroundTruth(index);
            if (rgb.size() != truth.size()) cv::resize(rgb, rgb, truth.size());
            picture->setPixmap(QPixmap::fromImage(renderLabels(rgb, truth)).scaled(360, 300, Qt::KeepAspectRatio,
                                                                                    Qt::SmoothTransformation));
            title->setText(tr("<b>Ground truth</b><br>%1").arg(QString::fromStdString(id)));
        } catch (const std::exception& error) {
            title->setText(QString::fromStdString(error.what()));
        }
        cellLayout->addWidget(title);
        cellLayout->addWidget(picture, 1);
        grid->addWidget(cell, 0, 0);
    }
    for (std::size_t r = 0; r < compareSets_.size(); ++r) {
        const auto& [runId, set] = compareSets_[r];
        auto* cell = new QWidget;
        auto* cellLayout = new QVBoxLayout(cell);
        auto* title = new QLabel;
        title->setWordWrap(true);
        auto* picture = new QLabel;
        picture->setAlignment(Qt::AlignCenter);
        picture->setMinimumSize(200, 160);
        picture->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Ignored);
        picture->setObjectName(QStringLiteral("side-by-side-%1").arg(r));
        std::optional<std::size_t> index;
        for (std::size_t i = 0; i < set->size(); ++i)
            if (set->image(i).id == id) index = i;
        QString model;
        try {
            if (const auto record = core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly)->run(runId.toStdString()))
                model = QString::fromStdString(record->model);
        } catch (const std::exception&) {
        }
        if (!index) {
            title->setText(tr("%1 (%2): image %3 is not in its split").arg(model, runId, QString::fromStdString(id)));
        } else {
            try {
                cv::Mat rgb = set->loadImage(*index);
                const cv::Mat labels = set->loadPrediction(*index);
                if (rgb.size() != labels.size()) cv::resize(rgb, rgb, labels.size());
                const QImage image = renderLabels(rgb, labels);
                picture->setPixmap(QPixmap::fromImage(image).scaled(360, 300, Qt::KeepAspectRatio, Qt::SmoothTransformation));
                title->setText(tr("<b>%1</b> · %2<br>%3 · image mIoU %4 · split mIoU %5")
                                   .arg(model, runId, QString::fromStdString(id), percent(set->imageMeanIou(*index)),
                                        percent(set->metrics().mIoU)));
            } catch (const std::exception& error) {
                title->setText(QString::fromStdString(error.what()));
            }
        }
        cellLayout->addWidget(title);
        cellLayout->addWidget(picture, 1);
        grid->addWidget(cell, int(r + 1) / columns, int(r + 1) % columns);
    }
}

} // namespace segscope::ui
