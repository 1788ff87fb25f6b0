#pragma once
// The Predictions tab's Images view: one image at a time, as the image, its ground truth and the
// prediction overlay (or, for a chosen class, its TP/FP/FN/ignored error map; or the pixels of a
// confusion cell), with an opacity slider, a class legend with show/hide per class (a
// double-click asks for a new colour), zoom and pan synced across the three panes, and PNG
// export. Reads the masks of the shown image from the prediction set's cache. GUI thread only.
#include "segscope/core/analysis/predictions.h"
#include "segscope/ui/label_style.h"

#include <QImage>
#include <QWidget>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

class QComboBox;
class QLabel;
class QListWidget;
class QSlider;

namespace segscope::ui {

class SyncedView;

class PredictionImagesView : public QWidget {
    Q_OBJECT
public:
    // `exportFolder`: where the export dialog starts (the workspace).
    explicit PredictionImagesView(QString exportFolder = {}, QWidget* parent = nullptr);

    // A new set (empty for none): its image list, the legend in `classes`' display colours (all
    // shown, but a black background class starts hidden: it only darkens the overlay, unless
    // `showAll`), the error classes with "none" chosen. Shows no image until showImage().
    void setPredictions(std::shared_ptr<const core::PredictionSet> set, std::vector<core::ClassInfo> classes,
                        bool showAll = false);
    // New display colours for the same classes: legend and panes redrawn.
    void setClasses(std::vector<core::ClassInfo> classes);

    // Shows image `index` of the set; with `cell` (true i, predicted j), the prediction pane
    // highlights the pixels of that confusion cell.
    void showImage(std::size_t index, std::optional<std::pair<int, int>> cell = std::nullopt);
    // Shows an image that is not in the set (no ground truth) with its predicted labels.
    void showExternal(cv::Mat rgb, cv::Mat prediction, const QString& path);
    std::optional<std::size_t> currentImage() const { return current_; }

    void setOpacity(double opacity);  // 0..1
    void setErrorClass(int c);        // -1: the prediction overlay
    int errorClass() const;
    void setClassVisible(int c, bool visible);
    // The colours, shown classes and opacity the panes use.
    LabelStyle style() const;

    QImage predictionPane() const { return predictionImage_; }
    QImage groundTruthPane() const { return groundTruthImage_; }
    bool exportOverlay(const QString& path) const;

    QComboBox* errorClassCombo() const { return errorClass_; }
    // The error view's legend swatch of `outcome`: its colour inside a dark border, so white
    // (ignored) shows on a light background.
    QPixmap errorSwatch(core::PixelOutcome outcome) const;
    // What the highlighted pixels of a confusion cell are ("true cat predicted as dog"), with a
    // swatch of cellHighlightColor(); hidden unless a cell is shown.
    QWidget* cellLegend() const { return cellLegend_; }
    QString cellLegendText() const;

    // The colour of a confusion cell's pixels in the prediction pane: cyan, which no class of the
    // demo (red, green, yellow, magenta shapes) or of VOC's palette uses, and none of the
    // TP/FP/FN/ignored colours.
    static core::Rgb cellHighlightColor() { return {0, 255, 255}; }

Q_SIGNALS:
    // The user picked an image in the list.
    void imageChosen(int index);
    // The user chose a new colour for class `c` in the legend.
    void recolourRequested(int c, const QColor& color);
    void statusMessage(const QString& text);

private:
    void rebuildLegend();
    void render();

    QString exportFolder_;
    std::shared_ptr<const core::PredictionSet> set_;
    std::vector<core::ClassInfo> classes_;
    std::vector<bool> visible_;
    std::optional<std::size_t> current_;
    std::optional<std::pair<int, int>> cell_;
    cv::Mat externalImage_, externalPrediction_;  // an opened image file (no ground truth)
    QString externalPath_;
    QImage imageImage_, groundTruthImage_, predictionImage_;

    QListWidget* imageList_ = nullptr;
    SyncedView* paneViews_[3] = {nullptr, nullptr, nullptr};
    QLabel* paneTitles_[3] = {nullptr, nullptr, nullptr};
    QSlider* opacity_ = nullptr;
    QComboBox* errorClass_ = nullptr;
    std::vector<std::pair<core::PixelOutcome, QLabel*>> errorSwatches_;
    QWidget* cellLegend_ = nullptr;
    QLabel* cellLegendText_ = nullptr;
    QListWidget* legend_ = nullptr;
};

}  // namespace segscope::ui
