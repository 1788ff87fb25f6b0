// segscope-cli train --resume: checkpoint rows of pruned files, one process per run (the run
// lock), and a run recorded as running by a process that no longer trains it.
#include "segscope/core/experiment.h"
#include "segscope/core/runs/run_lock.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace segscope::core;
using segscope::test::TempDir;
using segscope::test::tinyExperiment;
using segscope::test::writeDemo;
namespace fs = std::filesystem;

TEST(TrainerResume, CliResumeForgetsTheCheckpointRowsOfPrunedFiles) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs = 8;
    saveExperiment(dir / "exp.json", e);
    const std::string workspace = (dir / "ws").string();
    const std::string cli = segscope::test::cliExecutable();
    const pid_t child = fork();
    if (child == 0) {
        const int devnull = ::open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(cli.c_str(), cli.c_str(), "train", "--config", (dir / "exp.json").c_str(), "--workspace",
              workspace.c_str(), "--keep-checkpoints", "5", static_cast<char*>(nullptr));
        _exit(127);
    }
    std::string runId;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    while (std::chrono::steady_clock::now() < deadline && runId.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        try {
            auto store = RunStore::open(workspace, StoreAccess::ReadOnly);
            const auto runs = store->listRuns();
            if (runs.empty()) continue;
            const auto checkpoint = store->latestCheckpoint(runs[0].id);
            if (checkpoint && checkpoint->step >= 21) {
                kill(child, SIGINT);  // a clean cancel: the run is resumable
                runId = runs[0].id;
            }
        } catch (const std::exception&) {
        }
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_FALSE(runId.empty()) << "the run ended before it could be interrupted";
    ASSERT_TRUE(WIFEXITED(status)) << "the interrupted run ended by a signal";
    auto resumed = segscope::test::runCli("train --resume " + runId + " --workspace '" + workspace +
                                          "' --keep-checkpoints 1 2>&1 < /dev/null");
    ASSERT_EQ(resumed.exitCode, 0) << resumed.output;
    auto store = RunStore::open(workspace);
    const auto rows = store->checkpoints(runId);
    ASSERT_FALSE(rows.empty());
    EXPECT_LE(rows.size(), 2u) << "the latest and the best";
    std::size_t files = 0;
    for (const auto& entry : fs::directory_iterator(store->run(runId)->folder / "checkpoints"))
        files += entry.path().extension() == ".pt";
    EXPECT_EQ(files, rows.size());
    for (const auto& row : rows) EXPECT_TRUE(fs::exists(row.path)) << row.path << " is recorded but deleted";
    EXPECT_EQ(store->latestCheckpoint(runId)->step, 56);
}

TEST(RunLock, CliRefusesASecondResumeWhileTheFirstTrains) {
    TempDir dir;
    writeDemo(dir / "demo", 24, 32);
    Experiment e = tinyExperiment(dir / "demo");
    e.transforms.height = e.transforms.width = 32;
    e.training.epochs = 400;
    saveExperiment(dir / "exp.json", e);
    const std::string workspace = (dir / "ws").string();
    std::string runId;
    {
        auto store = RunStore::open(workspace);
        runId = createRecordedRun(*store, e);
    }
    const std::string cli = segscope::test::cliExecutable();
    const pid_t child = fork();
    if (child == 0) {
        const int devnull = ::open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(cli.c_str(), cli.c_str(), "train", "--resume", runId.c_str(), "--workspace", workspace.c_str(),
              static_cast<char*>(nullptr));
        _exit(127);
    }
    fs::path folder;
    {
        auto store = RunStore::open(workspace, StoreAccess::ReadOnly);
        folder = store->run(runId)->folder;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (std::chrono::steady_clock::now() < deadline && !RunLock::holder(folder))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(RunLock::holder(folder).has_value()) << "the first resume never took the lock";
    const auto second =
        segscope::test::runCli("train --resume " + runId + " --workspace '" + workspace + "' 2>&1 < /dev/null");
    EXPECT_EQ(second.exitCode, 1) << second.output;
    EXPECT_NE(second.output.find("run " + runId + " is being trained by another process: run folder"),
              std::string::npos)
        << second.output;
    EXPECT_NE(second.output.find("pid " + std::to_string(child) + " on "), std::string::npos) << second.output;
    EXPECT_NE(second.output.find(" (segscope-cli): one process trains a run at a time"), std::string::npos)
        << second.output;
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_NO_THROW(RunLock::acquire(folder)) << "a crashed trainer leaves no lock behind";
}

TEST(RunLock, CliResumeOfARunMarkedRunningByALiveUnrelatedPidNeedsForce) {
    TempDir dir;
    writeDemo(dir / "demo");
    Experiment e = tinyExperiment(dir / "demo");
    e.training.epochs.reset();
    e.training.iterations = 2;
    const std::string workspace = (dir / "ws").string();
    std::string runId;
    {
        auto store = RunStore::open(workspace);
        runId = createRecordedRun(*store, e);
        // This test process is alive and is not training the run: a reused pid.
        store->updateStatus(runId, RunStatus::Running);
    }
    const auto refused =
        segscope::test::runCli("train --resume " + runId + " --workspace '" + workspace + "' 2>&1 < /dev/null");
    EXPECT_EQ(refused.exitCode, 1) << refused.output;
    EXPECT_NE(refused.output.find("is recorded as running by process " + std::to_string(::getpid())), std::string::npos)
        << refused.output;
    EXPECT_NE(refused.output.find("pass --force to mark it interrupted and resume it"), std::string::npos)
        << refused.output;
    const auto forced =
        segscope::test::runCli("train --resume " + runId + " --workspace '" + workspace + "' --force 2>&1 < /dev/null");
    EXPECT_EQ(forced.exitCode, 0) << forced.output;
    auto store = RunStore::open(workspace);
    EXPECT_EQ(store->run(runId)->status, RunStatus::Finished);
}
