#include "segscope/core/analysis/metrics.h"
#include "segscope/core/error.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <thread>

using namespace segscope::core;

namespace {

NewRun sampleRun(const std::string& name = "first") {
    NewRun run;
    run.name = name;
    run.model = "segformer-b0";
    run.dataset = "demo";
    run.experimentJson = R"({"version": 1})";
    run.device = "cpu";
    run.parameters = 3715669;
    return run;
}

StepRecord stepAt(std::int64_t step) {
    StepRecord s;
    s.step = step;
    s.epoch = static_cast<int>(step / 10);
    s.loss = 1.0 / static_cast<double>(step + 1);
    s.learningRate = 6e-4;
    s.imagesPerSecond = 50.5;
    s.wallSeconds = 0.1 * static_cast<double>(step);
    if (step % 2 == 0) s.memoryBytes = 1000 + step;
    return s;
}

// Runs `body` in a child process that exits with `exitCode` (or aborts when exitCode < 0)
// without any cleanup, as a crashed trainer would.
void inChild(const std::function<void()>& body, int exitCode) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        try {
            body();
        } catch (...) {
            _exit(99);
        }
        if (exitCode < 0) std::abort();
        _exit(exitCode);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (exitCode >= 0) {
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), exitCode);
    } else {
        ASSERT_TRUE(WIFSIGNALED(status));
    }
}

}  // namespace

TEST(RunStore, CreatesWorkspaceAndRuns) {
    segscope::test::TempDir dir;
    const auto workspace = dir / "ws";
    auto store = RunStore::open(workspace);
    EXPECT_TRUE(std::filesystem::exists(workspace / ".segscope" / "segscope.db"));
    EXPECT_TRUE(std::filesystem::is_directory(workspace / "runs"));

    const std::string id = store->createRun(sampleRun());
    EXPECT_TRUE(std::regex_match(id, std::regex(R"(\d{8}-\d{6}-segformer-b0-[0-9a-f]{4})"))) << id;
    const auto run = store->run(id);
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->name, "first");
    EXPECT_EQ(run->model, "segformer-b0");
    EXPECT_EQ(run->dataset, "demo");
    EXPECT_EQ(run->device, "cpu");
    EXPECT_EQ(run->parameters, 3715669);
    EXPECT_EQ(run->experimentJson, R"({"version": 1})");
    EXPECT_EQ(run->status, RunStatus::Queued);
    EXPECT_TRUE(std::regex_match(run->createdAt, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << run->createdAt;
    EXPECT_TRUE(run->startedAt.empty());
    EXPECT_FALSE(run->bestMiou.has_value());
    EXPECT_EQ(run->folder, workspace / "runs" / id);
    EXPECT_TRUE(std::filesystem::is_directory(run->folder));
    EXPECT_FALSE(store->run("nope").has_value());

    // Reopening finds the same data (the schema is not recreated).
    store.reset();
    store = RunStore::open(workspace);
    EXPECT_EQ(store->listRuns().size(), 1u);
}

TEST(RunStore, IdsAreUniqueAndSortable) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir.path());
    std::set<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.insert(store->createRun(sampleRun("r" + std::to_string(i))));
    EXPECT_EQ(ids.size(), 20u);
    const auto runs = store->listRuns();
    ASSERT_EQ(runs.size(), 20u);
    EXPECT_EQ(runs.front().name, "r19");  // newest first
    EXPECT_EQ(runs.back().name, "r0");
    NewRun odd = sampleRun();
    odd.model = "My Model/v2";
    EXPECT_NE(store->createRun(odd).find("-my-model-v2-"), std::string::npos);
}

TEST(RunStore, StatusTransitionsStampTimes) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir.path());
    const std::string id = store->createRun(sampleRun());
    store->updateStatus(id, RunStatus::Running);
    auto run = store->run(id);
    EXPECT_EQ(run->status, RunStatus::Running);
    EXPECT_FALSE(run->startedAt.empty());
    EXPECT_TRUE(run->endedAt.empty());
    EXPECT_EQ(run->pid, static_cast<std::int64_t>(getpid()));
    EXPECT_FALSE(run->hostname.empty());
    store->updateStatus(id, RunStatus::Failed, "loss is NaN at step 12");
    store->updateTotals(id, 12.5, 80.25);
    store->updateParameters(id, 42);
    run = store->run(id);
    EXPECT_EQ(run->status, RunStatus::Failed);
    EXPECT_EQ(run->statusMessage, "loss is NaN at step 12");
    EXPECT_FALSE(run->endedAt.empty());
    EXPECT_EQ(*run->seconds, 12.5);
    EXPECT_EQ(*run->imagesPerSecond, 80.25);
    EXPECT_EQ(run->parameters, 42);
    EXPECT_THROW(store->updateStatus("missing", RunStatus::Finished), Error);
    EXPECT_THROW(store->appendStep("missing", stepAt(0)), Error);

    for (auto s : {RunStatus::Queued, RunStatus::Running, RunStatus::Paused, RunStatus::Finished, RunStatus::Failed,
                   RunStatus::Cancelled, RunStatus::Interrupted})
        EXPECT_EQ(parseRunStatus(runStatusName(s)), s);
    EXPECT_FALSE(parseRunStatus("done").has_value());
}

TEST(RunStore, StepsRoundTrip) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir.path());
    const std::string id = store->createRun(sampleRun());
    for (int i = 0; i < 25; ++i) store->appendStep(id, stepAt(i));
    const auto all = store->steps(id);
    ASSERT_EQ(all.size(), 25u);
    EXPECT_EQ(all[7].step, 7);
    EXPECT_EQ(all[7].epoch, 0);
    EXPECT_EQ(all[13].epoch, 1);
    EXPECT_DOUBLE_EQ(all[7].loss, 1.0 / 8);
    EXPECT_DOUBLE_EQ(all[7].learningRate, 6e-4);
    EXPECT_DOUBLE_EQ(all[7].imagesPerSecond, 50.5);
    EXPECT_FALSE(all[7].memoryBytes.has_value());
    EXPECT_EQ(all[8].memoryBytes, 1008);
    const auto tail = store->steps(id, 20);
    ASSERT_EQ(tail.size(), 4u);
    EXPECT_EQ(tail.front().step, 21);
}

TEST(RunStore, EvaluationsWithClassAndImageRows) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir.path());
    const std::string id = store->createRun(sampleRun());

    // Class 2 is only predicted and class 3 absent: their undefined values must survive as NULL.
    ConfusionMatrix matrix(4);
    matrix.update(torch::tensor({0, 0, 2, 1}, torch::kLong), torch::tensor({0, 1, 0, 1}, torch::kLong));
    const auto metrics = computeMetrics(matrix, {"bg", "a", "b", "c"});
    const auto images = batchImageIou(torch::tensor({0, 0, 1, 1}, torch::kLong).reshape({2, 2}),
                                      torch::tensor({0, 1, 1, 1}, torch::kLong).reshape({2, 2}), 4);
    std::vector<ImageRecord> imageRows{{"img_b", images[1].meanIou, perClassIouJson(images[1])},
                                       {"img_a", images[0].meanIou, perClassIouJson(images[0])},
                                       {"img_none", std::nullopt, "[]"}};
    store->appendEpoch(id, epochRecord(metrics, 1, 100, 0.75, 3.5), classRecords(metrics), imageRows);

    const auto epochs = store->epochs(id);
    ASSERT_EQ(epochs.size(), 1u);
    EXPECT_EQ(epochs[0].epoch, 1);
    EXPECT_EQ(epochs[0].step, 100);
    EXPECT_DOUBLE_EQ(*epochs[0].mIoU, *metrics.mIoU);
    EXPECT_DOUBLE_EQ(*epochs[0].aAcc, *metrics.aAcc);
    EXPECT_DOUBLE_EQ(*epochs[0].valLoss, 0.75);
    const auto classes = store->classMetrics(id, 1);
    ASSERT_EQ(classes.size(), 4u);
    EXPECT_EQ(classes[2].className, "b");
    EXPECT_EQ(*classes[2].iou, 0.0);
    EXPECT_FALSE(classes[2].acc.has_value());
    EXPECT_FALSE(classes[3].iou.has_value());
    EXPECT_DOUBLE_EQ(*classes[0].pixelShare, 0.5);
    const auto imageRowsBack = store->imageMetrics(id, 1);
    ASSERT_EQ(imageRowsBack.size(), 3u);
    // Worst first; undefined last.
    EXPECT_EQ(imageRowsBack[0].imageId, "img_a");
    EXPECT_EQ(imageRowsBack[1].imageId, "img_b");
    EXPECT_EQ(imageRowsBack[2].imageId, "img_none");
    EXPECT_EQ(imageRowsBack[1].perClassIouJson, "[null,1.0,null,null]");

    auto run = store->run(id);
    EXPECT_DOUBLE_EQ(*run->bestMiou, *metrics.mIoU);
    EXPECT_EQ(run->bestEpoch, 1);

    // A better epoch 2 becomes best and final; a worse epoch 3 is final only.
    EpochRecord better;
    better.epoch = 2;
    better.mIoU = 0.9;
    store->appendEpoch(id, better, {}, {});
    EpochRecord worse;
    worse.epoch = 3;
    worse.mIoU = 0.4;
    store->appendEpoch(id, worse, {}, {});
    run = store->run(id);
    EXPECT_DOUBLE_EQ(*run->bestMiou, 0.9);
    EXPECT_EQ(run->bestEpoch, 2);
    EXPECT_DOUBLE_EQ(*run->finalMiou, 0.4);

    // Re-appending epoch 1 replaces its rows.
    store->appendEpoch(id, epochRecord(metrics, 1, 100, std::nullopt, 1.0), {classRecords(metrics)[0]}, {});
    EXPECT_EQ(store->classMetrics(id, 1).size(), 1u);
    EXPECT_TRUE(store->imageMetrics(id, 1).empty());
    EXPECT_EQ(store->epochs(id).size(), 3u);
    EXPECT_FALSE(store->epochs(id)[0].valLoss.has_value());
    EXPECT_THROW(store->appendEpoch("missing", better, {}, {}), Error);
}

TEST(RunStore, CheckpointsAndDelete) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir.path());
    const std::string id = store->createRun(sampleRun());
    EXPECT_FALSE(store->latestCheckpoint(id).has_value());
    store->addCheckpoint(id, {1, 50, dir / "runs" / id / "epoch1.safetensors", ""});
    store->addCheckpoint(id, {2, 100, dir / "runs" / id / "epoch2.safetensors", ""});
    const auto latest = store->latestCheckpoint(id);
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->epoch, 2);
    EXPECT_EQ(latest->step, 100);
    EXPECT_EQ(latest->path.filename(), "epoch2.safetensors");
    EXPECT_FALSE(latest->createdAt.empty());
    EXPECT_EQ(store->checkpoints(id).size(), 2u);
    EXPECT_THROW(store->addCheckpoint("missing", {1, 1, "x", ""}), Error);

    store->appendStep(id, stepAt(1));
    const auto folder = store->run(id)->folder;
    store->deleteRun(id);
    EXPECT_FALSE(store->run(id).has_value());
    EXPECT_TRUE(store->steps(id).empty());
    EXPECT_TRUE(store->checkpoints(id).empty());
    EXPECT_FALSE(std::filesystem::exists(folder));
}

TEST(RunStore, ChangeCounterSeesOwnAndOtherWrites) {
    segscope::test::TempDir dir;
    auto writer = RunStore::open(dir.path());
    auto reader = RunStore::open(dir.path());
    const std::int64_t readerBefore = reader->changeCounter();
    const std::int64_t writerBefore = writer->changeCounter();
    EXPECT_EQ(reader->changeCounter(), readerBefore);  // nothing happened
    const std::string id = writer->createRun(sampleRun());
    EXPECT_NE(writer->changeCounter(), writerBefore);
    const std::int64_t readerAfter = reader->changeCounter();
    EXPECT_NE(readerAfter, readerBefore);
    writer->appendStep(id, stepAt(0));
    EXPECT_NE(reader->changeCounter(), readerAfter);
}

TEST(RunStore, ReadersReadWhileAnotherConnectionWrites) {
    segscope::test::TempDir dir;
    auto writer = RunStore::open(dir.path());
    auto reader = RunStore::open(dir.path());
    const std::string id = writer->createRun(sampleRun());
    constexpr int kSteps = 300;
    std::atomic<bool> done{false};
    std::string writerError;
    std::thread thread([&] {
        try {
            for (int i = 0; i < kSteps; ++i) {
                writer->appendStep(id, stepAt(i));
                if (i % 50 == 49) {
                    EpochRecord e;
                    e.epoch = i / 50 + 1;
                    e.step = i;
                    e.mIoU = 0.01 * i;
                    writer->appendEpoch(id, e, {}, {});
                }
            }
        } catch (const std::exception& e) {
            writerError = e.what();
        }
        done = true;
    });
    std::size_t seen = 0;
    int reads = 0;
    while (!done) {
        const auto steps = reader->steps(id);
        EXPECT_GE(steps.size(), seen);  // a reader sees a growing, consistent prefix
        for (std::size_t i = 0; i < steps.size(); ++i) ASSERT_EQ(steps[i].step, static_cast<std::int64_t>(i));
        seen = steps.size();
        reader->listRuns();
        reader->epochs(id);
        ++reads;
    }
    thread.join();
    EXPECT_EQ(writerError, "");
    EXPECT_EQ(reader->steps(id).size(), static_cast<std::size_t>(kSteps));
    EXPECT_EQ(reader->epochs(id).size(), 6u);
    EXPECT_GT(reads, 0);
}

TEST(RunStore, CrashedWriterLosesNothingCommitted) {
    segscope::test::TempDir dir;
    std::string id;
    {
        auto store = RunStore::open(dir.path());
        id = store->createRun(sampleRun());
    }
    // The child appends steps, then dies without closing the database.
    inChild(
        [&] {
            auto store = RunStore::open(dir.path());
            store->updateStatus(id, RunStatus::Running);
            for (int i = 0; i < 40; ++i) store->appendStep(id, stepAt(i));
            (void)store.release();  // never closed
        },
        -1);
    auto store = RunStore::open(dir.path());
    EXPECT_EQ(store->steps(id).size(), 40u);
    // Its run is left "running" by a process that is gone.
    EXPECT_EQ(store->run(id)->status, RunStatus::Running);
    EXPECT_EQ(store->markInterrupted(), 1);
    const auto run = store->run(id);
    EXPECT_EQ(run->status, RunStatus::Interrupted);
    EXPECT_FALSE(run->endedAt.empty());
    EXPECT_EQ(store->markInterrupted(), 0);
}

TEST(RunStore, LiveRunsAreNotMarkedInterrupted) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir.path());
    const std::string id = store->createRun(sampleRun());
    store->updateStatus(id, RunStatus::Running);  // this process: alive
    EXPECT_EQ(store->markInterrupted(), 0);
    EXPECT_EQ(store->run(id)->status, RunStatus::Running);
}

TEST(RunStore, UnusableWorkspaceNamesThePath) {
    segscope::test::TempDir dir;
    {
        std::ofstream blocker(dir / "file");
        blocker << "x";
    }
    try {
        RunStore::open(dir / "file" / "ws");
        FAIL() << "opened a workspace under a file";
    } catch (const FileError& e) {
        EXPECT_NE(std::string(e.what()).find((dir / "file" / "ws").string()), std::string::npos) << e.what();
    }
    // A database file that is not SQLite.
    std::filesystem::create_directories(dir / "bad");
    {
        std::ofstream junk(dir / "bad" / "segscope.db");
        junk << std::string(4096, 'x');
    }
    try {
        RunStore::open(dir / "bad");
        FAIL() << "opened a junk database";
    } catch (const FileError& e) {
        EXPECT_NE(std::string(e.what()).find("segscope.db"), std::string::npos) << e.what();
    }
}

TEST(RunStore, DefaultWorkspaceFollowsEnvironment) {
    const char* old = std::getenv("SEGSCOPE_WORKSPACE");
    const std::string saved = old ? old : "";
    setenv("SEGSCOPE_WORKSPACE", "/tmp/explicit-ws", 1);
    EXPECT_EQ(defaultWorkspace(), "/tmp/explicit-ws");
    unsetenv("SEGSCOPE_WORKSPACE");
    const char* oldData = std::getenv("XDG_DATA_HOME");
    const std::string savedData = oldData ? oldData : "";
    setenv("XDG_DATA_HOME", "/tmp/xdg-data", 1);
    EXPECT_EQ(defaultWorkspace(), std::filesystem::path("/tmp/xdg-data/SegScope"));
    if (oldData)
        setenv("XDG_DATA_HOME", savedData.c_str(), 1);
    else
        unsetenv("XDG_DATA_HOME");
    if (old) setenv("SEGSCOPE_WORKSPACE", saved.c_str(), 1);
}
