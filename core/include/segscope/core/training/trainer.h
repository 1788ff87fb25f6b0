#pragma once
// The training engine: runs one experiment, reporting through a plain C++ observer.
//
// A Trainer owns its model, data loaders and optimiser. run() trains on the calling thread;
// start() runs the same on a thread of the Trainer's own. pause(), resume() and cancel() may be
// called from any thread and take effect between steps (a cancel within one step). Observer
// callbacks are made on the training thread, with plain values only; they must not block for
// long. run() never throws: every failure ends in onFinished(Failed, reason) and in the result.
// An observer callback that throws ends the run Failed with its message ("recording the run
// failed (step): ..."); when onFinished itself throws, the result's message says so. Nothing a
// callback throws leaves the training thread.
//
// Files: a checkpoint (weights and state) is refused before writing when the file system lacks
// the space (DiskFullError, "disk full: PATH, N MB needed (M MB free)"); a write that fails
// anyway removes both files and the temporary ones, and the run fails with the earlier
// checkpoints intact, so it can be resumed. One trainer writes a run folder at a time: the
// caller holds the run's lock (run_lock.h); temporary files left there by a crash are removed at
// start.
#include "segscope/core/analysis/metrics.h"
#include "segscope/core/experiment.h"
#include "segscope/core/training/step_event.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace segscope::core {

struct TrainingStart {
    std::string modelId;
    std::int64_t parameters = 0;
    std::string device;
    std::vector<std::string> classNames;
    std::size_t trainImages = 0;
    std::size_t valImages = 0;
    std::int64_t stepsPerEpoch = 0;  // optimiser steps
    std::int64_t totalSteps = 0;
    int totalEpochs = 0;             // epochs needed to reach totalSteps
    std::int64_t resumedAtStep = 0;  // 0 for a fresh run
    int batchSize = 0;
};

struct ValidationEvent {
    // The evaluation's key in the run store. Per-epoch validation: epochs completed when it ran
    // (1-based after epoch 0); a run measured in training.iterations that ends within an epoch
    // validates at its last step as the epoch it ran in (epochs completed + 1). Per-iteration
    // validation (training.val_every_unit iteration): the evaluation's number, ceil(step / val_every).
    int epoch = 0;
    std::int64_t step = 0;
    SegmentationMetrics metrics;
    std::optional<double> valLoss;
    std::vector<std::string> imageIds;
    std::vector<ImageIou> images;  // per validation image, same order as imageIds
    double wallSeconds = 0.0;
    bool best = false;  // best mIoU so far
};

struct CheckpointEvent {
    std::filesystem::path weights;  // model weights, .safetensors with reference names
    std::filesystem::path state;    // optimiser, schedule, RNG and data-order state
    int epoch = 0;
    std::int64_t step = 0;
    bool best = false;
};

// An ERF snapshot (training.erf_every_epochs) written to `directory` (saveErf layout).
struct ErfEvent {
    int epoch = 0;  // epochs completed; 0 = before the first step
    std::int64_t step = 0;
    std::filesystem::path directory;
    double seconds = 0.0;  // time the snapshot took
};

enum class TrainingOutcome { Finished, Failed, Cancelled };
const char* trainingOutcomeName(TrainingOutcome outcome);

class TrainingObserver {
public:
    virtual ~TrainingObserver() = default;
    virtual void onStarted(const TrainingStart&) {}
    virtual void onStep(const StepEvent&) {}
    virtual void onValidation(const ValidationEvent&) {}
    virtual void onCheckpoint(const CheckpointEvent&) {}
    // A checkpoint's files were deleted by the keep-last policy (TrainerOptions::keepCheckpoints),
    // also ones written before a resume; `best` is false. A recorder forgets the checkpoint.
    virtual void onCheckpointRemoved(const CheckpointEvent&) {}
    virtual void onErf(const ErfEvent&) {}
    virtual void onLog(const std::string& line) {}
    virtual void onPaused(bool paused) {}
    virtual void onFinished(TrainingOutcome outcome, const std::string& reason) {}
};

struct TrainingResult {
    TrainingOutcome outcome = TrainingOutcome::Failed;
    std::string message;
    std::int64_t steps = 0;
    std::optional<double> bestMiou;
    int bestEpoch = -1;
    std::optional<double> finalMiou;
    double seconds = 0.0;
    double imagesPerSecond = 0.0;
    int finalBatchSize = 0;  // smaller than configured after an out-of-memory retry
};

struct TrainerOptions {
    // Checkpoints go to runFolder/checkpoints and ERF snapshots (training.erf_every_epochs) to
    // runFolder/erf; empty: neither is written. Every run validates and checkpoints at its last
    // step, also one measured in training.iterations that ends within an epoch. A resumed run
    // recomputes the ERF snapshot of its checkpoint (and the untrained one) when it is missing.
    std::filesystem::path runFolder;
    // A checkpoint's state file to continue from (optimiser, schedule, data order, RNG).
    std::optional<std::filesystem::path> resumeFrom;
    // Checkpoints kept besides the best one; older ones are deleted, after a resume too (the
    // run's earlier checkpoints count; onCheckpointRemoved reports each deletion).
    int keepCheckpoints = 3;
    // Check the train and val splits before training and refuse with the report on errors.
    bool checkDatasets = true;
    // Called before each optimiser step with the step about to run; may throw to inject faults
    // (tests use it for out-of-memory and crash simulation).
    std::function<void(std::int64_t step)> beforeStep;
    // Multiplies the loss of the given step by NaN (tests: NaN handling). -1: never.
    std::int64_t injectNanAtStep = -1;
};

class Trainer {
public:
    Trainer(Experiment experiment, TrainerOptions options, TrainingObserver* observer);
    ~Trainer();  // cancels and joins a started run
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    TrainingResult run();
    void start();
    // Waits for a started run; returns its result.
    TrainingResult wait();

    void pause();
    void resume();
    void cancel();
    bool isPaused() const { return paused_.load(); }

    const Experiment& experiment() const { return experiment_; }

private:
    class Session;
    friend class Session;
    // Blocks while paused; true when cancelled.
    bool waitWhilePaused();

    Experiment experiment_;
    TrainerOptions options_;
    TrainingObserver* observer_;
    std::atomic<bool> cancelled_{false};
    std::atomic<bool> paused_{false};
    std::mutex pauseMutex_;
    std::condition_variable pauseChanged_;
    std::thread thread_;
    TrainingResult result_;
};

}  // namespace segscope::core
