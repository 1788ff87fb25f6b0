#pragma once
// One training run in a Worker (worker.h): started with Worker::start(new TrainingWorker(...),
// owner), on its own QThread.
//
// work() blocks its thread for the whole training; pause(), resume() and stop() (== cancel())
// are thread-safe and meant to be called directly from the GUI thread. Only values leave the
// worker, through queued signals; step events are batched so a fast run cannot flood the GUI's
// event loop. runFinished() reports the run's outcome (a failure to create, resume or record the
// run is Failed with its message); Worker::finished() follows when the thread is done.
#include "segscope/core/experiment.h"
#include "segscope/core/training/trainer.h"
#include "segscope/ui/worker.h"

#include <QString>
#include <QVector>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>

Q_DECLARE_METATYPE(segscope::core::StepEvent)
Q_DECLARE_METATYPE(segscope::core::ValidationEvent)
Q_DECLARE_METATYPE(segscope::core::TrainingStart)

namespace segscope::ui {

void registerCoreMetaTypes();

class TrainingWorker : public Worker, private core::TrainingObserver {
    Q_OBJECT
public:
    // A new run of `experiment`, or (with resumeRunId) the continuation of an interrupted run.
    TrainingWorker(core::Experiment experiment, QString workspace, QString resumeRunId = {});
    ~TrainingWorker() override;

    void pause();
    void resume();
    void stop() { cancel(); }
    void cancel() override;
    QString runId() const;

Q_SIGNALS:
    void runCreated(const QString& runId);
    void started(const QString& runId, const segscope::core::TrainingStart& start);
    void steps(const QString& runId, const QVector<segscope::core::StepEvent>& steps);
    void validated(const QString& runId, const segscope::core::ValidationEvent& event);
    // An ERF snapshot (training.erf_every_epochs) was written to `directory`.
    void erfRecorded(const QString& runId, int epoch, qint64 step, const QString& directory);
    void logLine(const QString& runId, const QString& line);
    void pausedChanged(const QString& runId, bool paused);
    // outcome: core::TrainingOutcome as int. Once per run.
    void runFinished(const QString& runId, int outcome, const QString& message);

protected:
    void work() override;

private:
    void onStarted(const core::TrainingStart& start) override;
    void onStep(const core::StepEvent& event) override;
    void onValidation(const core::ValidationEvent& event) override;
    void onErf(const core::ErfEvent& event) override;
    void onLog(const std::string& line) override;
    void onPaused(bool paused) override;
    void onFinished(core::TrainingOutcome outcome, const std::string& reason) override;
    void flushSteps();

    core::Experiment experiment_;
    QString workspace_;
    QString resumeRunId_;
    mutable std::mutex mutex_;
    QString runId_;
    core::Trainer* trainer_ = nullptr;  // guarded by mutex_, valid while run() trains
    QVector<core::StepEvent> pendingSteps_;
    std::chrono::steady_clock::time_point lastEmit_{};
    bool outcomeReported_ = false;  // worker thread only
};

}  // namespace segscope::ui
