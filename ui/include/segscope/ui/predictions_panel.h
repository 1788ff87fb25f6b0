#pragma once
// The Predictions tab: where a model fails, class by class and image by image.
//
//  - Source: a run of the workspace, a checkpoint (best, latest or a file) and a split. Predict
//    runs core::predictSplit() in a TaskWorker with progress and cancel; the predictions are
//    cached in the run folder, so reopening is instant. Only per-image confusion matrices stay in
//    memory; masks are read from the cache when an image is shown.
//  - Four views, each a widget of its own, composed here: Images (PredictionImagesView: image,
//    ground truth, prediction or error map, legend), Failure gallery (FailureGallery),
//    Confusion matrix (ConfusionView) and Side by side (SideBySideView). The panel holds the
//    prediction set and the class colours (saved with the workspace) and routes between them:
//    a gallery or cell click opens the image, a recolour redraws every view.
//  - Any image file (open or drop) runs through the source's model into the Images view.
// GUI thread only.
#include "segscope/core/analysis/predictions.h"
#include "segscope/ui/failure_gallery.h"
#include "segscope/ui/worker.h"

#include <QImage>
#include <QPointer>
#include <QWidget>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

class QComboBox;
class QLabel;
class QListWidget;
class QProgressBar;
class QPushButton;
class QTabWidget;
class QTableWidget;

namespace segscope::core {
struct LoadedRun;
}

namespace segscope::ui {

class ClassColors;
class ConfusionView;
class PredictionImagesView;
class SideBySideView;

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
    std::optional<std::size_t> currentImage() const;
    void setOpacity(double opacity);  // 0..1
    void setErrorClass(int c);        // -1: the prediction overlay
    void setClassVisible(int c, bool visible);
    bool setClassColor(int c, const QColor& color);  // saved with the workspace
    QImage predictionPane() const;
    QImage groundTruthPane() const;
    bool exportOverlay(const QString& path) const;
    // Runs the current source's model on an image file and shows the overlay (async; emits
    // imagePredicted when done).
    bool openImageFile(const QString& path);

    // Gallery.
    void setGallery(GallerySort sort, GalleryFilter filter, int classIndex);
    const std::vector<std::size_t>& galleryList() const;
    QListWidget* galleryWidget() const;
    void activateGalleryItem(int row);

    // Confusion matrix.
    void setRowNormalised(bool on);
    void clickCell(int target, int prediction);
    const std::vector<std::size_t>& cellList() const;
    QListWidget* cellListWidget() const;
    void activateCellItem(int row);
    QTableWidget* confusionTable() const;
    QTableWidget* metricsTable() const;

    // Side by side: predicts (or reopens) the same split for each run, then shows the current
    // image's id in each.
    bool compareRuns(const QStringList& runIds);
    int comparedRuns() const;

    QTabWidget* views() const { return views_; }
    QLabel* summaryLabel() const { return summary_; }
    QComboBox* runPicker() const { return run_; }
    PredictionImagesView* imagesView() const { return images_; }
    FailureGallery* gallery() const { return gallery_; }
    ConfusionView* confusionView() const { return confusion_; }
    SideBySideView* sideBySideView() const { return sideBySide_; }

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
    void showImage(std::size_t index, std::optional<std::pair<int, int>> cell);
    void rebuildComparison();
    std::vector<core::ClassInfo> displayClasses() const;

    QString workspace_;
    std::unique_ptr<ClassColors> colors_;
    std::shared_ptr<const core::PredictionSet> set_;
    QString setLabel_;
    bool lastFromCache_ = false;
    std::shared_ptr<core::LoadedRun> loadedRun_;  // for single images; used by one worker at a time
    QString loadedKey_;

    // Source row.
    QComboBox* run_ = nullptr;
    QComboBox* checkpoint_ = nullptr;
    QComboBox* split_ = nullptr;
    QPushButton* predictButton_ = nullptr;
    QPushButton* cancelButton_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* summary_ = nullptr;
    QTabWidget* views_ = nullptr;

    PredictionImagesView* images_ = nullptr;
    FailureGallery* gallery_ = nullptr;
    ConfusionView* confusion_ = nullptr;
    SideBySideView* sideBySide_ = nullptr;

    QPointer<TaskWorker> worker_;
};

}  // namespace segscope::ui
