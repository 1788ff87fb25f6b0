// The workspace as a whole: where the database lives, the run journals it can be rebuilt from,
// read-only access, foreign and corrupt databases, moved and copied workspaces (segscope-cli
// workspace and runs: tests/cli/test_cli_workspace.cpp).
#include "segscope/core/data/demo_data.h"
#include "segscope/core/error.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <fstream>
#include <random>

using namespace segscope::core;
using segscope::test::metricsWith;
using segscope::test::randomBytes;
using segscope::test::readFileText;
using segscope::test::recordFullRun;
using segscope::test::sampleRun;
using segscope::test::writeFileBytes;
namespace fs = std::filesystem;

namespace {

// Everything a store says about a run, as text, for comparing two stores.
std::string describe(RunStore& store, const std::string& id) {
    std::ostringstream out;
    const auto r = store.run(id);
    if (!r) return "missing";
    out << r->name << "|" << r->model << "|" << r->dataset << "|" << runStatusName(r->status) << "|" << r->statusMessage
        << "|" << r->device << "|" << r->parameters << "|" << r->createdAt << "|" << r->startedAt << "|" << r->endedAt
        << "|" << r->bestMiou.value_or(-1) << "|" << r->bestEpoch.value_or(-1) << "|" << r->finalMiou.value_or(-1)
        << "|" << r->seconds.value_or(-1) << "|" << r->imagesPerSecond.value_or(-1) << "|" << r->experimentJson << "|"
        << r->folder.string() << "\n";
    for (const auto& s : store.steps(id))
        out << "step " << s.step << " " << s.epoch << " " << s.loss << " " << s.learningRate << " " << s.imagesPerSecond
            << " " << s.memoryBytes.value_or(-1) << " " << s.wallSeconds << "\n";
    for (const auto& e : store.epochs(id)) {
        out << "eval " << e.epoch << " " << e.step << " " << e.aAcc.value_or(-1) << " " << e.mIoU.value_or(-1) << " "
            << e.mAcc.value_or(-1) << " " << e.mDice.value_or(-1) << " " << e.valLoss.value_or(-1) << " "
            << e.wallSeconds << "\n";
        for (const auto& c : store.classMetrics(id, e.epoch))
            out << "  class " << c.classIndex << " " << c.className << " " << c.iou.value_or(-1) << " "
                << c.acc.value_or(-1) << " " << c.pixelShare.value_or(-1) << "\n";
        for (const auto& i : store.imageMetrics(id, e.epoch))
            out << "  image " << i.imageId << " " << i.mIoU.value_or(-1) << " " << i.perClassIouJson << "\n";
    }
    for (const auto& c : store.checkpoints(id))
        out << "ckpt " << c.epoch << " " << c.step << " " << c.path.string() << "\n";
    return out.str();
}

// A database of another program at `path`.
void writeForeignDatabase(const fs::path& path) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE photos (id INTEGER PRIMARY KEY, title TEXT); "
                           "INSERT INTO photos (title) VALUES ('holiday');",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
}

}  // namespace

TEST(Workspace, DatabaseLivesInAHiddenFolder) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir / "ws");
    EXPECT_EQ(store->databasePath(), dir / "ws" / ".segscope" / "segscope.db");
    EXPECT_TRUE(fs::exists(dir / "ws" / ".segscope" / "segscope.db"));
    EXPECT_FALSE(fs::exists(dir / "ws" / "segscope.db"));
    EXPECT_TRUE(isWorkspace(dir / "ws"));
    EXPECT_FALSE(isWorkspace(dir.path()));
    EXPECT_TRUE(store->openReport().nothingToReport());
}

TEST(Workspace, JournalRebuildsEveryRecordExactly) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string first, second, before1, before2;
    {
        auto store = RunStore::open(ws);
        first = recordFullRun(*store, "first");
        second = recordFullRun(*store, "second");
        before1 = describe(*store, first);
        before2 = describe(*store, second);
    }
    // The journal is plain JSON lines, one per write: the run, running, parameters, 12 steps, 2
    // evaluations, 2 checkpoints, the truncation, the pruned checkpoint, totals, finished.
    const std::string journal = readFileText(ws / "runs" / first / "journal.jsonl");
    EXPECT_EQ(std::count(journal.begin(), journal.end(), '\n'), 1 + 1 + 1 + 12 + 2 + 2 + 1 + 1 + 1 + 1);
    EXPECT_NE(before1.find("ckpt 2 12 " + (ws / "runs" / first / "checkpoints" / "epoch-2.state.pt").string()),
              std::string::npos)
        << before1;
    EXPECT_EQ(before1.find("epoch-1.state.pt"), std::string::npos) << "the removed checkpoint is forgotten";

    const WorkspaceReport report = repairWorkspace(ws, /*rebuild=*/true);
    EXPECT_TRUE(report.rebuilt);
    EXPECT_EQ(report.runsRecovered, 2);
    EXPECT_TRUE(fs::exists(report.movedAside)) << report.movedAside;
    auto store = RunStore::open(ws);
    EXPECT_EQ(describe(*store, first), before1);
    EXPECT_EQ(describe(*store, second), before2);
    EXPECT_EQ(store->listRuns().size(), 2u);
}

TEST(Workspace, GarbageDatabaseIsRefusedThenRebuilt) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id, before;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
        before = describe(*store, id);
    }
    const fs::path db = workspaceDatabasePath(ws);
    const std::string garbage = randomBytes(8192);
    writeFileBytes(db, garbage);
    try {
        RunStore::open(ws);
        FAIL() << "opened a garbage database";
    } catch (const DatabaseError& e) {
        EXPECT_EQ(e.kind(), DatabaseError::Kind::Corrupt);
        EXPECT_NE(std::string(e.what()).find(db.string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("workspace repair"), std::string::npos) << e.what();
    }
    // Read-only commands say the same and change nothing.
    EXPECT_THROW(RunStore::open(ws, StoreAccess::ReadOnly), DatabaseError);
    EXPECT_EQ(readFileText(db), garbage);

    const WorkspaceReport report = repairWorkspace(ws);
    EXPECT_TRUE(report.rebuilt);
    EXPECT_EQ(report.runsRecovered, 1);
    ASSERT_FALSE(report.movedAside.empty());
    EXPECT_EQ(readFileText(report.movedAside), garbage) << "the broken file is kept, byte for byte";
    EXPECT_NE(report.summary().find(report.movedAside.string()), std::string::npos) << report.summary();
    auto store = RunStore::open(ws);
    EXPECT_EQ(describe(*store, id), before);
    EXPECT_EQ(store->integrityCheck(), "ok");
}

TEST(Workspace, MissingOrEmptyDatabaseIsRebuiltWhenOpened) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id, before;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
        before = describe(*store, id);
    }
    fs::remove_all(ws / ".segscope");
    {
        auto store = RunStore::open(ws);
        EXPECT_TRUE(store->openReport().rebuilt);
        EXPECT_EQ(store->openReport().runsRecovered, 1);
        EXPECT_EQ(describe(*store, id), before);
    }
    // A zero-byte file where the database was: rebuilt too, never silently empty.
    fs::remove(workspaceDatabasePath(ws).string() + "-wal");
    fs::remove(workspaceDatabasePath(ws).string() + "-shm");
    writeFileBytes(workspaceDatabasePath(ws), "");
    EXPECT_THROW(RunStore::open(ws, StoreAccess::ReadOnly), DatabaseError);
    auto store = RunStore::open(ws);
    EXPECT_TRUE(store->openReport().rebuilt);
    EXPECT_EQ(describe(*store, id), before);
}

TEST(Workspace, ForeignDatabaseIsLeftUntouched) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
    }
    fs::remove_all(ws / ".segscope");
    fs::create_directories(ws / ".segscope");
    writeForeignDatabase(workspaceDatabasePath(ws));
    const std::string foreign = readFileText(workspaceDatabasePath(ws));
    try {
        RunStore::open(ws);
        FAIL() << "opened a foreign database";
    } catch (const DatabaseError& e) {
        EXPECT_EQ(e.kind(), DatabaseError::Kind::Foreign);
        EXPECT_NE(std::string(e.what()).find("photos"), std::string::npos) << e.what();
    }
    EXPECT_EQ(readFileText(workspaceDatabasePath(ws)), foreign) << "no SegScope table was added";
    const WorkspaceReport report = repairWorkspace(ws);
    EXPECT_EQ(readFileText(report.movedAside), foreign);
    EXPECT_EQ(RunStore::open(ws)->listRuns().size(), 1u);
}

TEST(Workspace, OlderWorkspaceIsMovedIntoTheHiddenFolder) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id, before;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "old");
        before = describe(*store, id);
    }
    // What an older SegScope left: segscope.db at the top, run folders without journals, and
    // checkpoint paths relative to the folder it was started from.
    fs::rename(workspaceDatabasePath(ws), ws / "segscope.db");
    fs::remove_all(ws / ".segscope");
    fs::remove(ws / "runs" / id / "journal.jsonl");
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open((ws / "segscope.db").c_str(), &db), SQLITE_OK);
        const std::string sql = "UPDATE runs SET folder = 'ws/runs/" + id +
                                "'; UPDATE checkpoints SET path = 'ws/runs/" + id + "/checkpoints/epoch-2.state.pt'";
        ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    EXPECT_TRUE(isWorkspace(ws));
    // Read-only access reads it where it is.
    EXPECT_EQ(describe(*RunStore::open(ws, StoreAccess::ReadOnly), id), before);
    EXPECT_TRUE(fs::exists(ws / "segscope.db"));
    {
        auto store = RunStore::open(ws);
        EXPECT_TRUE(store->openReport().migrated);
        EXPECT_FALSE(fs::exists(ws / "segscope.db"));
        EXPECT_FALSE(fs::exists(ws / "segscope.db-wal"));
        EXPECT_TRUE(fs::exists(workspaceDatabasePath(ws)));
        EXPECT_EQ(describe(*store, id), before);
        EXPECT_TRUE(fs::exists(ws / "runs" / id / "journal.jsonl")) << "a journal is written from the rows";
    }
    // That journal is complete: a rebuild gives the same run.
    repairWorkspace(ws, true);
    EXPECT_EQ(describe(*RunStore::open(ws), id), before);
}

TEST(Workspace, CopiedWorkspaceReadsAndWritesItsOwnFolders) {
    segscope::test::TempDir dir;
    const fs::path original = dir / "original";
    std::string id;
    {
        auto store = RunStore::open(original);
        id = recordFullRun(*store, "copied");
    }
    const fs::path copy = dir / "usb" / "copy";
    fs::create_directories(copy.parent_path());
    fs::copy(original, copy, fs::copy_options::recursive);
    fs::remove_all(original);
    // Opened from elsewhere, with a relative path.
    const fs::path cwd = fs::current_path();
    fs::current_path(dir.path());
    auto store = RunStore::open(fs::path("usb") / "copy");
    fs::current_path("/");
    const auto run = store->run(id);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->folder, copy / "runs" / id);
    const auto checkpoints = store->checkpoints(id);
    ASSERT_EQ(checkpoints.size(), 1u);
    EXPECT_EQ(checkpoints[0].path, copy / "runs" / id / "checkpoints" / "epoch-2.state.pt");
    store->addCheckpoint(id, {3, 18, copy / "runs" / id / "checkpoints" / "epoch-3.state.pt", {}});
    EXPECT_EQ(store->latestCheckpoint(id)->path, copy / "runs" / id / "checkpoints" / "epoch-3.state.pt");
    fs::current_path(cwd);
    EXPECT_FALSE(fs::exists(original)) << "nothing was written to the original's folders";
}

TEST(Workspace, ReadOnlyAccessWritesNothing) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
    }
    const std::string journal = readFileText(ws / "runs" / id / "journal.jsonl");
    auto store = RunStore::open(ws, StoreAccess::ReadOnly);
    EXPECT_TRUE(store->readOnly());
    EXPECT_EQ(store->listRuns().size(), 1u);
    EXPECT_THROW(store->createRun(sampleRun("new")), FileError);
    EXPECT_THROW(store->updateStatus(id, RunStatus::Failed), FileError);
    EXPECT_EQ(readFileText(ws / "runs" / id / "journal.jsonl"), journal);
    EXPECT_EQ(store->run(id)->status, RunStatus::Finished);
    EXPECT_THROW(RunStore::open(dir / "elsewhere", StoreAccess::ReadOnly), FileError);
    EXPECT_FALSE(fs::exists(dir / "elsewhere")) << "read-only access creates no workspace";
}

TEST(Workspace, TornJournalLineLosesOnlyThatLine) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    std::size_t steps = 0;
    {
        auto store = RunStore::open(ws);
        id = recordFullRun(*store, "demo");
        steps = store->steps(id).size();
    }
    {
        // A crash in the middle of a step line.
        std::ofstream out(ws / "runs" / id / "journal.jsonl", std::ios::app | std::ios::binary);
        out << R"({"type":"step","step":13,"ep)";
    }
    const WorkspaceReport report = repairWorkspace(ws, true);
    ASSERT_EQ(report.problems.size(), 1u);
    EXPECT_NE(report.problems[0].find("1 of"), std::string::npos) << report.problems[0];
    EXPECT_EQ(RunStore::open(ws)->steps(id).size(), steps);
}

TEST(Workspace, RepairAddsRunFoldersCopiedIn) {
    segscope::test::TempDir dir;
    std::string id;
    {
        auto store = RunStore::open(dir / "a");
        id = recordFullRun(*store, "from-a");
    }
    {
        auto store = RunStore::open(dir / "b");
        recordFullRun(*store, "in-b");
    }
    fs::copy(dir / "a" / "runs" / id, dir / "b" / "runs" / id, fs::copy_options::recursive);
    const WorkspaceReport report = repairWorkspace(dir / "b");
    EXPECT_TRUE(report.movedAside.empty()) << "a healthy database is kept";
    EXPECT_EQ(report.runsRecovered, 1);
    auto store = RunStore::open(dir / "b");
    EXPECT_EQ(store->listRuns().size(), 2u);
    // The same record, its folder and checkpoints in b.
    std::string expected = describe(*RunStore::open(dir / "a"), id);
    const std::string from = (dir / "a").string() + "/", to = (dir / "b").string() + "/";
    for (std::size_t at = expected.find(from); at != std::string::npos; at = expected.find(from, at + to.size()))
        expected.replace(at, from.size(), to);
    EXPECT_EQ(describe(*store, id), expected);
    EXPECT_EQ(store->run(id)->bestMiou, RunStore::open(dir / "a")->run(id)->bestMiou);
    EXPECT_EQ(store->steps(id).size(), RunStore::open(dir / "a")->steps(id).size());
}

TEST(Workspace, DeletedRunStaysDeletedAfterARebuild) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    auto store = RunStore::open(ws);
    const std::string kept = recordFullRun(*store, "kept");
    const std::string removed = recordFullRun(*store, "removed");
    const std::string keptFolder = recordFullRun(*store, "folder-kept");
    store->deleteRun(removed);
    store->deleteRun(keptFolder, /*removeFolder=*/false);
    EXPECT_FALSE(fs::exists(ws / "runs" / removed));
    EXPECT_TRUE(fs::exists(ws / "runs" / keptFolder));
    store.reset();
    repairWorkspace(ws, true);
    const auto runs = RunStore::open(ws)->listRuns();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].id, kept);
}

namespace {

// Counts every TrainingObserver event it receives.
class CountingObserver : public TrainingObserver {
public:
    void onStarted(const TrainingStart&) override { ++started; }
    void onStep(const StepEvent&) override { ++steps; }
    void onValidation(const ValidationEvent&) override { ++validations; }
    void onCheckpoint(const CheckpointEvent&) override { ++checkpoints; }
    void onCheckpointRemoved(const CheckpointEvent&) override { ++removals; }
    void onErf(const ErfEvent& e) override {
        ++erfs;
        erfDirectory = e.directory;
    }
    void onLog(const std::string&) override { ++logs; }
    void onPaused(bool) override { ++pauses; }
    void onFinished(TrainingOutcome, const std::string&) override { ++finishes; }
    int started = 0, steps = 0, validations = 0, checkpoints = 0, removals = 0, erfs = 0, logs = 0, pauses = 0,
        finishes = 0;
    fs::path erfDirectory;
};

}  // namespace

TEST(RunRecorder, ForwardsEveryEvent) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir / "ws");
    const std::string id = store->createRun(sampleRun("recorded"));
    CountingObserver next;
    RunRecorder recorder(*store, id, &next);
    TrainingObserver& observer = recorder;
    TrainingStart start;
    start.parameters = 10;
    observer.onStarted(start);
    StepEvent step;
    step.step = 1;
    observer.onStep(step);
    ValidationEvent validation;
    validation.epoch = 1;
    validation.step = 1;
    validation.metrics = metricsWith(0.5, 0.5);
    observer.onValidation(validation);
    observer.onCheckpoint({dir / "ws" / "runs" / id / "checkpoints" / "a.safetensors",
                           dir / "ws" / "runs" / id / "checkpoints" / "a.state.pt", 1, 1, true});
    observer.onCheckpoint({dir / "ws" / "runs" / id / "checkpoints" / "b.safetensors",
                           dir / "ws" / "runs" / id / "checkpoints" / "b.state.pt", 2, 2, false});
    observer.onCheckpointRemoved({dir / "ws" / "runs" / id / "checkpoints" / "a.safetensors",
                                  dir / "ws" / "runs" / id / "checkpoints" / "a.state.pt", 1, 1, true});
    observer.onErf({1, 1, dir / "ws" / "runs" / id / "erf" / "epoch-0001", 0.5});
    observer.onLog("a line");
    observer.onPaused(true);
    observer.onPaused(false);
    observer.onFinished(TrainingOutcome::Finished, "done");
    EXPECT_EQ(next.started, 1);
    EXPECT_EQ(next.steps, 1);
    EXPECT_EQ(next.validations, 1);
    EXPECT_EQ(next.checkpoints, 2);
    EXPECT_EQ(next.removals, 1);
    EXPECT_EQ(next.erfs, 1);
    EXPECT_EQ(next.erfDirectory, dir / "ws" / "runs" / id / "erf" / "epoch-0001");
    EXPECT_EQ(next.logs, 1);
    EXPECT_EQ(next.pauses, 2);
    EXPECT_EQ(next.finishes, 1);
    EXPECT_EQ(store->run(id)->status, RunStatus::Finished);
    EXPECT_EQ(store->steps(id).size(), 1u);
    // The removed checkpoint is forgotten; the other one stays.
    ASSERT_EQ(store->checkpoints(id).size(), 1u);
    EXPECT_EQ(store->checkpoints(id)[0].path.filename(), "b.state.pt");
}

TEST(Workspace, RunWhoseFolderWasDeletedStillUpdates) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir / "ws");
    const std::string id = store->createRun(sampleRun("gone"));
    fs::remove_all(store->run(id)->folder);
    store->updateStatus(id, RunStatus::Interrupted, "folder deleted");
    EXPECT_EQ(store->run(id)->status, RunStatus::Interrupted);
    EXPECT_FALSE(fs::exists(dir / "ws" / "runs" / id)) << "no folder is created for the journal";
}

TEST(Workspace, OlderRunFolderWithoutJournalKeepsItsCheckpoints) {
    segscope::test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    {
        auto store = RunStore::open(ws);
        id = store->createRun(sampleRun("older"));
    }
    const fs::path folder = ws / "runs" / id;
    fs::remove(folder / "journal.jsonl");
    std::ofstream(folder / "experiment.json")
        << R"({"version": 1, "name": "older run", "model": {"id": "fcn-resnet50"}})";
    fs::create_directories(folder / "checkpoints");
    for (const char* name : {"epoch-0002-step-00000020.state.pt", "epoch-0001-step-00000010.state.pt", "notes.txt"})
        std::ofstream(folder / "checkpoints" / name) << "x";
    writeFileBytes(workspaceDatabasePath(ws), randomBytes(2048));
    const WorkspaceReport report = repairWorkspace(ws);
    EXPECT_EQ(report.runsWithoutJournal, 1);
    auto store = RunStore::open(ws);
    const auto run = store->run(id);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->name, "older run");
    EXPECT_EQ(run->model, "fcn-resnet50");
    EXPECT_EQ(run->status, RunStatus::Interrupted);
    EXPECT_EQ(run->createdAt.substr(0, 4), id.substr(0, 4));
    const auto checkpoints = store->checkpoints(id);
    ASSERT_EQ(checkpoints.size(), 2u);
    EXPECT_EQ(checkpoints[0].step, 10);
    EXPECT_EQ(checkpoints[1].epoch, 2);
    EXPECT_EQ(checkpoints[1].path, folder / "checkpoints" / "epoch-0002-step-00000020.state.pt");
}
