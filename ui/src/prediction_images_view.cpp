#include "segscope/ui/prediction_images_view.h"

#include "prediction_text.h"
#include "segscope/core/data/overlay.h"
#include "segscope/ui/image_convert.h"

#include <QtWidgets>
#include <opencv2/imgproc.hpp>

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

QIcon swatch(const core::Rgb& colour) {
    QPixmap pixmap(14, 14);
    pixmap.fill(QColor(colour.r, colour.g, colour.b));
    return QIcon(pixmap);
}

// A legend swatch: the colour inside a dark border, visible on any background (white included).
QPixmap borderedSwatch(const core::Rgb& colour) {
    QPixmap pixmap(14, 14);
    pixmap.fill(QColor(colour.r, colour.g, colour.b));
    QPainter painter(&pixmap);
    painter.setPen(QColor(60, 60, 60));
    painter.drawRect(0, 0, pixmap.width() - 1, pixmap.height() - 1);
    return pixmap;
}

}  // namespace

PredictionImagesView::PredictionImagesView(QString exportFolder, QWidget* parent)
    : QWidget(parent), exportFolder_(std::move(exportFolder)) {
    auto* imagesLayout = new QHBoxLayout(this);
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
    // Wide enough for its longest entry ("(none: prediction overlay)", the longest class name).
    errorClass_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    auto* exportButton = new QPushButton(tr("Export overlay…"));
    paneControls->addWidget(new QLabel(tr("Opacity")));
    paneControls->addWidget(opacity_, 1);
    paneControls->addWidget(new QLabel(tr("Errors of class")));
    paneControls->addWidget(errorClass_);
    paneControls->addWidget(exportButton);
    panesColumn->addLayout(paneControls);
    auto* errorLegend = new QHBoxLayout;
    errorLegend->addWidget(new QLabel(tr("Error view:")));
    const std::pair<core::PixelOutcome, QString> outcomes[] = {{core::PixelOutcome::TruePositive, tr("TP")},
                                                               {core::PixelOutcome::FalsePositive, tr("FP")},
                                                               {core::PixelOutcome::FalseNegative, tr("FN")},
                                                               {core::PixelOutcome::Ignored, tr("ignored")}};
    for (const auto& [outcome, name] : outcomes) {
        auto* swatch = new QLabel;
        swatch->setPixmap(borderedSwatch(core::outcomeColor(outcome)));
        errorSwatches_.emplace_back(outcome, swatch);
        errorLegend->addWidget(swatch);
        errorLegend->addWidget(new QLabel(name));
        errorLegend->addSpacing(8);
    }
    errorLegend->addStretch(1);
    panesColumn->addLayout(errorLegend);
    cellLegend_ = new QWidget;
    auto* cellLegend = new QHBoxLayout(cellLegend_);
    cellLegend->setContentsMargins(0, 0, 0, 0);
    auto* cellSwatch = new QLabel;
    cellSwatch->setPixmap(borderedSwatch(cellHighlightColor()));
    cellLegendText_ = new QLabel;
    cellLegend->addWidget(cellSwatch);
    cellLegend->addWidget(cellLegendText_, 1);
    cellLegend_->setVisible(false);
    panesColumn->addWidget(cellLegend_);
    imagesLayout->addLayout(panesColumn, 1);
    auto* legendColumn = new QVBoxLayout;
    legendColumn->addWidget(new QLabel(tr("Classes (tick to show,\ndouble-click to recolour)")));
    legend_ = new QListWidget;
    legend_->setMaximumWidth(200);
    legendColumn->addWidget(legend_, 1);
    imagesLayout->addLayout(legendColumn);

    connect(imageList_, &QListWidget::currentRowChanged, this, [this](int row) {
        if (row < 0 || !set_) return;
        Q_EMIT imageChosen(int(imageList_->item(row)->data(Qt::UserRole).toULongLong()));
    });
    connect(opacity_, &QSlider::valueChanged, this, [this] { render(); });
    connect(errorClass_, &QComboBox::currentIndexChanged, this, [this] { render(); });
    connect(legend_, &QListWidget::itemChanged, this, [this](QListWidgetItem* item) {
        const int c = legend_->row(item);
        if (c >= 0 && std::size_t(c) < visible_.size() &&
            visible_[std::size_t(c)] != (item->checkState() == Qt::Checked)) {
            visible_[std::size_t(c)] = item->checkState() == Qt::Checked;
            render();
        }
    });
    connect(legend_, &QListWidget::itemDoubleClicked, this, [this](QListWidgetItem* item) {
        const int c = legend_->row(item);
        if (c < 0 || std::size_t(c) >= classes_.size()) return;
        const core::Rgb old = classes_[std::size_t(c)].color;
        const QColor chosen =
            QColorDialog::getColor(QColor(old.r, old.g, old.b), this, tr("Colour of %1").arg(item->text()));
        if (chosen.isValid()) Q_EMIT recolourRequested(c, chosen);
    });
    connect(exportButton, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export overlay"), exportFolder_, tr("PNG (*.png)"));
        if (!path.isEmpty() && !exportOverlay(path)) Q_EMIT statusMessage(tr("Could not write %1").arg(path));
    });
}

void PredictionImagesView::setPredictions(std::shared_ptr<const core::PredictionSet> set,
                                          std::vector<core::ClassInfo> classes, bool showAll) {
    set_ = std::move(set);
    classes_ = std::move(classes);
    visible_.assign(classes_.size(), true);
    // A black background class (VOC, the demo) only darkens the overlay: hidden until ticked.
    if (!showAll && classes_.size() > 1 && classes_[0].color.r == 0 && classes_[0].color.g == 0 &&
        classes_[0].color.b == 0)
        visible_[0] = false;
    externalImage_.release();
    externalPrediction_.release();
    current_.reset();
    cell_.reset();
    rebuildLegend();
    {
        QSignalBlocker block(errorClass_);
        errorClass_->clear();
        errorClass_->addItem(tr("(none: prediction overlay)"));
        for (const auto& info : classes_) errorClass_->addItem(QString::fromStdString(info.name));
    }
    QSignalBlocker block(imageList_);
    imageList_->clear();
    if (!set_) return;
    for (std::size_t i = 0; i < set_->size(); ++i) {
        auto* item =
            new QListWidgetItem(QStringLiteral("%1  (%2)")
                                    .arg(QString::fromStdString(set_->image(i).id), percentText(set_->imageMeanIou(i))),
                                imageList_);
        item->setData(Qt::UserRole, qulonglong(i));
    }
}

void PredictionImagesView::setClasses(std::vector<core::ClassInfo> classes) {
    classes_ = std::move(classes);
    visible_.resize(classes_.size(), true);
    rebuildLegend();
    render();
}

void PredictionImagesView::rebuildLegend() {
    QSignalBlocker block(legend_);
    legend_->clear();
    for (std::size_t c = 0; c < classes_.size(); ++c) {
        auto* item = new QListWidgetItem(swatch(classes_[c].color), QString::fromStdString(classes_[c].name), legend_);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(c < visible_.size() && visible_[c] ? Qt::Checked : Qt::Unchecked);
    }
}

LabelStyle PredictionImagesView::style() const {
    return {classes_, visible_, opacity_->value() / 100.0};
}

void PredictionImagesView::showImage(std::size_t index, std::optional<std::pair<int, int>> cell) {
    if (!set_ || index >= set_->size()) return;
    current_ = index;
    cell_ = cell;
    externalImage_.release();
    externalPrediction_.release();
    for (int row = 0; row < imageList_->count(); ++row)
        if (imageList_->item(row)->data(Qt::UserRole).toULongLong() == index) {
            QSignalBlocker block(imageList_);
            imageList_->setCurrentRow(row);
        }
    render();
}

void PredictionImagesView::showExternal(cv::Mat rgb, cv::Mat prediction, const QString& path) {
    externalImage_ = std::move(rgb);
    externalPrediction_ = std::move(prediction);
    externalPath_ = path;
    current_.reset();
    cell_.reset();
    render();
}

void PredictionImagesView::render() {
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
    const LabelStyle labels = style();
    imageImage_ = toQImage(rgb);
    groundTruthImage_ = truth.empty() ? QImage() : labels.render(rgb, truth);
    const int errorClass = errorClass_->currentIndex() - 1;
    const double alpha = labels.opacity;
    QString predictionTitle = tr("Prediction");
    bool highlighted = false;
    if (cell_ && !truth.empty()) {
        const auto [i, j] = *cell_;
        const cv::Mat mask = core::cellMask(prediction, truth, i, j);
        core::LabelColours highlight;
        highlight[255] = cellHighlightColor();
        predictionImage_ = toQImage(core::blendLabels(rgb, mask, highlight, alpha));
        const auto names = set_->classNames();
        const QString truthName = QString::fromStdString(names[std::size_t(i)]);
        const QString predictedName = QString::fromStdString(names[std::size_t(j)]);
        predictionTitle =
            tr("Pixels of true %1 predicted as %2: %3").arg(truthName, predictedName).arg(cv::countNonZero(mask));
        cellLegendText_->setText(
            tr("true %1 predicted as %2 (%3 pixels)").arg(truthName, predictedName).arg(cv::countNonZero(mask)));
        highlighted = true;
    } else if (errorClass >= 0 && !truth.empty()) {
        const cv::Mat outcomes = core::errorMap(prediction, truth, errorClass);
        predictionImage_ = toQImage(core::overlayErrorMap(rgb, outcomes, alpha));
        predictionTitle = tr("Errors of %1 (TP green, FP red, FN blue, ignored white)").arg(errorClass_->currentText());
    } else {
        predictionImage_ = labels.render(rgb, prediction);
    }
    paneTitles_[0]->setText(title);
    paneTitles_[1]->setText(truth.empty()
                                ? tr("Ground truth (none for this image)")
                                : tr("Ground truth · image mIoU %1").arg(percentText(set_->imageMeanIou(*current_))));
    paneTitles_[2]->setText(predictionTitle);
    cellLegend_->setVisible(highlighted);
    paneViews_[0]->setImage(imageImage_);
    paneViews_[1]->setImage(groundTruthImage_.isNull() ? imageImage_ : groundTruthImage_);
    paneViews_[2]->setImage(predictionImage_);
}

void PredictionImagesView::setOpacity(double opacity) {
    opacity_->setValue(int(std::lround(opacity * 100)));
}

void PredictionImagesView::setErrorClass(int c) {
    errorClass_->setCurrentIndex(c + 1);
}

int PredictionImagesView::errorClass() const {
    return errorClass_->currentIndex() - 1;
}

void PredictionImagesView::setClassVisible(int c, bool visible) {
    if (c < 0 || c >= legend_->count()) return;
    legend_->item(c)->setCheckState(visible ? Qt::Checked : Qt::Unchecked);
}

QPixmap PredictionImagesView::errorSwatch(core::PixelOutcome outcome) const {
    for (const auto& [o, label] : errorSwatches_)
        if (o == outcome) return label->pixmap();
    return {};
}

QString PredictionImagesView::cellLegendText() const {
    return cellLegend_->isHidden() ? QString() : cellLegendText_->text();
}

bool PredictionImagesView::exportOverlay(const QString& path) const {
    return !predictionImage_.isNull() && predictionImage_.save(path, "PNG");
}

}  // namespace segscope::ui
