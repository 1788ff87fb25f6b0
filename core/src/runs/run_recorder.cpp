#include "segscope/core/runs/run_recorder.h"

#include "segscope/core/runs/run_loader.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace segscope::core {

std::string createRecordedRun(RunStore& store, const Experiment& given) {
    // Paths relative to the folder the run was started from mean nothing to a resume started
    // elsewhere: the recorded experiment names them absolutely.
    Experiment experiment = given;
    std::error_code ec;
    if (!experiment.dataset.root.empty() && experiment.dataset.root.is_relative()) {
        const auto absolute = std::filesystem::absolute(experiment.dataset.root, ec);
        if (!ec) experiment.dataset.root = absolute.lexically_normal();
    }
    if (experiment.model.pretrained && experiment.model.pretrained->is_relative() &&
        std::filesystem::exists(*experiment.model.pretrained, ec)) {
        const auto absolute = std::filesystem::absolute(*experiment.model.pretrained, ec);
        if (!ec) experiment.model.pretrained = absolute.lexically_normal();
    }
    NewRun run;
    run.name = experiment.name.empty() ? experiment.model.id : experiment.name;
    run.model = experiment.model.id;
    run.dataset = std::string(dataSourceName(experiment.dataset.kind)) + ":" + datasetRoot(experiment).string();
    run.experimentJson = toJson(experiment).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    run.device = experiment.runtime.device;
    const std::string id = store.createRun(run);
    saveExperiment(store.run(id)->folder / "experiment.json", experiment);
    return id;
}

ResumePoint prepareResume(RunStore& store, const std::string& runId) {
    const auto run = store.run(runId);
    if (!run) throw Error("no run '" + runId + "' in workspace " + store.workspace().string());
    if (run->status == RunStatus::Running)
        throw Error("run " + runId + " is still running (pid " + std::to_string(run->pid.value_or(0)) + ")");
    if (run->status == RunStatus::Finished) throw Error("run " + runId + " has already finished");
    ResumePoint point;
    point.experiment = recordedExperiment(*run);
    if (const auto checkpoint = store.latestCheckpoint(runId)) {
        point.checkpoint = checkpoint->path;
        point.step = checkpoint->step;
    }
    store.truncateAfter(runId, point.step);
    return point;
}

RunRecorder::RunRecorder(RunStore& store, std::string runId, TrainingObserver* next)
    : store_(store), runId_(std::move(runId)), next_(next) {}

void RunRecorder::onStarted(const TrainingStart& start) {
    store_.updateParameters(runId_, start.parameters);
    store_.updateStatus(runId_, RunStatus::Running,
                        start.resumedAtStep > 0 ? "resumed at step " + std::to_string(start.resumedAtStep) : "");
    if (next_) next_->onStarted(start);
}

void RunRecorder::onStep(const StepEvent& event) {
    store_.appendStep(runId_, event);
    if (next_) next_->onStep(event);
}

void RunRecorder::onValidation(const ValidationEvent& event) {
    std::vector<ImageRecord> images;
    images.reserve(event.images.size());
    for (std::size_t i = 0; i < event.images.size(); ++i)
        images.push_back({event.imageIds[i], event.images[i].meanIou, perClassIouJson(event.images[i])});
    store_.appendEpoch(runId_, epochRecord(event.metrics, event.epoch, event.step, event.valLoss, event.wallSeconds),
                       classRecords(event.metrics), images);
    if (next_) next_->onValidation(event);
}

void RunRecorder::onCheckpoint(const CheckpointEvent& event) {
    store_.addCheckpoint(runId_, {event.epoch, event.step, event.state, {}});
    if (next_) next_->onCheckpoint(event);
}

void RunRecorder::onCheckpointRemoved(const CheckpointEvent& event) {
    // A pruned checkpoint is forgotten, so "latest" and "best" never name a deleted file.
    store_.removeCheckpoint(runId_, event.state);
    if (next_) next_->onCheckpointRemoved(event);
}

void RunRecorder::onErf(const ErfEvent& event) {
    // Snapshots live in the run folder (listErfSnapshots finds them); nothing to record.
    if (next_) next_->onErf(event);
}

void RunRecorder::onLog(const std::string& line) {
    if (auto run = store_.run(runId_)) {
        std::ofstream log(run->folder / "log.txt", std::ios::app);
        log << line << '\n';
    }
    if (next_) next_->onLog(line);
}

void RunRecorder::onPaused(bool paused) {
    store_.updateStatus(runId_, paused ? RunStatus::Paused : RunStatus::Running);
    if (next_) next_->onPaused(paused);
}

void RunRecorder::onFinished(TrainingOutcome outcome, const std::string& reason) {
    const RunStatus status = outcome == TrainingOutcome::Finished    ? RunStatus::Finished
                             : outcome == TrainingOutcome::Cancelled ? RunStatus::Cancelled
                                                                     : RunStatus::Failed;
    store_.updateStatus(runId_, status, reason);
    if (auto run = store_.run(runId_)) {
        std::ofstream log(run->folder / "log.txt", std::ios::app);
        log << trainingOutcomeName(outcome) << ": " << reason << '\n';
    }
    if (next_) next_->onFinished(outcome, reason);
}

void RunRecorder::recordResult(const TrainingResult& result) {
    store_.updateTotals(runId_, result.seconds, result.imagesPerSecond);
}

}  // namespace segscope::core
