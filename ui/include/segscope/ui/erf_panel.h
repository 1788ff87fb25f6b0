#pragma once
// The ERF tab: effective receptive fields of every encoder stage and the decoder, as a grid of
// heatmaps (one row per source, one column per stage) with a colour bar, linear or log scale,
// optionally over a sample image. A source is a recorded run (at its best or latest checkpoint)
// or an untrained model; two sources side by side reproduce the SegFormer paper's CNN-vs-
// transformer figure or show untrained vs trained in one click. A run that recorded ERF
// snapshots during training (training.erf_every_epochs) gets a slider that steps through them.
//
// Computation runs in a TaskWorker on its own QThread with progress and cancel; only values
// (ErfView) come back. GUI thread only.
#include "segscope/core/analysis/erf.h"
#include "segscope/core/experiment.h"
#include "segscope/ui/worker.h"

#include <QImage>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include <atomic>
#include <functional>
#include <optional>
#include <vector>

class QCheckBox;
class QComboBox;
class QGridLayout;
class QLabel;
class QProgressBar;
class QPushButton;
class QSlider;
class QSpinBox;

namespace segscope::ui {

// One stage's map, as plain values for the GUI.
struct ErfStageView {
    QString stage;
    int width = 0;
    int height = 0;
    QVector<float> map;        // row-major, width * height
    double areaRatio50 = 0.0;  // centred square holding half the mass, fraction of the image
    double radiusPixels = 0.0;
};

// One row of the grid.
struct ErfView {
    QString label;  // e.g. "segformer-b0 · run 2026… · best (epoch 7)"
    QVector<ErfStageView> stages;
    QImage sample;  // the first image, as the model saw it (RGB), for the overlay
    qint64 images = 0;
};

// The colour bar's ticks, as fractions of each map's maximum, and their labels. On the log scale
// (logScale > 0) no tick is 0 and no label reads "0".
std::vector<double> erfColorBarTicks(double logScale);
QString erfColorBarTickLabel(double fraction);
QStringList erfColorBarTickLabels(double logScale);

// Converts a core result (maps on the CPU) into a view.
ErfView toErfView(const core::ErfResult& result, const QString& label, const QImage& sample = {});

// The heatmap of a map in [0, 1] per pixel, normalised to the map's maximum: linear m / max,
// or log1p(k m / max) / log1p(k) with k = logScale when logScale > 0; through the viridis
// colour map. With `sample` (any size; scaled to the map), the heatmap is blended over the
// sample's grey levels with opacity 0.65.
QImage renderErfHeatmap(const ErfStageView& stage, double logScale, const QImage& sample = {});

// What to compute an ERF of.
struct ErfSource {
    enum class Kind { Run, UntrainedModel };
    Kind kind = Kind::Run;
    QString runId;                                // Run; for UntrainedModel: the run whose experiment (dataset, size,
                                                  // classes, seed) the untrained model takes, or empty
    QString checkpoint = QStringLiteral("best");  // Run: "best", "latest" or a path
    QString modelId;                              // UntrainedModel
    QString label;                                // shown above the row; empty: made from the above
};

class ErfPanel : public QWidget {
    Q_OBJECT
public:
    explicit ErfPanel(QString workspace, QWidget* parent = nullptr);
    ~ErfPanel() override;

    // The experiment untrained models take their dataset, input size and classes from when
    // they have no run (normally the editor's).
    void setExperimentProvider(std::function<std::optional<core::Experiment>()> provider);

    // Re-reads the runs of the workspace into the source pickers.
    void refreshRuns();
    void setSources(const std::vector<ErfSource>& sources);
    std::vector<ErfSource> sources() const;
    // Starts computing the chosen sources; false when a computation is running.
    bool compute();
    void cancel();
    bool busy() const { return bool(worker_); }

    // One click: DeepLabV3+/ResNet-50 vs SegFormer-B0 (the newest finished run of each, at its
    // best checkpoint; the untrained model when there is none), then computes.
    void compareCnnVsTransformer();
    // One click: the run's model untrained (same seed) vs the run at its best checkpoint.
    void compareUntrainedVsTrained(const QString& runId);

    // Shows a run's ERF snapshots recorded during training; the slider picks one.
    void showSnapshots(const QString& runId);
    int snapshotCount() const { return int(snapshots_.size()); }
    QSlider* snapshotSlider() const { return snapshotSlider_; }
    QLabel* snapshotLabel() const { return snapshotLabel_; }
    void setSnapshotIndex(int index);
    // A new snapshot of `runId` was written: refresh the slider when that run is shown.
    void snapshotRecorded(const QString& runId);

    // Validation images averaged per source (default 16).
    void setImages(int images);
    void setLogScale(bool on);
    void setOverlay(bool on);
    const std::vector<ErfView>& views() const { return views_; }
    bool exportPng(const QString& path);

Q_SIGNALS:
    void computationFinished(const QString& message);
    void statusMessage(const QString& text);

private:
    void rebuildGrid();
    void sourceKindChanged(int row);
    std::optional<core::Experiment> fallbackExperiment() const;

    struct SourceRow {
        QCheckBox* enabled = nullptr;
        QComboBox* kind = nullptr;
        QComboBox* run = nullptr;
        QComboBox* checkpoint = nullptr;
        QComboBox* model = nullptr;
    };
    QString workspace_;
    std::function<std::optional<core::Experiment>()> experimentProvider_;
    SourceRow rows_[2];
    QSpinBox* images_ = nullptr;
    QCheckBox* logScale_ = nullptr;
    QCheckBox* overlay_ = nullptr;
    QPushButton* computeButton_ = nullptr;
    QPushButton* cancelButton_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* snapshotLabel_ = nullptr;
    QSlider* snapshotSlider_ = nullptr;
    QWidget* grid_ = nullptr;
    QGridLayout* gridLayout_ = nullptr;
    QLabel* info_ = nullptr;

    std::vector<ErfView> views_;
    QString snapshotRunId_;
    std::vector<core::ErfSnapshot> snapshots_;
    QString snapshotModel_;
    QPointer<TaskWorker> worker_;
};

}  // namespace segscope::ui
