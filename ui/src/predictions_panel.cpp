#include "segscope/ui/predictions_panel.h"

#include "prediction_text.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/class_colors.h"
#include "segscope/ui/confusion_view.h"
#include "segscope/ui/prediction_images_view.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/side_by_side_view.h"
#include "segscope/ui/worker.h"

#include <QtWidgets>

#include <algorithm>

namespace segscope::ui {
namespace {

// The summary line: its text, then the cache folder on a line of its own, elided in the middle
// to the label's width so it never wraps mid-path; the full text is the tooltip.
class SummaryLabel : public QLabel {
public:
    using QLabel::QLabel;
    void setSummary(const QString& text, const QString& path) {
        text_ = text;
        path_ = path;
        setToolTip(text + QLatin1Char(' ') + path);
        elide();
    }

protected:
    void resizeEvent(QResizeEvent* event) override {
        QLabel::resizeEvent(event);
        if (!path_.isEmpty() && text() == shown_) elide();  // not if someone else set the text since
    }

private:
    void elide() {
        const int room = std::max(80, contentsRect().width() - 2 * margin() - 4);
        shown_ = text_ + QLatin1Char('\n') + fontMetrics().elidedText(path_, Qt::ElideMiddle, room);
        setText(shown_);
    }
    QString text_, path_, shown_;
};

}  // namespace

PredictionsPanel::PredictionsPanel(QString workspace, QWidget* parent)
    : QWidget(parent), workspace_(std::move(workspace)), colors_(std::make_unique<ClassColors>(workspace_)) {
    setAcceptDrops(true);
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
    summary_ = new SummaryLabel(tr("Pick a run and press Predict."));
    summary_->setWordWrap(true);
    layout->addWidget(summary_);

    views_ = new QTabWidget;
    layout->addWidget(views_, 1);

    images_ = new PredictionImagesView(workspace_);
    views_->addTab(images_, tr("Images"));
    gallery_ = new FailureGallery;
    views_->addTab(gallery_, tr("Failure gallery"));
    confusion_ = new ConfusionView;
    views_->addTab(confusion_, tr("Confusion matrix"));
    sideBySide_ = new SideBySideView;
    views_->addTab(sideBySide_, tr("Side by side"));

    connect(predictButton_, &QPushButton::clicked, this, [this] { predict(); });
    connect(cancelButton_, &QPushButton::clicked, this, &PredictionsPanel::cancel);
    connect(openImage, &QPushButton::clicked, this, [this] {
        const QString path =
            QFileDialog::getOpenFileName(this, tr("Open image"), workspace_, tr("Images (*.jpg *.jpeg *.png *.bmp)"));
        if (!path.isEmpty()) openImageFile(path);
    });
    connect(images_, &PredictionImagesView::imageChosen, this, [this](int index) { showImage(std::size_t(index)); });
    connect(images_, &PredictionImagesView::recolourRequested, this,
            [this](int c, const QColor& color) { setClassColor(c, color); });
    connect(images_, &PredictionImagesView::statusMessage, this, &PredictionsPanel::statusMessage);
    connect(gallery_, &FailureGallery::imageActivated, this, [this](int index) { showImage(std::size_t(index)); });
    connect(confusion_, &ConfusionView::cellImageActivated, this, [this](int index, int target, int prediction) {
        showImage(std::size_t(index), std::make_pair(target, prediction));
    });
    connect(sideBySide_, &SideBySideView::compareRequested, this, [this](const QStringList& ids) { compareRuns(ids); });
    // The error class chosen for one run's predictions does not carry over to another run.
    connect(run_, &QComboBox::currentIndexChanged, this, [this] { images_->setErrorClass(-1); });
    refreshRuns();
}

PredictionsPanel::~PredictionsPanel() {
    Worker::cancelAndWait(worker_);
}

void PredictionsPanel::refreshRuns() {
    std::vector<core::RunSummary> runs;
    try {
        runs = core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly)->listRuns();
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
    }
    const QString current = run_->currentData().toString();
    QSignalBlocker block(run_);
    run_->clear();
    for (const auto& run : runs) run_->addItem(runLabel(run), QString::fromStdString(run.id));
    sideBySide_->setRuns(runs);
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
    const std::string checkpoint = checkpoint_->currentText().toStdString(),
                      split = split_->currentText().toStdString();
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
                core::CacheLookup lookup =
                    core::openPredictions(core::predictionFolder(record->folder, key.checkpoint, split), key);
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
            const QString label = QStringLiteral("%1 · %2 · %3")
                                      .arg(runId, QString::fromStdString(checkpoint), QString::fromStdString(split));
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
    static_cast<SummaryLabel*>(summary_)->setSummary(
        tr("%1: %2 images%3 · at their original size: mIoU %4 · aAcc %5 · mAcc %6 · cache:")
            .arg(setLabel_.isEmpty() ? tr("predictions") : setLabel_)
            .arg(set.size())
            .arg(lastFromCache_ ? tr(" (reopened from the cache)") : QString())
            .arg(percentText(metrics.mIoU), percentText(metrics.aAcc), percentText(metrics.mAcc)),
        QString::fromStdString(set.folder().string()));
    images_->setPredictions(set_, displayClasses());
    confusion_->setPredictions(set_);
    gallery_->setPredictions(set_, images_->style());
    if (set.size() > 0) showImage(galleryList().empty() ? 0 : galleryList().front());
    Q_EMIT predictionsReady();
}

void PredictionsPanel::showImage(std::size_t index) {
    showImage(index, std::nullopt);
}

void PredictionsPanel::showImage(std::size_t index, std::optional<std::pair<int, int>> cell) {
    if (!set_ || index >= set_->size()) return;
    images_->showImage(index, cell);
    views_->setCurrentIndex(0);
    rebuildComparison();
}

std::optional<std::size_t> PredictionsPanel::currentImage() const {
    return images_->currentImage();
}
void PredictionsPanel::setOpacity(double opacity) {
    images_->setOpacity(opacity);
}
void PredictionsPanel::setErrorClass(int c) {
    images_->setErrorClass(c);
}
void PredictionsPanel::setClassVisible(int c, bool visible) {
    images_->setClassVisible(c, visible);
}
QImage PredictionsPanel::predictionPane() const {
    return images_->predictionPane();
}
QImage PredictionsPanel::groundTruthPane() const {
    return images_->groundTruthPane();
}
bool PredictionsPanel::exportOverlay(const QString& path) const {
    return images_->exportOverlay(path);
}

bool PredictionsPanel::setClassColor(int c, const QColor& color) {
    if (!set_ || c < 0 || c >= set_->classes()) return false;
    if (!colors_->setColor(QString::fromStdString(set_->classNames()[std::size_t(c)]), color)) {
        Q_EMIT statusMessage(tr("Class colour not saved: %1").arg(colors_->error()));
        return false;
    }
    images_->setClasses(displayClasses());
    gallery_->setStyle(images_->style());
    rebuildComparison();
    return true;
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
                set_ = std::make_shared<const core::PredictionSet>(
                    none, (*loaded)->classInfo, std::vector<core::PredictionImage>{}, std::vector<std::int64_t>{});
                images_->setPredictions(set_, displayClasses(), /*showAll=*/true);
            }
            images_->showExternal(*image, *labels, path);
            views_->setCurrentIndex(0);
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
    gallery_->setGallery(sort, filter, classIndex);
}
const std::vector<std::size_t>& PredictionsPanel::galleryList() const {
    return gallery_->list();
}
QListWidget* PredictionsPanel::galleryWidget() const {
    return gallery_->listWidget();
}
void PredictionsPanel::activateGalleryItem(int row) {
    gallery_->activate(row);
}

void PredictionsPanel::setRowNormalised(bool on) {
    confusion_->setRowNormalised(on);
}
void PredictionsPanel::clickCell(int target, int prediction) {
    confusion_->clickCell(target, prediction);
}
const std::vector<std::size_t>& PredictionsPanel::cellList() const {
    return confusion_->cellList();
}
QListWidget* PredictionsPanel::cellListWidget() const {
    return confusion_->cellListWidget();
}
void PredictionsPanel::activateCellItem(int row) {
    confusion_->activateCellItem(row);
}
QTableWidget* PredictionsPanel::confusionTable() const {
    return confusion_->confusionTable();
}
QTableWidget* PredictionsPanel::metricsTable() const {
    return confusion_->metricsTable();
}

bool PredictionsPanel::compareRuns(const QStringList& runIds) {
    if (worker_) return false;
    if (runIds.size() < 2 || runIds.size() > 4) {
        Q_EMIT statusMessage(tr("Tick 2 to 4 runs to compare."));
        return false;
    }
    sideBySide_->setChecked(runIds);
    const std::string workspace = workspace_.toStdString(), split = split_->currentText().toStdString();
    const std::string checkpoint = checkpoint_->currentText().toStdString();
    std::vector<std::string> ids;
    for (const QString& id : runIds) ids.push_back(id.toStdString());
    auto sets = std::make_shared<std::vector<std::shared_ptr<const core::PredictionSet>>>();
    auto models = std::make_shared<std::vector<std::string>>();
    startWorker(
        [=](const std::atomic<bool>& cancel, const std::function<void(qint64, qint64)>& progress) {
            auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
            for (std::size_t r = 0; r < ids.size(); ++r) {
                if (cancel) throw TaskCancelled{};
                const auto record = store->run(ids[r]);
                if (!record) throw core::Error("unknown run " + ids[r]);
                const core::PredictionKey key = core::predictionKey(*store, ids[r], checkpoint, split);
                core::CacheLookup lookup =
                    core::openPredictions(core::predictionFolder(record->folder, key.checkpoint, split), key);
                if (!lookup.set) {
                    const core::LoadedRun loaded = core::loadRun(*store, ids[r], checkpoint);
                    core::PredictionOptions options;
                    options.cancel = &cancel;
                    core::SplitPrediction prediction = core::predictSplit(loaded, record->folder, split, options);
                    if (!prediction.set) throw TaskCancelled{};
                    lookup.set = std::move(prediction.set);
                }
                models->push_back(record->model);
                sets->push_back(std::make_shared<const core::PredictionSet>(std::move(*lookup.set)));
                progress(qint64(r + 1), qint64(ids.size()));
            }
        },
        [=](const QString& error) {
            if (!error.isEmpty()) {
                Q_EMIT statusMessage(tr("Side by side: %1").arg(error));
                return;
            }
            std::vector<SideBySideView::Entry> entries;
            for (std::size_t r = 0; r < sets->size(); ++r)
                entries.push_back({runIds[int(r)], QString::fromStdString((*models)[r]), (*sets)[r]});
            const bool first = !set_ && !entries.empty();
            if (first) set_ = entries.front().set;
            sideBySide_->setComparison(std::move(entries));
            if (first) predictionsChanged();
            rebuildComparison();
            views_->setCurrentIndex(3);
            Q_EMIT comparisonReady();
        });
    return true;
}

int PredictionsPanel::comparedRuns() const {
    return sideBySide_->compared();
}

void PredictionsPanel::rebuildComparison() {
    sideBySide_->showImage(set_.get(), images_->currentImage(), images_->style());
}

}  // namespace segscope::ui
