#pragma once
// The runs of a workspace: a sortable table that follows the database (runs started by
// segscope-cli appear while they run), comparison of selected runs (overlaid curves, per-class
// IoU as grouped bars) and the per-class IoU diff of two runs. GUI thread only.
#include "segscope/core/runs/run_store.h"

#include <QAbstractTableModel>
#include <QWidget>

#include <memory>
#include <vector>

class QCustomPlot;
class QLabel;
class QSortFilterProxyModel;
class QTableView;
class QTableWidget;
class QTimer;

namespace segscope::ui {

class CurvesWidget;

// "name (id) · model · status · best mIoU 73.09": a run in pickers (ERF and Predictions tabs);
// the id alone when the run has no name of its own.
QString runLabel(const core::RunSummary& run);

class RunsModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column {
        Name,
        Model,
        Dataset,
        Status,
        Parameters,
        BestMiou,
        FinalMiou,
        Seconds,
        ImagesPerSecond,
        Started,
        Id,
        ColumnCount
    };
    explicit RunsModel(QObject* parent = nullptr);
    void setRuns(std::vector<core::RunSummary> runs);
    const core::RunSummary& run(int row) const { return runs_.at(std::size_t(row)); }
    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

private:
    std::vector<core::RunSummary> runs_;
};

class RunsPanel : public QWidget {
    Q_OBJECT
public:
    // Opens its own connection to the workspace's database.
    explicit RunsPanel(const QString& workspace, QWidget* parent = nullptr);
    ~RunsPanel() override;

    // Re-reads the runs when the database changed (also called by a 1 s timer).
    void refresh(bool force = false);
    void selectRuns(const QStringList& runIds);
    QStringList selectedRunIds() const;
    // Overlays the selected runs' curves and per-class IoU bars.
    void compareSelected();
    // Per-class ΔIoU of the second selected run against the first (best evaluations).
    void diffSelected();

    // Replays the first selected run's recorded curves in recorded time scaled by `speed`
    // (10: ten times faster), without training: a long GPU run, shown on a laptop.
    void replaySelected(double speed);
    void stopReplay();
    bool replaying() const;

    RunsModel* model() const { return model_; }
    QTableView* view() const { return view_; }
    CurvesWidget* curves() const { return curves_; }
    QTableWidget* diffTable() const { return diffTable_; }
    QCustomPlot* classBars() const { return classBars_; }

Q_SIGNALS:
    void resumeRequested(const QString& runId);
    void replayFinished(const QString& runId);
    void statusMessage(const QString& text);

private:
    std::unique_ptr<core::RunStore> store_;
    std::int64_t lastCounter_ = -1;
    RunsModel* model_ = nullptr;
    QSortFilterProxyModel* proxy_ = nullptr;
    QTableView* view_ = nullptr;
    CurvesWidget* curves_ = nullptr;
    QCustomPlot* classBars_ = nullptr;
    QTableWidget* diffTable_ = nullptr;
    QLabel* diffTitle_ = nullptr;
    class QTabWidget* views_ = nullptr;
    QWidget* diffPage_ = nullptr;
    QStringList comparedIds_;  // the runs the views show; selecting others shows those
    QTimer* poll_ = nullptr;
    // Replay state: recorded events, how far they were played, and the virtual clock.
    QTimer* replayTimer_ = nullptr;
    QString replayRun_;
    std::vector<core::StepRecord> replaySteps_;
    std::vector<core::EpochRecord> replayEpochs_;
    std::size_t replayStep_ = 0, replayEpoch_ = 0;
    double replayClock_ = 0.0, replaySpeed_ = 1.0;
};

}  // namespace segscope::ui
