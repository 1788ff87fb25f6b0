#pragma once
// The workbench window: experiment editor and run control, live curves, the runs of the
// workspace, and the dataset browser. Runs go through the core trainer in TrainingWorkers on
// their own QThreads; by default one run per device at a time, the rest wait in a queue.
#include "segscope/core/experiment.h"

#include <QHash>
#include <QMainWindow>
#include <QPointer>
#include <QQueue>

#include <optional>

class QAction;
class QLabel;
class QProgressBar;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QTabWidget;

namespace segscope::ui {

class CurvesWidget;
class DatasetPanel;
class ErfPanel;
class PredictionsPanel;
class ExperimentEditor;
class RunsPanel;
class TrainingWorker;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QString workspace, QWidget* parent = nullptr);
    ~MainWindow() override;

    // Loads an experiment file into the editor; errors go to a dialog and the status bar.
    bool openExperiment(const QString& path);
    // Validates the editor's experiment and queues it; returns false (fields flagged) if invalid.
    bool startRun();
    void resumeRun(const QString& runId);
    void pauseActive();
    void resumeActive();
    void stopActive();
    void setPresenterMode(bool on);

    // The session of a workspace (WORKSPACE/session.json): the experiment as edited, the tab,
    // the window geometry, presenter mode and the runs selected in the runs table. Saved when
    // the window closes (atomically), restored on the next start. restoreSession() returns false
    // when there is no session; a session whose experiment no longer validates is kept as
    // session-previous.json and reported in the status bar, and the rest is still restored.
    bool saveSession() const;
    bool restoreSession();
    QString sessionPath() const;

    ExperimentEditor* editor() const { return editor_; }
    CurvesWidget* liveCurves() const { return curves_; }
    RunsPanel* runsPanel() const { return runs_; }
    DatasetPanel* datasetPanel() const { return dataset_; }
    ErfPanel* erfPanel() const { return erf_; }
    PredictionsPanel* predictionsPanel() const { return predictions_; }
    QTabWidget* tabs() const { return tabs_; }
    QString activeRunId() const { return activeRunId_; }
    // Run controls on the window's toolbar, reachable from every tab (and by shortcut).
    QAction* startAction() const { return startAction_; }
    QAction* pauseAction() const { return pauseAction_; }
    QAction* stopAction() const { return stopAction_; }
    // "best mIoU 81.2% (epoch 3) · last 79.9%" of the active or last run.
    QString miouReadout() const;
    // Every shortcut of the window, one "keys — what" line each (the Help menu lists them).
    QStringList shortcutList() const;
    int queuedRuns() const { return int(queue_.size()); }

Q_SIGNALS:
    void runStarted(const QString& runId);
    void runFinished(const QString& runId, int outcome, const QString& message);
    // The active run's trainer holds at its pause point (true: every step it made before has been
    // received), or goes on after a resume (false).
    void runPaused(const QString& runId, bool paused);
    // A batch of the active run's steps reached the curves; `lastStep` is the newest.
    void stepsReceived(const QString& runId, qint64 lastStep);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    void closeEvent(QCloseEvent* event) override;

private:
    struct Pending {
        core::Experiment experiment;
        QString resumeRunId;
    };
    void buildMenus();
    void launchNext();
    // The end of the active run (its worker has ended): status, banner, tables, the next queued run.
    void finishRun(const QString& runId, int outcome, const QString& message);
    void showError(const QString& title, const QString& message);
    void updateStatus();
    void updateRunControls();

    QString workspace_;
    QTabWidget* tabs_ = nullptr;
    ExperimentEditor* editor_ = nullptr;
    CurvesWidget* curves_ = nullptr;
    RunsPanel* runs_ = nullptr;
    DatasetPanel* dataset_ = nullptr;
    ErfPanel* erf_ = nullptr;
    PredictionsPanel* predictions_ = nullptr;
    QPushButton* startButton_ = nullptr;
    QPushButton* pauseButton_ = nullptr;
    QPushButton* stopButton_ = nullptr;
    QLabel* runStatus_ = nullptr;
    QLabel* banner_ = nullptr;
    QPlainTextEdit* log_ = nullptr;
    QListWidget* queueList_ = nullptr;
    QAction* startAction_ = nullptr;
    QAction* pauseAction_ = nullptr;
    QAction* stopAction_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* readout_ = nullptr;
    std::optional<double> bestMiou_, lastMiou_;
    int bestEpoch_ = -1;

    QQueue<Pending> queue_;
    QPointer<TrainingWorker> worker_;
    // The active run's outcome, as its worker reported it (runFinished), until the worker ends.
    struct Outcome {
        QString runId;
        int outcome = 0;
        QString message;
    };
    std::optional<Outcome> outcome_;
    QString activeRunId_;
    bool paused_ = false;
    bool presenter_ = false;
    // Live status of the active run.
    std::int64_t totalSteps_ = 0, lastStep_ = 0;
    int batchSize_ = 0;
    double imagesPerSecond_ = 0.0, wallSeconds_ = 0.0;
    std::optional<std::int64_t> memoryBytes_;
};

}  // namespace segscope::ui
