// segscope-cli workspace check|repair and runs: a broken database, a read-only workspace, a
// moved one, and the listing.
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using namespace segscope::core;
using segscope::test::randomBytes;
using segscope::test::recordFullRun;
using segscope::test::writeFileBytes;
namespace fs = std::filesystem;

TEST(WorkspaceCommand, RepairRebuildsAGarbageDatabase) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    double best = 0;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
        best = *store->run(id)->bestMiou;
    }
    writeFileBytes(workspaceDatabasePath(ws), randomBytes(4096));
    auto check = segscope::test::runCli("workspace check --workspace '" + ws.string() + "' 2>&1");
    EXPECT_EQ(check.exitCode, 1) << check.output;
    EXPECT_NE(check.output.find("workspace repair"), std::string::npos) << check.output;
    auto runs = segscope::test::runCli("runs --workspace '" + ws.string() + "' 2>&1");
    EXPECT_EQ(runs.exitCode, 1) << runs.output;
    EXPECT_NE(runs.output.find("segscope.db"), std::string::npos) << runs.output;

    auto repair = segscope::test::runCli("workspace repair --workspace '" + ws.string() + "' --json");
    ASSERT_EQ(repair.exitCode, 0) << repair.output;
    const auto report = nlohmann::json::parse(repair.output);
    EXPECT_TRUE(report["rebuilt"].get<bool>());
    EXPECT_EQ(report["runs_recovered"], 1);
    EXPECT_EQ(report["runs"], 1);
    EXPECT_TRUE(fs::exists(report["moved_aside"].get<std::string>()));

    runs = segscope::test::runCli("runs --json --workspace '" + ws.string() + "'");
    ASSERT_EQ(runs.exitCode, 0) << runs.output;
    const auto listed = nlohmann::json::parse(runs.output)["runs"];
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["id"], id);
    EXPECT_DOUBLE_EQ(listed[0]["best_miou"].get<double>(), best);
    check = segscope::test::runCli("workspace check --workspace '" + ws.string() + "'");
    EXPECT_EQ(check.exitCode, 0) << check.output;
    EXPECT_NE(check.output.find("database ok, 1 runs"), std::string::npos) << check.output;
}

TEST(WorkspaceCommand, ReadOnlyWorkspaceCanBeListed) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
    }
    // The workspace bind-mounted read-only in a private mount namespace: a USB stick with its
    // write switch on. Root cannot write there either.
    const std::string q = "'" + ws.string() + "'";
    const auto readOnly = [&](const std::string& command) {
        return segscope::test::runCommand("unshare -m sh -c \"mount --bind " + q + " " + q +
                                          " && mount -o remount,ro,bind " + q + " && " + command + "\" 2>&1");
    };
    const auto probe = readOnly("touch " + q + "/probe 2>/dev/null; test ! -e " + q + "/probe");
    if (probe.exitCode != 0) GTEST_SKIP() << "cannot bind-mount read-only here: " << probe.output;
    const std::string cli = "'" + segscope::test::cliExecutable() + "' ";
    auto runs = readOnly(cli + "runs --json --workspace " + q);
    ASSERT_EQ(runs.exitCode, 0) << runs.output;
    const auto listed = nlohmann::json::parse(runs.output.substr(runs.output.find('{')))["runs"];
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["id"], id);
    EXPECT_EQ(listed[0]["status"], "finished");
    auto check = readOnly(cli + "workspace check --workspace " + q);
    EXPECT_EQ(check.exitCode, 0) << check.output;
    // Writing is refused with the reason, not a crash.
    auto train = readOnly(cli + "workspace repair --rebuild --workspace " + q);
    EXPECT_EQ(train.exitCode, 1) << train.output;
    EXPECT_NE(train.output.find("ead-only"), std::string::npos) << train.output;
}

// An instructor trains, copies the workspace to a USB stick, and opens the copy elsewhere: eval
// finds the checkpoints from any working directory, and a resume reads and writes only the copy.
TEST(WorkspaceCommand, MovedWorkspaceEvaluatesAndResumes) {
    segscope::test::TempDir dir;
    segscope::test::writeDemo(dir / "data" / "demo", 24, 48);
    // The dataset root is relative to the folder training starts in.
    const nlohmann::json experiment = {
        {"version", 1},
        {"name", "moved"},
        {"dataset", {{"kind", "voc"}, {"root", "data/demo"}}},
        {"model", {{"id", "segformer-b0"}}},
        {"transforms", {{"height", 48}, {"width", 48}}},
        {"training", {{"epochs", 2}, {"batch_size", 4}, {"checkpoint_every", 1}}},
        {"runtime", {{"device", "cpu"}, {"threads", 1}, {"workers", 1}, {"seed", 0}}},
    };
    std::ofstream(dir / "exp.json") << experiment.dump(2);
    const std::string cli = "'" + segscope::test::cliExecutable() + "' --threads 1 ";
    const auto trained = segscope::test::runCommand("cd '" + dir.path().string() + "' && " + cli +
                                                    "train --config exp.json --workspace ws 2>&1");
    ASSERT_EQ(trained.exitCode, 0) << trained.output;
    std::string id;
    std::int64_t firstEpochStep = 0;
    {
        auto store = RunStore::open(dir / "ws");
        id = store->listRuns().at(0).id;
        firstEpochStep = store->epochs(id).at(0).step;
    }
    const fs::path copy = dir / "usb" / "ws";
    fs::create_directories(copy.parent_path());
    fs::copy(dir / "ws", copy, fs::copy_options::recursive);
    fs::remove_all(dir / "ws");

    const auto eval = segscope::test::runCommand("cd / && " + cli + "eval --json --run " + id + " --workspace '" +
                                                 copy.string() + "' 2>&1");
    ASSERT_EQ(eval.exitCode, 0) << eval.output;
    const double miou = nlohmann::json::parse(eval.output.substr(eval.output.find('{'))).at("mIoU").get<double>();
    {
        // Make the copy resumable from its first checkpoint, as a crash after epoch 1 would.
        auto store = RunStore::open(copy);
        EXPECT_NEAR(miou, store->run(id)->finalMiou.value_or(-1), 1e-9);
        store->truncateAfter(id, firstEpochStep);
        store->updateStatus(id, RunStatus::Interrupted, "test");
    }
    const auto resumed = segscope::test::runCommand("cd / && " + cli + "train --resume " + id + " --workspace '" +
                                                    copy.string() + "' 2>&1");
    ASSERT_EQ(resumed.exitCode, 0) << resumed.output;
    EXPECT_FALSE(fs::exists(dir / "ws")) << "the resume wrote into the original's folders";
    auto store = RunStore::open(copy);
    EXPECT_EQ(store->run(id)->status, RunStatus::Finished);
    EXPECT_EQ(store->epochs(id).size(), 2u);
    for (const auto& c : store->checkpoints(id)) {
        EXPECT_EQ(c.path.string().rfind(copy.string(), 0), 0u) << c.path;
        EXPECT_TRUE(fs::exists(c.path)) << c.path;
    }
    // The recorded experiment names the dataset absolutely.
    const auto recorded = nlohmann::json::parse(store->run(id)->experimentJson);
    EXPECT_EQ(recorded["dataset"]["root"], (dir / "data" / "demo").string());
}

TEST(RunsCommand, ListsRunsAsJson) {
    segscope::test::TempDir dir;
    std::string first, second;
    {
        auto store = RunStore::open(dir / "ws");
        first = store->createRun(segscope::test::sampleRun("first"));
        second = store->createRun(segscope::test::sampleRun("second"));
        EpochRecord e;
        e.epoch = 1;
        e.mIoU = 0.625;
        store->appendEpoch(first, e, {}, {});
        store->updateStatus(first, RunStatus::Finished);
        store->updateTotals(first, 30.0, 12.0);
    }
    const auto result = segscope::test::runCli("runs --workspace '" + (dir / "ws").string() + "' --json");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    const auto j = nlohmann::json::parse(result.output);
    ASSERT_EQ(j["runs"].size(), 2u);
    const auto& newest = j["runs"][0];
    EXPECT_EQ(newest["id"], second);
    EXPECT_EQ(newest["status"], "queued");
    EXPECT_TRUE(newest["best_miou"].is_null());
    const auto& older = j["runs"][1];
    EXPECT_EQ(older["id"], first);
    EXPECT_EQ(older["name"], "first");
    EXPECT_EQ(older["model"], "segformer-b0");
    EXPECT_EQ(older["dataset"], "demo:/data/demo");
    EXPECT_EQ(older["status"], "finished");
    EXPECT_EQ(older["parameters"], 3715429);
    EXPECT_EQ(older["best_miou"], 0.625);
    EXPECT_EQ(older["final_miou"], 0.625);
    EXPECT_EQ(older["seconds"], 30.0);
    EXPECT_EQ(older["images_per_second"], 12.0);

    const auto text = segscope::test::runCli("runs --workspace '" + (dir / "ws").string() + "'");
    EXPECT_EQ(text.exitCode, 0);
    EXPECT_NE(text.output.find(first), std::string::npos);
    EXPECT_NE(text.output.find("62.50"), std::string::npos);

    // Listing a workspace that does not exist shows nothing and creates nothing.
    const auto empty = segscope::test::runCli("runs --workspace '" + (dir / "none").string() + "' --json");
    EXPECT_EQ(empty.exitCode, 0);
    EXPECT_EQ(nlohmann::json::parse(empty.output)["runs"].size(), 0u);
    EXPECT_FALSE(std::filesystem::exists(dir / "none"));
}
