#pragma once
// A TrainingObserver that records a run in the workspace's RunStore as it happens (steps,
// evaluations with per-class and per-image rows, checkpoints, status), then forwards every event
// of TrainingObserver, without exception, to another observer (a terminal progress bar, the
// GUI's worker). Used by segscope-cli and the
// GUI alike, so both write the same database.
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/trainer.h"

#include <string>

namespace segscope::core {

// Records a new run of `experiment` in the store; its folder receives experiment.json (with a
// relative dataset root or pretrained file made absolute, so a resume from elsewhere finds them). Returns
// the run's id. Throws Error/FileError when the workspace cannot be written.
std::string createRecordedRun(RunStore& store, const Experiment& experiment);

// What a recorded run needs to continue: its experiment and its latest checkpoint's state file
// (none: it restarts from the beginning).
struct ResumePoint {
    Experiment experiment;
    std::optional<std::filesystem::path> checkpoint;
    std::int64_t step = 0;
};
// Prepares run `runId` to continue: reads its experiment and latest checkpoint and deletes the
// rows recorded after that checkpoint (the resumed run records them again). Throws Error for an
// unknown run, one still running, or one that has finished.
ResumePoint prepareResume(RunStore& store, const std::string& runId);

class RunRecorder : public TrainingObserver {
public:
    // `store` and `next` must outlive the recorder; `next` may be null.
    RunRecorder(RunStore& store, std::string runId, TrainingObserver* next = nullptr);

    void onStarted(const TrainingStart& start) override;
    void onStep(const StepEvent& event) override;
    void onValidation(const ValidationEvent& event) override;
    void onCheckpoint(const CheckpointEvent& event) override;
    void onCheckpointRemoved(const CheckpointEvent& event) override;
    void onErf(const ErfEvent& event) override;
    void onLog(const std::string& line) override;
    void onPaused(bool paused) override;
    void onFinished(TrainingOutcome outcome, const std::string& reason) override;

    // Writes the final totals of a result (seconds, images/s).
    void recordResult(const TrainingResult& result);

private:
    RunStore& store_;
    std::string runId_;
    TrainingObserver* next_;
};

}  // namespace segscope::core
