#pragma once
// The Predictions tab: where a model fails, class by class and image by image.
//
//  - Source: a run of the workspace, a checkpoint (best, latest or a file) and a split. Predict
//    runs core::predictSplit() in a TaskWorker with progress and cancel; the predictions are
//    cached in the run folder, so reopening is instant. Only per-image confusion matrices stay in
//    memory; masks are read from the cache when an image is shown.
//  - Images: the image, the ground truth and the prediction overlay (or, for a chosen class, its
//    TP/FP/FN/ignored error map; or the pixels of a confusion cell), with an opacity slider, a
//    legend with show/hide per class and editable colours (saved with the workspace), zoom and
//    pan synced across the panes, PNG export, and any image file (open or drop) run through
//    the model.
//  - Gallery: thumbnails with overlays, sorted by per-image IoU (overall or one class) or by the
//    pixels where a class was confused, filtered to images containing a class or where it was
//    confused; a click opens the image.
//  - Confusion: the split's confusion matrix as a heatmap (counts or row-normalised); a click on
//    cell (i, j) lists the images where true i was predicted as j, by pixel count; the per-class
//    metrics table is sortable.
//  - Side by side: the current image's prediction for 2–4 runs on the same split.
// GUI thread only.
#include "segscope/core/analysis/predictions.h"
#include "segscope/ui/worker.h"

#include <QImage>
#include <QPointer>
#include <QWidget>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

class QCheckBox;
class QComboBox;
class QGraphicsView;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSlider;
class QTabWidget;
class QTableWidget;
class QThreadPool;

namespace segscope::core {
struct LoadedRun;
}

namespace segscope::ui {

class ClassColors;
class SyncedView;

enum class GallerySort { MeanIouAscending, MeanIouDescending, ClassIouAscending, ClassIouDescending, ConfusedPixels };
enum class GalleryFilter { All, ContainsClass, ClassConfused };

// The gallery's list for a prediction set: `sort` orders the images (the class sorts use
// `classIndex` and leave out images where the class has union 0; ConfusedPixels lists
// mostConfused(classIndex)), then `filter` keeps those containing the class (ground truth) or
// where it was confused (confusedPixels > 0), preserving the order.
std::vector<std::size_t> galleryIndices(const core::PredictionSet& set, GallerySort sort, GalleryFilter filter,
                                        int classIndex);

class PredictionsPanel : public QWidget {
    Q_OBJECT
public:
    explicit PredictionsPanel(QString workspace, QWidget* parent = nullptr);
    ~PredictionsPanel() override;

    void refreshRuns();
    // Chooses the source; predict() then computes or reopens its predictions.
    void setSource(const QString& runId, const QString& checkpoint = QStringLiteral("best"),
                   const QString& split = QStringLiteral("val"));
    bool predict(bool force = false);
    void cancel();
    bool busy() const { return bool(worker_); }
    // Shows a prediction set directly (tests, tools); replaces the current one.
    void setPredictions(core::PredictionSet set, const QString& label = {});
    const core::PredictionSet* predictions() const { return set_ ? set_.get() : nullptr; }
    bool lastFromCache() const { return lastFromCache_; }

    // Images view.
    void showImage(std::size_t index);
    std::optional<std::size_t> currentImage() const { return current_; }
    void setOpacity(double opacity);  // 0..1
    void setErrorClass(int c);        // -1: the prediction overlay
    void setClassVisible(int c, bool visible);
    bool setClassColor(int c, const QColor& color);  // saved with the workspace
    QImage predictionPane() const { return predictionImage_; }
    QImage groundTruthPane() const { return groundTruthImage_; }
    bool exportOverlay(const QString& path) const;
    // Runs the current source's model on an image file and shows the overlay (async; emits
    // imagePredicted when done).
    bool openImageFile(const QString& path);

    // Gallery.
    void setGallery(GallerySort sort, GalleryFilter filter, int classIndex);
    const std::vector<std::size_t>& galleryList() const { return gallery_; }
    QListWidget* galleryWidget() const { return galleryView_; }
    void activateGalleryItem(int row);

    // Confusion matrix.
    void setRowNormalised(bool on);
    void clickCell(int target, int prediction);
    const std::vector<std::size_t>& cellList() const { return cellImages_; }
    QListWidget* cellListWidget() const { return cellView_; }
    void activateCellItem(int row);
    QTableWidget* confusionTable() const { return confusion_; }
    QTableWidget* metricsTable() const { return metrics_; }

    // Side by side: predicts (or reopens) the same split for each run, then shows the current
    // image's id in each.
    bool compareRuns(const QStringList& runIds);
    int comparedRuns() const { return int(compareSets_.size()); }

    QTabWidget* views() const { return views_; }

Q_SIGNALS:
    void predictionsReady();
    void imagePredicted(const QString& path);
    void comparisonReady();
    void statusMessage(const QString& text);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void startWorker(std::function<void(const std::atomic<bool>&, const std::function<void(qint64, qint64)>&)> task,
                     std::function<void(const QString&)> done);
    void predictionsChanged();
    void rebuildLegend();
    void renderCurrent();
    void rebuildGallery();
    void rebuildConfusion();
    void rebuildComparison();
    std::vector<core::ClassInfo> displayClasses() const;
    QImage renderLabels(const cv::Mat& rgb, const cv::Mat& labels) const;

    QString workspace_;
    std::unique_ptr<ClassColors> colors_;
    std::shared_ptr<const core::PredictionSet> set_;
    QString setLabel_;
    bool lastFromCache_ = false;
    std::shared_ptr<core::LoadedRun> loadedRun_;  // for single images; used by one worker at a time
    QString loadedKey_;
    std::vector<std::pair<QString, std::shared_ptr<const core::PredictionSet>>> compareSets_;

    // Source row.
    QComboBox* run_ = nullptr;
    QComboBox* checkpoint_ = nullptr;
    QComboBox* split_ = nullptr;
    QPushButton* predictButton_ = nullptr;
    QPushButton* cancelButton_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* summary_ = nullptr;
    QTabWidget* views_ = nullptr;

    // Images view.
    QListWidget* imageList_ = nullptr;
    SyncedView* paneViews_[3] = {nullptr, nullptr, nullptr};
    QLabel* paneTitles_[3] = {nullptr, nullptr, nullptr};
    QSlider* opacity_ = nullptr;
    QComboBox* errorClass_ = nullptr;
    QListWidget* legend_ = nullptr;
    std::optional<std::size_t> current_;
    std::optional<std::pair<int, int>> highlightCell_;
    std::vector<bool> visible_;
    QImage imageImage_, groundTruthImage_, predictionImage_;
    cv::Mat externalImage_, externalPrediction_;  // an opened image file (no ground truth)
    QString externalPath_;

    // Gallery.
    QComboBox* gallerySort_ = nullptr;
    QComboBox* galleryFilter_ = nullptr;
    QComboBox* galleryClass_ = nullptr;
    QListWidget* galleryView_ = nullptr;
    QPushButton* galleryMore_ = nullptr;
    std::vector<std::size_t> gallery_;
    int galleryShown_ = 0;
    // Bumped on every gallery rebuild; thumbnail tasks of an older generation stop.
    std::shared_ptr<std::atomic<quint64>> galleryGeneration_ = std::make_shared<std::atomic<quint64>>(0);
    QThreadPool* thumbnails_ = nullptr;

    // Confusion.
    QTableWidget* confusion_ = nullptr;
    QCheckBox* rowNormalised_ = nullptr;
    QListWidget* cellView_ = nullptr;
    QLabel* cellTitle_ = nullptr;
    QTableWidget* metrics_ = nullptr;
    std::vector<std::size_t> cellImages_;

    // Side by side.
    QListWidget* compareList_ = nullptr;
    QWidget* compareGrid_ = nullptr;

    QPointer<TaskWorker> worker_;
};

} // namespace segscope::ui
