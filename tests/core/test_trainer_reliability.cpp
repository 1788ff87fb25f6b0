// The trainer under failure: observers that throw, full disks (injected and on a size-limited
// tmpfs), runs that end within an epoch, resumes that prune and recompute what a kill lost, one
// process per run, the prediction cache's checksums, and `erf --checkpoint best` by step.
#include "segscope/core/analysis/erf.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/file_output.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_lock.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/trainer.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <opencv2/core.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace segscope::core;
using segscope::test::tinyExperiment;
using segscope::test::writeDemo;
namespace fs = std::filesystem;
using segscope::test::TempDir;

namespace {

struct Events : TrainingObserver {
    std::vector<ValidationEvent> validations;
    std::vector<CheckpointEvent> checkpoints, removed;
    std::vector<ErfEvent> erfs;
    std::vector<std::string> order;
    std::function<void(const StepEvent&)> onEachStep;
    std::function<void(const CheckpointEvent&)> onEachCheckpoint;
    std::function<void()> onEnd;
    void onStarted(const TrainingStart&) override { order.push_back("started"); }
    void onStep(const StepEvent& e) override {
        if (onEachStep) onEachStep(e);
    }
    void onValidation(const ValidationEvent& e) override { validations.push_back(e); }
    void onCheckpoint(const CheckpointEvent& e) override {
        checkpoints.push_back(e);
        if (onEachCheckpoint) onEachCheckpoint(e);
    }
    void onCheckpointRemoved(const CheckpointEvent& e) override { removed.push_back(e); }
    void onErf(const ErfEvent& e) override {
        erfs.push_back(e);
        order.push_back("erf " + std::to_string(e.step));
    }
    void onFinished(TrainingOutcome, const std::string&) override {
        order.push_back("finished");
        if (onEnd) onEnd();
    }
};

std::set<std::string> filesIn(const fs::path& folder) {
    std::set<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) names.insert(entry.path().filename().string());
    return names;
}

std::string stem(int epoch, std::int64_t step) {
    return erfSnapshotName(epoch, step);
}

class WriteFaultGuard {
public:
    explicit WriteFaultGuard(std::function<int(const fs::path&, std::uint64_t)> hook) {
        setWriteFaultHook(std::move(hook));
    }
    ~WriteFaultGuard() { setWriteFaultHook({}); }
};

// A tmpfs of `megabytes` at `where`, unmounted on destruction; skipped() says why not when the
// process may not mount (not root, no CAP_SYS_ADMIN, a container without mount rights).
class SmallFileSystem {
public:
    SmallFileSystem(const fs::path& where, int megabytes) : where_(where) {
        fs::create_directories(where_);
        const std::string options = "size=" + std::to_string(megabytes) + "m";
        if (::mount("tmpfs", where_.c_str(), "tmpfs", 0, options.c_str()) == 0)
            mounted_ = true;
        else
            reason_ = std::string("cannot mount a tmpfs here (") + std::strerror(errno) + "; needs root)";
    }
    ~SmallFileSystem() {
        if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    const std::string& reason() const { return reason_; }
    bool resize(int megabytes) {
        const std::string options = "size=" + std::to_string(megabytes) + "m";
        return ::mount("tmpfs", where_.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
    }

private:
    fs::path where_;
    bool mounted_ = false;
    std::string reason_;
};

std::vector<fs::path> temporaryFilesUnder(const fs::path& root) {
    std::vector<fs::path> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); ++it) {
        const std::string name = it->path().filename().string();
        if ((name.size() > 4 && name.substr(name.size() - 4) == ".tmp") || name.rfind(".partial-", 0) == 0)
            found.push_back(it->path());
    }
    return found;
}

}  // namespace

// ---- Observers that throw (issue 18 item 3, issue 20 item 12) ----

TEST(TrainerFailures, AnObserverThatThrowsOnTheTrainerThreadEndsTheRunFailedWithItsMessage) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    Events events;
    events.onEachStep = [](const StepEvent& s) {
        if (s.step == 3) throw FileError("/ws/segscope.db", "database or disk is full");
    };
    Trainer trainer(e, {}, &events);
    trainer.start();  // on the trainer's own thread: an escaping exception would terminate
    const TrainingResult result = trainer.wait();
    EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
    EXPECT_EQ(result.message, "recording the run failed (step): /ws/segscope.db: database or disk is full");
    EXPECT_EQ(result.steps, 3);
    EXPECT_EQ(events.order.back(), "finished");
}

TEST(TrainerFailures, OnFinishedThatThrowsCannotTerminateAndTheResultSaysSo) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs.reset();
    e.training.iterations = 2;
    Events events;
    events.onEnd = [] { throw std::runtime_error("database or disk is full"); };
    Trainer trainer(e, {}, &events);
    trainer.start();
    const TrainingResult result = trainer.wait();
    EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
    EXPECT_EQ(result.message, "2 steps in " + result.message.substr(11, result.message.find(';') - 11) +
                                  "; recording the run failed (finish): database or disk is full");
    EXPECT_EQ(result.steps, 2);
}

// ---- Full disk (issue 18 item 3, issue 20 item 12) ----

TEST(FileOutput, AtomicFileReportsAFullDiskWithTheSizeAndLeavesNoTemporaryFile) {
    TempDir dir;
    WriteFaultGuard fault([](const fs::path&, std::uint64_t offset) { return offset >= 1024 * 1024 ? ENOSPC : 0; });
    const std::vector<char> chunk(1024 * 1024, 'x');
    try {
        AtomicFile file(dir / "big.bin");
        for (int i = 0; i < 3; ++i) file.write(chunk.data(), chunk.size());  // the second and third fail
        EXPECT_EQ(file.size(), 3u * 1024 * 1024);
        file.commit();
        FAIL() << "the injected full disk was not reported";
    } catch (const DiskFullError& error) {
        EXPECT_EQ(error.neededBytes(), 3u * 1024 * 1024);
        EXPECT_EQ(std::string(error.what()).rfind("disk full: " + (dir / "big.bin").string() + ", 3.0 MB needed (", 0),
                  0u)
            << error.what();
    }
    EXPECT_TRUE(filesIn(dir.path()).empty()) << "neither the file nor its temporary may remain";
}

TEST(FileOutput, TemporaryNamesCarryThePid) {
    EXPECT_EQ(temporaryPathFor("/a/b.state.pt"), fs::path("/a/b.state.pt." + std::to_string(::getpid()) + ".tmp"));
    EXPECT_EQ(formatMegabytes(0), "0.0 MB");
    EXPECT_EQ(formatMegabytes(1536 * 1024), "1.5 MB");
    EXPECT_EQ(formatMegabytes(10 * 1024), "0.010 MB");
}

TEST(FileOutput, RealFullTmpfsIsADiskFullErrorWithNothingLeft) {
    TempDir dir;
    SmallFileSystem small(dir / "mnt", 1);
    if (!small.mounted()) GTEST_SKIP() << small.reason();
    const std::vector<char> data(2 * 1024 * 1024, 'x');
    try {
        writeFileAtomically(dir / "mnt/big.bin", data.data(), data.size());
        FAIL() << "a 2 MB file fitted on a 1 MB file system";
    } catch (const DiskFullError& error) {
        EXPECT_EQ(std::string(error.what()),
                  "disk full: " + (dir / "mnt/big.bin").string() + ", 2.0 MB needed (1.0 MB free)");
    }
    EXPECT_TRUE(filesIn(dir / "mnt").empty());
}

// The label PNG writer (image_io) may not notice a short write; the cache reads every file back.
TEST(PredictionCacheChecks, FullTmpfsFailsTheCacheWithDiskFullAndRemovesThePartialFolder) {
    TempDir dir;
    SmallFileSystem small(dir / "mnt", 1);
    if (!small.mounted()) GTEST_SKIP() << small.reason();
    PredictionKey key;
    key.classes = 2;
    const fs::path folder = dir / "mnt/predictions/epoch-0001-step-00000001__val";
    fs::create_directories(folder.parent_path());
    try {
        PredictionCacheWriter writer(folder, key, {{"a", {0, 0, 0}}, {"b", {255, 255, 255}}});
        cv::Mat noise(700, 700, CV_8UC1);
        cv::randu(noise, 0, 2);  // incompressible: about 61 KB per PNG
        for (int i = 0; i < 20; ++i) writer.add("image" + std::to_string(i), noise, noise);
        writer.commit();
        FAIL() << "20 x 2 PNGs of 61 KB fitted on a 1 MB file system";
    } catch (const DiskFullError& error) {
        EXPECT_EQ(std::string(error.what()).rfind("disk full: " + folder.parent_path().string() + "/.partial-", 0), 0u)
            << error.what();
    }
    EXPECT_TRUE(filesIn(folder.parent_path()).empty()) << "the partial folder remained";
}

TEST(TrainerFailures, InjectedFullDiskAtTheSecondCheckpointFailsCleanlyAndTheRunResumes) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 3;
    const fs::path folder = dir / "run/checkpoints";
    const fs::path failing = folder / (stem(2, 14) + ".state.pt");
    TrainerOptions options;
    options.runFolder = dir / "run";
    options.keepCheckpoints = 5;
    {
        WriteFaultGuard fault([&](const fs::path& target, std::uint64_t offset) {
            return target == failing && offset > 4096 ? ENOSPC : 0;
        });
        Events events;
        Trainer trainer(e, options, &events);
        trainer.start();
        const TrainingResult result = trainer.wait();
        EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
        EXPECT_EQ(result.message.rfind("disk full: " + failing.string() + ", ", 0), 0u) << result.message;
        EXPECT_NE(result.message.find(" MB needed ("), std::string::npos) << result.message;
        ASSERT_EQ(events.checkpoints.size(), 1u);
        EXPECT_EQ(events.checkpoints[0].step, 7);
    }
    // Only the step-7 checkpoint: the step-14 weights were removed with the failed state, and no
    // temporary file is left.
    EXPECT_EQ(filesIn(folder), (std::set<std::string>{stem(1, 7) + ".safetensors", stem(1, 7) + ".state.pt"}));
    EXPECT_TRUE(temporaryFilesUnder(dir / "run").empty());

    options.resumeFrom = folder / (stem(1, 7) + ".state.pt");
    Events resumed;
    Trainer again(e, options, &resumed);
    const TrainingResult result = again.run();
    ASSERT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    EXPECT_EQ(result.steps, 21);
    EXPECT_TRUE(fs::exists(folder / (stem(3, 21) + ".state.pt")));
}

TEST(TrainerFailures, FullErfSnapshotFailsTheRunAndRemovesTheHalfWrittenSnapshot) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 1;
    e.training.erfEveryEpochs = 1;
    e.training.erfImages = 2;
    TrainerOptions options;
    options.runFolder = dir / "run";
    const fs::path snapshot = dir / "run/erf" / stem(1, 7);
    WriteFaultGuard fault(
        [&](const fs::path& target, std::uint64_t) { return target == snapshot / "stage3.png" ? ENOSPC : 0; });
    Trainer trainer(e, options, nullptr);
    const TrainingResult result = trainer.run();
    EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
    EXPECT_EQ(result.message.rfind("disk full: " + (snapshot / "stage3.png").string() + ", ", 0), 0u) << result.message;
    EXPECT_FALSE(fs::exists(snapshot)) << "a half-written snapshot folder remained";
    EXPECT_TRUE(fs::exists(dir / "run/erf" / stem(0, 0) / "erf.json"));
    EXPECT_TRUE(fs::exists(dir / "run/checkpoints" / (stem(1, 7) + ".state.pt"))) << "the run stays resumable";
    EXPECT_TRUE(temporaryFilesUnder(dir / "run").empty());
}

// A real full file system: a tmpfs that holds one checkpoint but not two.
TEST(TrainerFailures, FullTmpfsFailsTrainingWithDiskFullThenResumesAfterSpaceIsFreed) {
    TempDir dir;
    SmallFileSystem small(dir / "mnt", 60);
    if (!small.mounted()) GTEST_SKIP() << small.reason();
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 2;
    saveExperiment(dir / "exp.json", e);
    const std::string workspace = (dir / "mnt/ws").string();
    const auto failed = segscope::test::runCli("train --config '" + (dir / "exp.json").string() + "' --workspace '" +
                                               workspace + "' 2>&1 < /dev/null");
    EXPECT_EQ(failed.exitCode, 1) << failed.output;  // -1 would be a signal
    EXPECT_NE(failed.output.find("failed: disk full: "), std::string::npos) << failed.output;
    EXPECT_NE(failed.output.find("MB needed ("), std::string::npos) << failed.output;
    EXPECT_TRUE(temporaryFilesUnder(dir / "mnt").empty());
    std::string runId;
    {
        auto store = RunStore::open(workspace);
        const auto runs = store->listRuns();
        ASSERT_EQ(runs.size(), 1u);
        runId = runs[0].id;
        EXPECT_EQ(runs[0].status, RunStatus::Failed);
        const auto latest = store->latestCheckpoint(runId);
        ASSERT_TRUE(latest.has_value()) << "the first checkpoint fits";
        EXPECT_EQ(latest->step, 7);
    }
    ASSERT_TRUE(small.resize(400));
    const auto resumed =
        segscope::test::runCli("train --resume " + runId + " --workspace '" + workspace + "' 2>&1 < /dev/null");
    EXPECT_EQ(resumed.exitCode, 0) << resumed.output;
    auto store = RunStore::open(workspace);
    EXPECT_EQ(store->run(runId)->status, RunStatus::Finished);
    EXPECT_EQ(store->latestCheckpoint(runId)->step, 14);
}

// ---- Runs measured in iterations keep their last steps (issue 20 item 2) ----

TEST(TrainerIterations, TwoIterationsValidateAndCheckpointAtStepTwo) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs.reset();
    e.training.iterations = 2;
    TrainerOptions options;
    options.runFolder = dir / "run";
    Events events;
    Trainer trainer(e, options, &events);
    const TrainingResult result = trainer.run();
    ASSERT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    ASSERT_EQ(events.validations.size(), 1u);
    EXPECT_EQ(events.validations[0].step, 2);
    EXPECT_EQ(events.validations[0].epoch, 1) << "the epoch it ran in";
    ASSERT_EQ(events.checkpoints.size(), 1u);
    EXPECT_EQ(events.checkpoints[0].step, 2);
    EXPECT_TRUE(fs::exists(dir / "run/checkpoints" / (stem(0, 2) + ".state.pt")));
    EXPECT_EQ(result.finalMiou, events.validations[0].metrics.mIoU);
}

// 7 steps per epoch, 10 iterations: the epoch-1 evaluation at step 7, then the last at step 10,
// recorded as evaluation 2 (not replacing evaluation 1), and final_miou is the step-10 value.
TEST(TrainerIterations, TenIterationsEndWithAnEvaluationAndCheckpointAtStepTen) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs.reset();
    e.training.iterations = 10;
    e.training.erfEveryEpochs = 1;
    e.training.erfImages = 1;
    saveExperiment(dir / "exp.json", e);
    const std::string workspace = (dir / "ws").string();
    const auto trained = segscope::test::runCli("train --config '" + (dir / "exp.json").string() + "' --workspace '" +
                                                workspace + "' 2>&1 < /dev/null");
    ASSERT_EQ(trained.exitCode, 0) << trained.output;
    auto store = RunStore::open(workspace);
    const auto run = store->listRuns().at(0);
    const auto epochs = store->epochs(run.id);
    ASSERT_EQ(epochs.size(), 2u);
    EXPECT_EQ(epochs[0].epoch, 1);
    EXPECT_EQ(epochs[0].step, 7);
    EXPECT_EQ(epochs[1].epoch, 2);
    EXPECT_EQ(epochs[1].step, 10);
    EXPECT_EQ(run.finalMiou, epochs[1].mIoU);
    const auto latest = store->latestCheckpoint(run.id);
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->step, 10);
    std::vector<std::int64_t> snapshotSteps;
    for (const auto& s : listErfSnapshots(run.folder)) snapshotSteps.push_back(s.step);
    EXPECT_EQ(snapshotSteps, (std::vector<std::int64_t>{0, 7, 10}));
}

// The case: iterations=70 on 450 training images (batch 8: 56 steps per epoch) used to
// end with the last checkpoint and evaluation at step 56 and final_miou from epoch 1.
TEST(TrainerIterations, SeventyIterationsOn450ImagesCheckpointAndEvaluateAtStepSeventy) {
    TempDir dir;
    writeDemo(dir / "demo", 600, 32);
    Experiment e = tinyExperiment(dir / "demo");
    e.transforms.height = e.transforms.width = 32;
    e.training.batchSize = 8;
    e.training.epochs.reset();
    e.training.iterations = 70;
    saveExperiment(dir / "exp.json", e);
    const std::string workspace = (dir / "ws").string();
    const auto trained = segscope::test::runCli("train --config '" + (dir / "exp.json").string() + "' --workspace '" +
                                                workspace + "' 2>&1 < /dev/null");
    ASSERT_EQ(trained.exitCode, 0) << trained.output;
    EXPECT_NE(trained.output.find("450 train / 150 val images, batch 8, 70 steps (2 epochs)"), std::string::npos)
        << trained.output;
    auto store = RunStore::open(workspace);
    const auto run = store->listRuns().at(0);
    const auto epochs = store->epochs(run.id);
    ASSERT_EQ(epochs.size(), 2u);
    EXPECT_EQ(epochs[0].step, 56);
    EXPECT_EQ(epochs[1].step, 70);
    EXPECT_EQ(run.finalMiou, epochs[1].mIoU);
    EXPECT_EQ(store->latestCheckpoint(run.id)->step, 70);
}

// Per-iteration validation numbers its evaluations (the store's key), the last one included.
TEST(TrainerIterations, PerIterationEvaluationsAreNumberedAndTheLastStepIsEvaluated) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs.reset();
    e.training.iterations = 5;
    e.training.valEveryUnit = ScheduleUnit::Iteration;
    e.training.valEvery = 2;
    TrainerOptions options;
    options.runFolder = dir / "run";
    Events events;
    Trainer trainer(e, options, &events);
    ASSERT_EQ(trainer.run().outcome, TrainingOutcome::Finished);
    std::vector<std::pair<int, std::int64_t>> seen;
    for (const auto& v : events.validations) seen.emplace_back(v.epoch, v.step);
    EXPECT_EQ(seen, (std::vector<std::pair<int, std::int64_t>>{{1, 2}, {2, 4}, {3, 5}}));
    EXPECT_EQ(events.checkpoints.back().step, 5);
}

// ---- Pruning across resumes (issue 20 item 6) and ERF snapshots a kill lost (item 7) ----

TEST(TrainerResume, KeepCheckpointsHoldsAcrossAResumeAndRemovalsAreReported) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 5;
    TrainerOptions options;
    options.runFolder = dir / "run";
    options.keepCheckpoints = 2;
    const fs::path folder = dir / "run/checkpoints";
    std::optional<std::int64_t> best;
    {
        Events events;
        Trainer* self = nullptr;
        events.onEachStep = [&](const StepEvent& s) {
            if (s.step == 22) self->cancel();
        };
        Trainer trainer(e, options, &events);
        self = &trainer;
        ASSERT_EQ(trainer.run().outcome, TrainingOutcome::Cancelled);
        for (const auto& v : events.validations)
            if (v.best) best = v.step;
    }
    options.resumeFrom = folder / (stem(3, 21) + ".state.pt");
    Events events;
    Trainer trainer(e, options, &events);
    ASSERT_EQ(trainer.run().outcome, TrainingOutcome::Finished);
    for (const auto& v : events.validations)
        if (v.best) best = v.step;
    ASSERT_TRUE(best.has_value());
    // The last two (28, 35) and the best; nothing from before the resume beyond those.
    std::set<std::string> expected;
    for (const std::int64_t step : {std::int64_t(28), std::int64_t(35), *best}) {
        expected.insert(stem(int(step / 7), step) + ".safetensors");
        expected.insert(stem(int(step / 7), step) + ".state.pt");
    }
    EXPECT_EQ(filesIn(folder), expected);
    std::set<std::int64_t> removedSteps;
    for (const auto& r : events.removed) removedSteps.insert(r.step);
    for (const std::int64_t step : {7, 14, 21})
        if (step != *best) {
            EXPECT_EQ(removedSteps.count(step), 1u) << "removal of step " << step << " not reported";
        }
}

TEST(TrainerResume, ResumeRecomputesTheErfSnapshotsAKillLost) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 3;
    e.training.erfEveryEpochs = 1;
    e.training.erfImages = 2;
    TrainerOptions options;
    options.runFolder = dir / "run";
    options.keepCheckpoints = 5;
    {
        Trainer trainer(e, options, nullptr);
        ASSERT_EQ(trainer.run().outcome, TrainingOutcome::Finished);
    }
    const fs::path erf = dir / "run/erf";
    const ErfResult original0 = loadErf(erf / stem(0, 0)), original14 = loadErf(erf / stem(2, 14));
    // As if killed right after the step-14 checkpoint: its snapshot (and, say, the first) lost,
    // the step-14 one half written (no erf.json, a temporary file of the killed process).
    fs::remove_all(erf / stem(0, 0));
    fs::remove(erf / stem(2, 14) / "erf.json");
    std::ofstream(erf / stem(2, 14) / "stage2.png.99999.tmp") << "cut off";
    fs::remove_all(erf / stem(3, 21));
    options.resumeFrom = dir / "run/checkpoints" / (stem(2, 14) + ".state.pt");
    Events events;
    Trainer trainer(e, options, &events);
    ASSERT_EQ(trainer.run().outcome, TrainingOutcome::Finished);
    std::vector<std::int64_t> steps;
    for (const auto& s : listErfSnapshots(dir / "run")) steps.push_back(s.step);
    EXPECT_EQ(steps, (std::vector<std::int64_t>{0, 7, 14, 21}));
    EXPECT_EQ(events.order, (std::vector<std::string>{"started", "erf 0", "erf 14", "erf 21", "finished"}));
    EXPECT_TRUE(temporaryFilesUnder(dir / "run").empty());
    for (const auto& [original, folder] :
         {std::pair{&original0, erf / stem(0, 0)}, std::pair{&original14, erf / stem(2, 14)}}) {
        const ErfResult again = loadErf(folder);
        for (const auto& stage : original->stages) {
            const double scale = stage.map.abs().max().item<double>();
            EXPECT_LT((again.find(stage.stage)->map - stage.map).abs().max().item<double>(), 1e-4 * scale)
                << folder << " " << stage.stage;
        }
    }
}

// ---- One process per run (issue 20 item 4) ----

TEST(RunLock, ASecondLockFailsNamingTheHolderAndAKilledHolderReleasesIt) {
    TempDir dir;
    {
        RunLock lock = RunLock::acquire(dir / "run");
        try {
            RunLock::acquire(dir / "run");
            FAIL() << "a second lock was granted";
        } catch (const RunLockedError& e) {
            EXPECT_EQ(e.holder().pid, long(::getpid()));
            EXPECT_NE(std::string(e.what()).find("is in use by pid " + std::to_string(::getpid())), std::string::npos)
                << e.what();
        }
        const auto holder = RunLock::holder(dir / "run");
        ASSERT_TRUE(holder.has_value());
        EXPECT_EQ(holder->pid, long(::getpid()));
    }
    EXPECT_FALSE(RunLock::holder(dir / "run").has_value()) << "released on destruction";

    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t child = fork();
    if (child == 0) {
        RunLock lock = RunLock::acquire(dir / "run");
        const char byte = 1;
        if (write(ready[1], &byte, 1) != 1) _exit(2);
        pause();
        _exit(0);
    }
    char byte = 0;
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    EXPECT_THROW(RunLock::acquire(dir / "run"), RunLockedError);
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_NO_THROW(RunLock::acquire(dir / "run")) << "the kernel releases a killed holder's lock";
    close(ready[0]);
    close(ready[1]);
}

// ---- The prediction cache verifies its files (issue 20 item 8) ----

namespace {

struct CacheFixture {
    TempDir dir;
    LoadedRun run;
    fs::path runFolder;
    CacheFixture() {
        writeDemo(dir / "demo", 12, 48);
        run.runId = "cache";
        run.experiment = tinyExperiment(dir / "demo");
        run.experiment.transforms.height = run.experiment.transforms.width = 48;
        run.classes = 5;
        torch::manual_seed(3);
        run.model = createModel("segformer-b0", 5);
        runFolder = dir / "run";
        fs::create_directories(runFolder / "checkpoints");
        run.checkpoint = runFolder / "checkpoints/epoch-0001-step-00000001.safetensors";
        writeSafetensors(run.checkpoint, stateDict(*run.model), {{"classes", "5"}});
        for (int c = 0; c < 5; ++c) run.classInfo.push_back({"class" + std::to_string(c), vocColor(c)});
    }
};

}  // namespace

TEST(PredictionCacheChecks, DeletedTruncatedOrEditedFilesAreStaleAndPredictedAgain) {
    CacheFixture f;
    const SplitPrediction first = predictSplit(f.run, f.runFolder, "val");
    ASSERT_TRUE(first.set.has_value());
    const SegmentationMetrics expected = first.set->metrics();
    const PredictionKey key = predictionKey(f.run, "val");
    ASSERT_EQ(openPredictions(first.folder, key).state, CacheState::Valid);

    // A truncated prediction PNG.
    fs::resize_file(first.folder / "pred/000001.png", 10);
    CacheLookup lookup = openPredictions(first.folder, key);
    EXPECT_EQ(lookup.state, CacheState::Stale);
    EXPECT_EQ(lookup.reason.rfind("pred/000001.png changed since it was written (10 bytes, ", 0), 0u) << lookup.reason;
    SplitPrediction again = predictSplit(f.run, f.runFolder, "val");
    EXPECT_FALSE(again.fromCache);
    EXPECT_EQ(again.set->metrics().mIoU, expected.mIoU);
    EXPECT_EQ(openPredictions(first.folder, key).state, CacheState::Valid);

    // A deleted gt/ folder.
    fs::remove_all(first.folder / "gt");
    lookup = openPredictions(first.folder, key);
    EXPECT_EQ(lookup.state, CacheState::Stale);
    EXPECT_EQ(lookup.reason, "gt/000000.png is missing");
    again = predictSplit(f.run, f.runFolder, "val");
    EXPECT_FALSE(again.fromCache);
    EXPECT_TRUE(fs::exists(first.folder / "gt/000000.png"));

    // Edited confusion counts, same file size.
    const TensorMap tensors = readSafetensors(first.folder / "confusion.safetensors");
    torch::Tensor counts = tensors.at("confusion").clone();
    counts.index_put_({0, 0, 0}, counts.index({0, 0, 0}).item<std::int64_t>() + 1000);
    writeSafetensors(first.folder / "confusion.safetensors", {{"confusion", counts}},
                     {{"format", "segscope-predictions"}, {"version", std::to_string(kPredictionCacheVersion)}});
    lookup = openPredictions(first.folder, key);
    EXPECT_EQ(lookup.state, CacheState::Stale);
    EXPECT_EQ(lookup.reason, "confusion.safetensors changed since it was written (checksum)");
    again = predictSplit(f.run, f.runFolder, "val");
    EXPECT_FALSE(again.fromCache);
    EXPECT_EQ(again.set->metrics().mIoU, expected.mIoU);
    EXPECT_EQ(again.set->totals().count(0, 0), first.set->totals().count(0, 0));
    EXPECT_TRUE(predictSplit(f.run, f.runFolder, "val").fromCache);
}

TEST(PredictionCacheChecks, PartialFoldersOfDeadWritersAreRemovedAndLiveOnesKept) {
    CacheFixture f;
    const fs::path predictions = f.runFolder / "predictions";
    fs::create_directories(predictions);
    pid_t dead = 0;
    {
        const pid_t child = fork();
        if (child == 0) _exit(0);
        waitpid(child, nullptr, 0);
        dead = child;  // reaped: no process has this pid now (until it is reused)
    }
    const fs::path stale = predictions / (".partial-epoch-0001-step-00000001__val-" + std::to_string(dead) + "-17");
    const fs::path live =
        predictions / (".partial-epoch-0001-step-00000001__val-" + std::to_string(::getpid()) + "-18");
    fs::create_directories(stale / "pred");
    fs::create_directories(live / "pred");
    ASSERT_TRUE(predictSplit(f.run, f.runFolder, "val").set.has_value());
    EXPECT_FALSE(fs::exists(stale)) << "a dead writer's partial folder remained";
    EXPECT_TRUE(fs::exists(live)) << "a live writer's partial folder was removed";
}
