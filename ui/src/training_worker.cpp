#include "segscope/ui/training_worker.h"

#include "segscope/core/runs/run_lock.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"

#include <nlohmann/json.hpp>

namespace segscope::ui {

void registerCoreMetaTypes() {
    qRegisterMetaType<core::StepEvent>();
    qRegisterMetaType<core::ValidationEvent>();
    qRegisterMetaType<core::TrainingStart>();
    qRegisterMetaType<QVector<core::StepEvent>>();
}

TrainingWorker::TrainingWorker(core::Experiment experiment, QString workspace, QString resumeRunId)
    : experiment_(std::move(experiment)), workspace_(std::move(workspace)), resumeRunId_(std::move(resumeRunId)) {
    registerCoreMetaTypes();
}

TrainingWorker::~TrainingWorker() {
    cancel();
}

void TrainingWorker::pause() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trainer_) trainer_->pause();
}

void TrainingWorker::resume() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trainer_) trainer_->resume();
}

void TrainingWorker::cancel() {
    std::lock_guard<std::mutex> lock(mutex_);
    Worker::cancel();
    if (trainer_) trainer_->cancel();
}

QString TrainingWorker::runId() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return runId_;
}

void TrainingWorker::work() {
    QString id;
    try {
        const auto store = core::RunStore::open(workspace_.toStdString());
        store->markInterrupted();
        core::TrainerOptions options;
        std::string runId = resumeRunId_.toStdString();
        // One trainer per run across processes (segscope-cli train holds the same lock); taken
        // before a resume truncates the run's rows.
        std::optional<core::RunLock> runLock;
        if (!resumeRunId_.isEmpty()) {
            const auto record = store->run(runId);
            if (!record) throw core::Error("no run '" + runId + "' in workspace " + workspace_.toStdString());
            runLock.emplace(core::RunLock::acquire(record->folder));
            core::ResumePoint point = core::prepareResume(*store, runId);
            experiment_ = std::move(point.experiment);
            options.resumeFrom = point.checkpoint;
        } else {
            runId = core::createRecordedRun(*store, experiment_);
            runLock.emplace(core::RunLock::acquire(store->run(runId)->folder));
        }
        options.runFolder = store->run(runId)->folder;
        id = QString::fromStdString(runId);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            runId_ = id;
        }
        Q_EMIT runCreated(id);
        core::RunRecorder recorder(*store, runId, this);
        core::Trainer trainer(experiment_, options, &recorder);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            trainer_ = &trainer;
            if (cancelRequested()) trainer.cancel();
        }
        const core::TrainingResult result = trainer.run();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            trainer_ = nullptr;
        }
        recorder.recordResult(result);
    } catch (const std::exception& e) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            trainer_ = nullptr;
        }
        if (!outcomeReported_)
            Q_EMIT runFinished(id, int(core::TrainingOutcome::Failed), QString::fromStdString(e.what()));
        outcomeReported_ = true;
        throw;  // Worker::run() reports it in finished(error) too
    } catch (...) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            trainer_ = nullptr;
        }
        if (!outcomeReported_) Q_EMIT runFinished(id, int(core::TrainingOutcome::Failed), tr("unknown error"));
        outcomeReported_ = true;
        throw;
    }
}

void TrainingWorker::onStarted(const core::TrainingStart& start) {
    Q_EMIT started(runId(), start);
}

void TrainingWorker::onStep(const core::StepEvent& event) {
    pendingSteps_.push_back(event);
    // A few updates per second are plenty for curves; the rest would only load the event loop.
    const auto now = std::chrono::steady_clock::now();
    if (now - lastEmit_ >= std::chrono::milliseconds(150)) flushSteps();
}

void TrainingWorker::flushSteps() {
    if (pendingSteps_.isEmpty()) return;
    Q_EMIT steps(runId(), pendingSteps_);
    pendingSteps_.clear();
    lastEmit_ = std::chrono::steady_clock::now();
}

void TrainingWorker::onValidation(const core::ValidationEvent& event) {
    flushSteps();
    Q_EMIT validated(runId(), event);
}

void TrainingWorker::onErf(const core::ErfEvent& event) {
    flushSteps();
    Q_EMIT erfRecorded(runId(), event.epoch, qint64(event.step), QString::fromStdString(event.directory.string()));
}

void TrainingWorker::onLog(const std::string& line) {
    Q_EMIT logLine(runId(), QString::fromStdString(line));
}

void TrainingWorker::onPaused(bool paused) {
    flushSteps();
    Q_EMIT pausedChanged(runId(), paused);
}

void TrainingWorker::onFinished(core::TrainingOutcome outcome, const std::string& reason) {
    flushSteps();
    outcomeReported_ = true;
    Q_EMIT runFinished(runId(), int(outcome), QString::fromStdString(reason));
}

}  // namespace segscope::ui
