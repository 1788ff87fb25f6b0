#include "segscope/core/analysis/erf.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/trainer.h"
#include "segscope/core/training/training_parts.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <c10/util/Exception.h>
#include <algorithm>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

using namespace segscope::core;
using segscope::test::writeDemo;
namespace fs = std::filesystem;

namespace {

// The shared tiny experiment with flips and a poly schedule with warm-up, so that every part of
// a training step runs.
Experiment tinyExperiment(const fs::path& demoRoot) {
    Experiment e = segscope::test::tinyExperiment(demoRoot);
    e.transforms.horizontalFlip = true;
    e.schedule.type = ScheduleType::Poly;
    e.schedule.warmupIterations = 5;
    return e;
}

// Records every event as a line, in order.
class Recorder : public TrainingObserver {
public:
    std::vector<std::string> events;
    std::vector<StepEvent> steps;
    std::vector<ValidationEvent> validations;
    std::vector<std::string> logs;
    std::function<void(const StepEvent&)> onEachStep;
    std::mutex mutex;
    std::condition_variable changed;
    bool pausedSeen = false;

    void onStarted(const TrainingStart& s) override { add("started " + std::to_string(s.totalSteps)); }
    void onStep(const StepEvent& e) override {
        {
            std::lock_guard<std::mutex> lock(mutex);
            steps.push_back(e);
        }
        add("step " + std::to_string(e.step));
        if (onEachStep) onEachStep(e);
    }
    void onValidation(const ValidationEvent& e) override {
        validations.push_back(e);
        add("validation " + std::to_string(e.epoch));
    }
    void onCheckpoint(const CheckpointEvent& e) override { add("checkpoint " + std::to_string(e.step)); }
    void onErf(const ErfEvent& e) override {
        add("erf " + std::to_string(e.epoch) + " " + std::to_string(e.step));
        erfFolders.push_back(e.directory);
    }
    std::vector<fs::path> erfFolders;
    void onLog(const std::string& line) override { logs.push_back(line); }
    void onPaused(bool paused) override {
        add(paused ? "paused" : "resumed");
        std::lock_guard<std::mutex> lock(mutex);
        pausedSeen = pausedSeen || paused;
        changed.notify_all();
    }
    void onFinished(TrainingOutcome o, const std::string&) override {
        add(std::string("finished ") + trainingOutcomeName(o));
    }

private:
    void add(const std::string& e) {
        std::lock_guard<std::mutex> lock(mutex);
        events.push_back(e);
    }
};

}  // namespace

TEST(Trainer, DemoReachesItsMiouThreshold) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo", 240, 64);
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 7;
    e.training.batchSize = 8;
    Recorder recorder;
    Trainer trainer(e, {}, &recorder);
    const TrainingResult result = trainer.run();
    ASSERT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    ASSERT_TRUE(result.finalMiou.has_value());
    EXPECT_GE(*result.bestMiou, 0.80) << "best mIoU after 7 epochs of segformer-b0 on the 64x64 demo";
    EXPECT_EQ(recorder.validations.size(), 7u);
    // Learning happened: the last epoch's loss is well below the first step's.
    EXPECT_LT(recorder.steps.back().loss, 0.5 * recorder.steps.front().loss);
}

TEST(Trainer, EventsFireInOrderWithCheckpoints) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 2;
    Recorder recorder;
    TrainerOptions options;
    options.runFolder = dir / "run";
    Trainer trainer(e, options, &recorder);
    const TrainingResult result = trainer.run();
    ASSERT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    // 40 images, a quarter for val: 30 train images, batch 4, last partial batch dropped: 7 steps.
    const std::int64_t perEpoch = 7;
    std::vector<std::string> expected = {"started " + std::to_string(2 * perEpoch)};
    for (int epoch = 1; epoch <= 2; ++epoch) {
        for (std::int64_t s = 1; s <= perEpoch; ++s)
            expected.push_back("step " + std::to_string((epoch - 1) * perEpoch + s));
        expected.push_back("validation " + std::to_string(epoch));
        expected.push_back("checkpoint " + std::to_string(epoch * perEpoch));
    }
    expected.push_back("finished finished");
    EXPECT_EQ(recorder.events, expected);
    EXPECT_EQ(result.steps, 2 * perEpoch);
    for (std::size_t i = 0; i < recorder.steps.size(); ++i) {
        EXPECT_EQ(recorder.steps[i].epoch, int(i / perEpoch));
        EXPECT_GT(recorder.steps[i].imagesPerSecond, 0.0);
        EXPECT_TRUE(std::isfinite(recorder.steps[i].loss));
    }
    ASSERT_EQ(recorder.validations.size(), 2u);
    EXPECT_EQ(recorder.validations[0].imageIds.size(), 10u);  // every val image has its IoU
    EXPECT_EQ(recorder.validations[0].metrics.perClass.size(), 5u);
    // Checkpoints: model weights in reference names and the training state.
    EXPECT_TRUE(fs::exists(dir / "run/checkpoints/epoch-0002-step-00000014.safetensors"));
    EXPECT_TRUE(fs::exists(dir / "run/checkpoints/epoch-0002-step-00000014.state.pt"));
}

TEST(Trainer, ErfSnapshotsBeforeTrainingAndEveryNEpochs) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 3;
    e.training.erfEveryEpochs = 2;
    e.training.erfImages = 3;
    e.training.checkpointEvery = 0;
    e.training.valEvery = 3;
    Recorder recorder;
    TrainerOptions options;
    options.runFolder = dir / "run";
    Trainer trainer(e, options, &recorder);
    const TrainingResult result = trainer.run();
    ASSERT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    // 7 steps per epoch: snapshots before the first step, after epoch 2, and after the last (3).
    std::vector<std::string> erfEvents;
    for (const auto& event : recorder.events)
        if (event.rfind("erf ", 0) == 0) erfEvents.push_back(event);
    EXPECT_EQ(erfEvents, (std::vector<std::string>{"erf 0 0", "erf 2 14", "erf 3 21"}));
    EXPECT_EQ(recorder.events.at(1), "erf 0 0") << "the untrained snapshot comes before the first step";
    EXPECT_EQ(recorder.events.back(), "finished finished");

    const std::vector<ErfSnapshot> snapshots = listErfSnapshots(dir / "run");
    ASSERT_EQ(snapshots.size(), 3u);
    EXPECT_EQ(snapshots[0].epoch, 0);
    EXPECT_EQ(snapshots[1].epoch, 2);
    EXPECT_EQ(snapshots[2].step, 21);
    EXPECT_EQ(snapshots[1].directory, dir / "run/erf/epoch-0002-step-00000014");
    EXPECT_EQ(recorder.erfFolders.at(1), snapshots[1].directory);

    const ErfResult first = loadErf(snapshots[0].directory);
    const ErfResult last = loadErf(snapshots[2].directory);
    EXPECT_EQ(first.images, 3);
    EXPECT_EQ(first.height, 64);
    EXPECT_EQ(first.width, 64);
    const std::vector<std::string> stages{"stage1", "stage2", "stage3", "stage4", "decoder"};
    ASSERT_EQ(first.stages.size(), stages.size());
    for (std::size_t i = 0; i < stages.size(); ++i) EXPECT_EQ(first.stages[i].stage, stages[i]);

    // The first snapshot is the untrained model's ERF: the same seed builds the same model.
    torch::manual_seed(0);
    auto untrained = createModel("segformer-b0", 5);
    ErfOptions erfOptions;
    erfOptions.batchSize = 4;
    const auto valSet = Dataset::open(datasetSpec(e, e.dataset.valSplit));
    const ErfResult expected = computeErf(*untrained, valSet, transformConfig(e), 3, erfOptions);
    for (const auto& stage : expected.stages) {
        const torch::Tensor recorded = first.find(stage.stage)->map;
        const double scale = stage.map.abs().max().item<double>();
        EXPECT_LT((recorded - stage.map).abs().max().item<double>(), 1e-4 * scale) << stage.stage;
    }
    // Training changed the ERF.
    const torch::Tensor before = first.find("stage4")->map, after = last.find("stage4")->map;
    EXPECT_GT((before - after).abs().max().item<double>(), 1e-3 * before.abs().max().item<double>());
}

TEST(Trainer, CancelIsHonouredWithinOneStep) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    Recorder recorder;
    Trainer* self = nullptr;
    recorder.onEachStep = [&](const StepEvent& s) {
        if (s.step == 3) self->cancel();
    };
    Trainer trainer(e, {}, &recorder);
    self = &trainer;
    const TrainingResult result = trainer.run();
    EXPECT_EQ(result.outcome, TrainingOutcome::Cancelled);
    EXPECT_EQ(result.steps, 3);
    EXPECT_EQ(recorder.events.back(), "finished cancelled");
}

TEST(Trainer, PauseHoldsBetweenStepsAndResumeContinues) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 1;
    Recorder recorder;
    Trainer* self = nullptr;
    recorder.onEachStep = [&](const StepEvent& s) {
        if (s.step == 2) self->pause();
    };
    Trainer trainer(e, {}, &recorder);
    self = &trainer;
    trainer.start();
    {
        std::unique_lock<std::mutex> lock(recorder.mutex);
        ASSERT_TRUE(recorder.changed.wait_for(lock, std::chrono::seconds(60), [&] { return recorder.pausedSeen; }));
    }
    {
        std::lock_guard<std::mutex> lock(recorder.mutex);
        EXPECT_EQ(recorder.steps.size(), 2u) << "the pause holds before the next step";
    }
    EXPECT_TRUE(trainer.isPaused());
    trainer.resume();
    const TrainingResult result = trainer.wait();
    EXPECT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    EXPECT_EQ(result.steps, 7);
    // No step ran while paused: "resumed" follows "paused" directly, between steps 2 and 3.
    const auto& events = recorder.events;
    const auto paused = std::find(events.begin(), events.end(), "paused");
    ASSERT_NE(paused, events.end());
    ASSERT_NE(paused + 1, events.end());
    EXPECT_EQ(*(paused + 1), "resumed");
    EXPECT_EQ(std::find(events.begin(), paused, "step 2") != paused, true);
    EXPECT_EQ(std::find(events.begin(), paused, "step 3"), paused) << "step 3 ran before the pause";
    EXPECT_NE(std::find(paused, events.end(), "step 3"), events.end());
}

TEST(Trainer, NanLossStopsWithAClearMessageAndKeepsTheCheckpoint) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.valEvery = 2;
    e.training.valEveryUnit = ScheduleUnit::Iteration;
    Recorder recorder;
    TrainerOptions options;
    options.runFolder = dir / "run";
    options.injectNanAtStep = 3;
    Trainer trainer(e, options, &recorder);
    const TrainingResult result = trainer.run();
    EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
    EXPECT_NE(result.message.find("the loss became NaN at step 3 (epoch 1)"), std::string::npos) << result.message;
    const fs::path kept = dir / "run/checkpoints/epoch-0000-step-00000002.safetensors";
    EXPECT_NE(result.message.find(kept.string()), std::string::npos) << result.message;
    EXPECT_TRUE(fs::exists(kept));
    ASSERT_EQ(recorder.steps.size(), 2u);  // steps 1 and 2 were reported, the NaN step was not
}

TEST(Trainer, OutOfMemoryRetriesAtHalfTheBatch) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 1;
    e.training.batchSize = 8;
    Recorder recorder;
    TrainerOptions options;
    bool thrown = false;
    options.beforeStep = [&](std::int64_t step) {
        if (step == 2 && !thrown) {
            thrown = true;
            throw c10::OutOfMemoryError({__func__, __FILE__, std::uint32_t(__LINE__)},
                                        "CUDA out of memory. Tried to allocate 2.00 GiB");
        }
    };
    Trainer trainer(e, options, &recorder);
    const TrainingResult result = trainer.run();
    ASSERT_EQ(result.outcome, TrainingOutcome::Finished) << result.message;
    EXPECT_EQ(result.finalBatchSize, 4);
    bool logged = false;
    for (const auto& line : recorder.logs) logged = logged || line == "out of memory at batch size 8; retrying at 4";
    EXPECT_TRUE(logged);
}

TEST(Trainer, OutOfMemoryWithoutRetryFailsWithAdvice) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.oomRetryHalfBatch = false;
    Recorder recorder;
    TrainerOptions options;
    options.beforeStep = [&](std::int64_t) {
        throw c10::OutOfMemoryError({__func__, __FILE__, std::uint32_t(__LINE__)}, "CUDA out of memory.");
    };
    Trainer trainer(e, options, &recorder);
    const TrainingResult result = trainer.run();
    EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
    EXPECT_EQ(result.message.rfind("out of memory at batch size 4 on cpu: lower training.batch_size", 0), 0u)
        << result.message;
}

TEST(Trainer, DatasetWithErrorsIsRefusedWithTheReport) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo");
    fs::resize_file(dir / "demo/JPEGImages/demo_00001.jpg", 50);
    Experiment e = tinyExperiment(dir / "demo");
    Recorder recorder;
    Trainer trainer(e, {}, &recorder);
    const TrainingResult result = trainer.run();
    EXPECT_EQ(result.outcome, TrainingOutcome::Failed);
    EXPECT_NE(result.message.find("the train split has problems"), std::string::npos) << result.message;
    EXPECT_NE(result.message.find("demo_00001.jpg: truncated"), std::string::npos) << result.message;
    EXPECT_TRUE(recorder.steps.empty());
}

TEST(LearningRateSchedule, MatchesTheFormulas) {
    ExperimentSchedule s;
    s.type = ScheduleType::Poly;
    s.power = 0.9;
    s.minLearningRate = 1e-4;
    LearningRateSchedule poly(s, 0.01, 100, 10);
    EXPECT_DOUBLE_EQ(poly.learningRate(0), 0.01);
    EXPECT_DOUBLE_EQ(poly.learningRate(50), (0.01 - 1e-4) * std::pow(0.5, 0.9) + 1e-4);
    EXPECT_DOUBLE_EQ(poly.learningRate(100), 1e-4);
    s.type = ScheduleType::Step;
    s.stepSize = 3;
    s.gamma = 0.7;
    s.per = ScheduleUnit::Epoch;
    LearningRateSchedule step(s, 5e-4, 300, 10);
    EXPECT_DOUBLE_EQ(step.learningRate(29), 5e-4);
    EXPECT_DOUBLE_EQ(step.learningRate(30), 5e-4 * 0.7);
    EXPECT_DOUBLE_EQ(step.learningRate(65), 5e-4 * 0.7 * 0.7);
    s.type = ScheduleType::Cosine;
    s.minLearningRate = 0;
    LearningRateSchedule cosine(s, 1.0, 100, 10);
    EXPECT_NEAR(cosine.learningRate(50), 0.5, 1e-12);
    s.type = ScheduleType::Constant;
    s.warmupIterations = 10;
    s.warmupRatio = 0.1;
    LearningRateSchedule warm(s, 1.0, 100, 10);
    EXPECT_DOUBLE_EQ(warm.learningRate(0), 0.1);
    EXPECT_DOUBLE_EQ(warm.learningRate(5), 1.0 - 0.5 * 0.9);
    EXPECT_DOUBLE_EQ(warm.learningRate(10), 1.0);
}

TEST(SegmentationLoss, IgnoresVoidAndMatchesCrossEntropyByHand) {
    // Two pixels: logits favour class 1 on the first, the second is void.
    const auto logits = torch::tensor({2.0f, 0.0f, 1.0f, 3.0f}).reshape({1, 2, 1, 2});
    const auto labels = torch::tensor({std::int64_t(0), std::int64_t(255)}).reshape({1, 1, 2});
    SegmentationLoss ce(LossType::CrossEntropy, 2, std::nullopt, 1.0);
    const double expected = -std::log(std::exp(2.0) / (std::exp(2.0) + std::exp(1.0)));
    EXPECT_NEAR(ce(logits, labels).item<double>(), expected, 1e-6);
    const auto allVoid = torch::full({1, 1, 2}, 255, torch::kInt64);
    EXPECT_EQ(ce(logits, allVoid).item<double>(), 0.0);
    SegmentationLoss weighted(LossType::CrossEntropy, 2, std::vector<double>{2.0, 1.0}, 1.0);
    EXPECT_NEAR(weighted(logits, labels).item<double>(), expected, 1e-6);  // one pixel: weight cancels
}

// Gradients that depend on the parameters, so both optimisers must follow the same trajectory.
static void setQuadraticGradients(const std::vector<torch::Tensor>& params, int step) {
    for (std::size_t i = 0; i < params.size(); ++i) {
        torch::NoGradGuard noGrad;
        params[i].mutable_grad() = params[i] * 0.5 + torch::full_like(params[i], 0.1 * double(i + 1) - 0.01 * step);
    }
}

TEST(FusedAdamW, FollowsLibTorchAdamWExactlyAndResumesFromItsState) {
    for (const bool amsgrad : {false, true}) {
        torch::manual_seed(3);
        std::vector<torch::Tensor> a{torch::randn({7, 5}), torch::randn({11}), torch::randn({3, 2, 2})};
        std::vector<torch::Tensor> b;
        for (auto& t : a) {
            t.set_requires_grad(true);
            b.push_back(t.detach().clone().set_requires_grad(true));
        }
        auto options = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.99}).weight_decay(0.05).amsgrad(amsgrad);
        const auto groups = [&](const std::vector<torch::Tensor>& p) {
            auto head = std::make_unique<torch::optim::AdamWOptions>(options);
            head->lr(1e-1);  // a second group at another rate, as makeOptimizer's head group
            return std::vector<torch::optim::OptimizerParamGroup>{
                torch::optim::OptimizerParamGroup({p[0], p[1]}),
                torch::optim::OptimizerParamGroup({p[2]}, std::move(head))};
        };
        torch::optim::AdamW reference(groups(a), options);
        FusedAdamW fused(groups(b), options);
        for (int step = 0; step < 6; ++step) {
            setQuadraticGradients(a, step);
            setQuadraticGradients(b, step);
            reference.step();
            fused.step();
        }
        for (std::size_t i = 0; i < a.size(); ++i)
            EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-6) << "param " << i << " amsgrad " << amsgrad;
        // The state is AdamW's: it saves, loads into a fresh optimiser, and the steps go on alike.
        std::stringstream buffer;
        {
            torch::serialize::OutputArchive archive;
            fused.save(archive);
            archive.save_to(buffer);
        }
        std::vector<torch::Tensor> c;
        for (auto& t : b) c.push_back(t.detach().clone().set_requires_grad(true));
        FusedAdamW resumed(groups(c), options);
        {
            torch::serialize::InputArchive archive;
            archive.load_from(buffer);
            resumed.load(archive);
        }
        for (int step = 6; step < 9; ++step) {
            setQuadraticGradients(a, step);
            setQuadraticGradients(c, step);
            reference.step();
            resumed.step();
        }
        for (std::size_t i = 0; i < a.size(); ++i)
            EXPECT_LT((a[i] - c[i]).abs().max().item<double>(), 1e-6) << "param " << i << " after resume";
        const auto& state =
            static_cast<const torch::optim::AdamWParamState&>(*resumed.state().at(c[0].unsafeGetTensorImpl()));
        EXPECT_EQ(state.step(), 9);
    }
}

TEST(GradScaler, DisabledPassesThroughAndEnabledUnscalesOnCpu) {
    GradScaler off(false);
    auto w = torch::ones({2}, torch::requires_grad());
    EXPECT_TRUE(torch::equal(off.scale(w.sum()), w.sum()));
}

TEST(ResumeAfterKill, SameLossSequenceAsAnUninterruptedRun) {
    segscope::test::TempDir dir;
    writeDemo(dir / "demo", 80, 64);
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 3;
    saveExperiment(dir / "exp.json", e);
    const std::string cli = segscope::test::cliExecutable();

    auto uninterrupted = segscope::test::runCli("train --config '" + (dir / "exp.json").string() + "' --workspace '" +
                                                (dir / "wa").string() + "' > /dev/null 2>&1");
    ASSERT_EQ(uninterrupted.exitCode, 0);
    auto storeA = RunStore::open(dir / "wa");
    const auto runA = storeA->listRuns().at(0).id;
    const auto stepsA = storeA->steps(runA);
    ASSERT_EQ(stepsA.size(), 45u);  // 60 train images / 4 = 15 steps per epoch

    // The same run, killed with SIGKILL in the middle of its second epoch.
    const pid_t child = fork();
    if (child == 0) {
        const int devnull = ::open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(cli.c_str(), cli.c_str(), "train", "--config", (dir / "exp.json").c_str(), "--workspace",
              (dir / "wb").c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    std::int64_t killedAfter = 0, checkpointStep = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (!fs::exists(workspaceDatabasePath(dir / "wb"))) continue;
        auto store = RunStore::open(dir / "wb");
        const auto runs = store->listRuns();
        if (runs.empty()) continue;
        const auto checkpoint = store->latestCheckpoint(runs[0].id);
        const auto steps = store->steps(runs[0].id);
        if (checkpoint && !steps.empty() && steps.back().step >= checkpoint->step + 3) {
            kill(child, SIGKILL);
            killedAfter = steps.back().step;
            checkpointStep = checkpoint->step;
            break;
        }
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended before it could be killed";
    ASSERT_GT(killedAfter, checkpointStep);
    ASSERT_LT(killedAfter, 45);

    auto storeB = RunStore::open(dir / "wb");
    const auto runB = storeB->listRuns().at(0).id;
    auto resumed = segscope::test::runCli("train --resume " + runB + " --workspace '" + (dir / "wb").string() +
                                          "' > /dev/null 2>&1");
    ASSERT_EQ(resumed.exitCode, 0);
    const auto stepsB = storeB->steps(runB);
    ASSERT_EQ(stepsB.size(), stepsA.size());
    for (std::size_t i = 0; i < stepsA.size(); ++i) {
        EXPECT_EQ(stepsB[i].step, stepsA[i].step);
        EXPECT_EQ(stepsB[i].loss, stepsA[i].loss) << "step " << stepsA[i].step;
        EXPECT_EQ(stepsB[i].learningRate, stepsA[i].learningRate) << "step " << stepsA[i].step;
    }
    EXPECT_EQ(storeB->run(runB)->status, RunStatus::Finished);
    EXPECT_EQ(storeB->epochs(runB).size(), 3u);
}
