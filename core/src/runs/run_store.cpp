#include "segscope/core/runs/run_store.h"
#include "segscope/core/runtime.h"
#include "segscope/core/safe_text.h"

#include "runs/run_journal.h"
#include "runs/sqlite.h"

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <random>
#include <set>
#include <sstream>

namespace segscope::core {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace runs_detail;

namespace {

const char* const kStatusNames[] = {"queued", "running", "paused", "finished", "failed", "cancelled", "interrupted"};

std::string hostName() {
    char buffer[256] = {};
    if (gethostname(buffer, sizeof buffer - 1) != 0) return {};
    return buffer;
}

// Model ids go into folder names: keep [a-z0-9._-].
std::string slug(const std::string& text) {
    std::string out;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u))
            out += static_cast<char>(std::tolower(u));
        else if (c == '-' || c == '_' || c == '.')
            out += c;
        else
            out += '-';
    }
    if (out.empty()) out = "run";
    if (out.size() > 40) out.resize(40);
    return out;
}

const char* kSchemaV1 = R"sql(
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    dataset TEXT NOT NULL DEFAULT '',
    experiment_json TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('queued','running','paused','finished','failed','cancelled','interrupted')),
    status_message TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    parameters INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    best_miou REAL,
    best_epoch INTEGER,
    final_miou REAL,
    seconds REAL,
    images_per_second REAL,
    folder TEXT NOT NULL,
    pid INTEGER,
    hostname TEXT
);
CREATE TABLE step_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    loss REAL,
    lr REAL,
    images_per_second REAL,
    memory_bytes INTEGER,
    wall_seconds REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE epoch_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    aacc REAL,
    miou REAL,
    macc REAL,
    mdice REAL,
    val_loss REAL,
    wall_seconds REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE TABLE class_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    class_index INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    iou REAL,
    acc REAL,
    dice REAL,
    precision REAL,
    recall REAL,
    pixel_share REAL,
    PRIMARY KEY (run_id, epoch, class_index)
) WITHOUT ROWID;
CREATE TABLE image_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    image_id TEXT NOT NULL,
    miou REAL,
    per_class_iou_json TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, epoch, image_id)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX checkpoints_run ON checkpoints(run_id, step);
CREATE INDEX runs_created ON runs(created_at);
)sql";

const char* kSummaryColumns =
    "id, name, model, dataset, status, status_message, device, parameters, created_at, started_at, ended_at, "
    "best_miou, best_epoch, final_miou, seconds, images_per_second, folder";

void readSummary(const Statement& s, RunSummary& r) {
    r.id = s.text(0);
    r.name = s.text(1);
    r.model = s.text(2);
    r.dataset = s.text(3);
    r.status = parseRunStatus(s.text(4)).value_or(RunStatus::Failed);
    r.statusMessage = s.text(5);
    r.device = s.text(6);
    r.parameters = s.integer(7);
    r.createdAt = s.text(8);
    r.startedAt = s.text(9);
    r.endedAt = s.text(10);
    r.bestMiou = s.optionalReal(11);
    if (auto e = s.optionalInteger(12)) r.bestEpoch = static_cast<int>(*e);
    r.finalMiou = s.optionalReal(13);
    r.seconds = s.optionalReal(14);
    r.imagesPerSecond = s.optionalReal(15);
    r.folder = s.text(16);
}

}  // namespace

const char* runStatusName(RunStatus status) {
    return kStatusNames[static_cast<int>(status)];
}

std::optional<RunStatus> parseRunStatus(const std::string& text) {
    for (int i = 0; i < 7; ++i)
        if (text == kStatusNames[i]) return static_cast<RunStatus>(i);
    return std::nullopt;
}

bool isTerminal(RunStatus status) {
    return status == RunStatus::Finished || status == RunStatus::Failed || status == RunStatus::Cancelled ||
           status == RunStatus::Interrupted;
}

EpochRecord epochRecord(const SegmentationMetrics& metrics, int epoch, std::int64_t step, std::optional<double> valLoss,
                        double wallSeconds) {
    EpochRecord r;
    r.epoch = epoch;
    r.step = step;
    r.aAcc = metrics.aAcc;
    r.mIoU = metrics.mIoU;
    r.mAcc = metrics.mAcc;
    r.mDice = metrics.mDice;
    r.valLoss = valLoss;
    r.wallSeconds = wallSeconds;
    return r;
}

std::vector<ClassRecord> classRecords(const SegmentationMetrics& metrics) {
    std::vector<ClassRecord> out;
    for (std::size_t i = 0; i < metrics.perClass.size(); ++i) {
        const auto& c = metrics.perClass[i];
        out.push_back({static_cast<int>(i), c.name, c.iou, c.acc, c.dice, c.precision, c.recall, c.pixelShare});
    }
    return out;
}

std::filesystem::path defaultWorkspace() {
    if (const char* w = std::getenv("SEGSCOPE_WORKSPACE"); w && *w) return w;
    if (const char* data = std::getenv("XDG_DATA_HOME"); data && *data) return std::filesystem::path(data) / "SegScope";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::filesystem::path(home) / ".local" / "share" / "SegScope";
    return std::filesystem::temp_directory_path() / "SegScope";
}

fs::path workspaceDatabasePath(const fs::path& workspace) {
    return workspace / ".segscope" / "segscope.db";
}

bool isWorkspace(const fs::path& workspace) {
    return pathExists(workspaceDatabasePath(workspace)) || pathExists(legacyDatabasePath(workspace));
}

std::string WorkspaceReport::summary() const {
    std::ostringstream out;
    if (migrated) out << "The run database was moved into the workspace's .segscope folder.\n";
    if (!movedAside.empty())
        out << "The run database could not be used (" << reason << ") and was moved aside to " << movedAside.string()
            << ".\n";
    if (rebuilt) {
        out << "The run database was rebuilt from the run folders: " << runsRecovered << " run"
            << (runsRecovered == 1 ? "" : "s") << " recovered with their metrics and checkpoints";
        if (runsWithoutJournal > 0)
            out << ", " << runsWithoutJournal << " older run" << (runsWithoutJournal == 1 ? "" : "s")
                << " without a journal recovered from experiment.json and checkpoint files only";
        out << ".\n";
    }
    for (const auto& p : problems) out << "- " << p << "\n";
    return out.str();
}

// ---------------------------------------------------------------------------------------------

RunStore::RunStore(fs::path workspace, StoreAccess access) : access_(access) {
    std::error_code ec;
    fs::path absolute = fs::absolute(workspace, ec);
    workspace_ = (ec ? workspace : absolute).lexically_normal();
    if (workspace_.filename().empty() && workspace_.has_parent_path()) workspace_ = workspace_.parent_path();
    databasePath_ = workspaceDatabasePath(workspace_);
}

RunStore::~RunStore() {
    if (insertStep_) sqlite3_finalize(insertStep_);
    if (db_) sqlite3_close_v2(db_);
}

void RunStore::fail(const std::string& what, int code) {
    std::string reason = what + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(code));
    const int primary = code & 0xff;
    if (primary == SQLITE_FULL)
        reason += " (the disk is full)";
    else if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM)
        reason += " (is the workspace writable?)";
    else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        reason += " (another process holds the database)";
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
        throw DatabaseError(DatabaseError::Kind::Corrupt, databasePath_.string(),
                            reason + "; `segscope-cli workspace repair` rebuilds it from the run folders");
    throw FileError(databasePath_.string(), reason);
}

void RunStore::exec(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        const std::string text = message ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        fail(text, rc);
    }
}

sqlite3_stmt* RunStore::prepare(const char* sql) {
    sqlite3_stmt* statement = nullptr;
    const int rc = sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr);
    if (rc != SQLITE_OK) fail("cannot prepare a query", rc);
    return statement;
}

void RunStore::connect(const fs::path& path) {
    const bool readOnly = access_ == StoreAccess::ReadOnly;
    // NOMUTEX: the RunStore's own mutex serialises access to the connection.
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    flags |= readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) fail("cannot open the run database", rc);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    if (!readOnly) return;
    // A WAL database on a read-only medium cannot create its -shm file; nobody can write there
    // either, so the file is immutable for as long as this connection lives.
    {
        sqlite3_stmt* statement = nullptr;
        rc = sqlite3_prepare_v2(db_, "SELECT count(*) FROM sqlite_master", -1, &statement, nullptr);
        if (rc == SQLITE_OK) {
            Statement probe(statement);
            rc = probe.step();
        }
    }
    if (rc == SQLITE_ROW) return;
    if ((rc & 0xff) != SQLITE_CANTOPEN && (rc & 0xff) != SQLITE_READONLY) fail("cannot read the run database", rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    std::string uri = "file:";
    for (const unsigned char c : path.string()) {
        if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_') {
            uri += static_cast<char>(c);
        } else {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", c);
            uri += hex;
        }
    }
    uri += "?immutable=1";
    rc = sqlite3_open_v2(uri.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) fail("cannot open the run database", rc);
    sqlite3_extended_result_codes(db_, 1);
}

// Refuses a database that is not SegScope's, or one that lost its runs while run folders exist.
void RunStore::checkIdentity() {
    std::vector<std::string> tables;
    {
        Statement s(prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"));
        int rc;
        while ((rc = s.step()) == SQLITE_ROW) tables.push_back(s.text(0));
        if (rc != SQLITE_DONE) fail("cannot read the run database", rc);
    }
    std::int64_t applicationId = 0;
    {
        Statement s(prepare("PRAGMA application_id"));
        if (s.step() == SQLITE_ROW) applicationId = s.integer(0);
    }
    const bool hasRuns = std::find(tables.begin(), tables.end(), "runs") != tables.end();
    if (tables.empty()) {
        if (hasRunFolders(workspace_) && access_ == StoreAccess::ReadOnly)
            throw DatabaseError(DatabaseError::Kind::EmptyWithRuns, databasePath_.string(),
                                "the run database is empty but the workspace holds run folders; "
                                "`segscope-cli workspace repair` rebuilds it from them");
        return;  // a new database, or an empty file: migrate() creates the schema
    }
    if (applicationId == kRunStoreApplicationId || (applicationId == 0 && hasRuns)) return;
    std::string list;
    for (std::size_t i = 0; i < tables.size() && i < 5; ++i) list += (i ? ", " : "") + tables[i];
    if (tables.size() > 5) list += ", ...";
    throw DatabaseError(DatabaseError::Kind::Foreign, databasePath_.string(),
                        "not a SegScope run database (it holds the tables " + list +
                            "); SegScope leaves it untouched. Move it away, then `segscope-cli workspace "
                            "repair` rebuilds the run database from the run folders");
}

std::unique_ptr<RunStore> RunStore::open(const fs::path& workspace, StoreAccess access) {
    std::unique_ptr<RunStore> store(new RunStore(workspace, access));
    const fs::path current = store->databasePath_;
    const fs::path legacy = legacyDatabasePath(workspace);
    if (access == StoreAccess::ReadOnly) {
        std::error_code ec;
        if (!fs::exists(current, ec)) {
            if (!fs::exists(legacy, ec))
                throw FileError(workspace.string(), "not a SegScope workspace (no .segscope/segscope.db)");
            store->databasePath_ = legacy;  // an older workspace, read where it is
        }
        store->connect(store->databasePath_);
        store->checkIdentity();
        Statement s(store->prepare("PRAGMA user_version"));
        if (s.step() == SQLITE_ROW && s.integer(0) > kRunStoreSchemaVersion)
            throw FileError(store->databasePath_.string(),
                            "written by a newer SegScope (schema " + std::to_string(s.integer(0)) +
                                ", this version reads up to " + std::to_string(kRunStoreSchemaVersion) + ")");
        return store;
    }

    std::error_code ec;
    fs::create_directories(workspace / "runs", ec);
    if (ec) throw FileError(workspace.string(), "cannot create the workspace folder: " + ec.message());
    fs::create_directories(current.parent_path(), ec);
    if (ec) throw FileError(current.parent_path().string(), "cannot create the database folder: " + ec.message());
    const bool fresh = !fs::exists(current, ec);
    bool migrated = false;
    if (fresh && fs::exists(legacy, ec)) {
        // An older workspace: leave WAL mode there first, which succeeds only when no other
        // connection has the file open (an older SegScope still running would keep writing to it),
        // and leaves one self-contained file to move.
        {
            RunStore old(workspace, StoreAccess::ReadWrite);
            old.databasePath_ = legacy;
            old.connect(legacy);
            old.checkIdentity();
            Statement s(old.prepare("PRAGMA journal_mode = DELETE"));
            const int rc = s.step();
            if (rc != SQLITE_ROW || s.text(0) != "delete")
                throw FileError(legacy.string(),
                                "cannot move the run database into .segscope/: another SegScope process has it "
                                "open; close it and try again");
        }
        fs::rename(legacy, current, ec);
        if (ec) throw FileError(legacy.string(), "cannot move the run database into .segscope/: " + ec.message());
        migrated = true;
    }
    store->connect(current);
    store->checkIdentity();
    store->exec("PRAGMA foreign_keys = ON");
    {
        // journal_mode=WAL returns the mode in force: anything else means WAL is unavailable
        // (e.g. a network file system), which would make readers block the trainer.
        Statement s(store->prepare("PRAGMA journal_mode = WAL"));
        const int step = s.step();
        if (step != SQLITE_ROW) store->fail("cannot enable WAL journaling", step);
        if (s.text(0) != "wal")
            throw FileError(current.string(), "cannot enable WAL journaling (journal mode is " + s.text(0) + ")");
    }
    store->exec("PRAGMA synchronous = NORMAL");
    const bool created = store->listTablesEmpty();
    store->migrate();
    if (migrated) {
        store->openReport_.migrated = true;
        // Runs recorded before journals existed get one now, so that a later rebuild keeps them whole.
        for (const auto& run : store->listRuns())
            if (!pathExists(run.folder / kJournalName)) store->writeJournalFromDatabase(run.id);
    }
    if (created && hasRunFolders(workspace)) {
        // A missing or emptied database: the run folders still hold everything.
        store->openReport_.rebuilt = true;
        store->openReport_.reason = fresh ? "the database was missing" : "the database was empty";
        addUnlistedRuns(*store, store->openReport_);
    }
    return store;
}

bool RunStore::listTablesEmpty() {
    Statement s(prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'"));
    const int rc = s.step();
    if (rc != SQLITE_ROW) fail("cannot read the run database", rc);
    return s.integer(0) == 0;
}

void RunStore::migrate() {
    int version = 0;
    {
        Statement s(prepare("PRAGMA user_version"));
        if (s.step() == SQLITE_ROW) version = static_cast<int>(s.integer(0));
    }
    if (version > kRunStoreSchemaVersion)
        throw FileError(databasePath_.string(), "written by a newer SegScope (schema " + std::to_string(version) +
                                                    ", this version reads up to " +
                                                    std::to_string(kRunStoreSchemaVersion) + ")");
    if (version == kRunStoreSchemaVersion) return;
    // BEGIN IMMEDIATE takes the write lock first, so two processes opening a new workspace at
    // once do not both create the tables.
    exec("BEGIN IMMEDIATE");
    try {
        Statement s(prepare("PRAGMA user_version"));
        version = s.step() == SQLITE_ROW ? static_cast<int>(s.integer(0)) : 0;
        if (version < 1) {
            exec(kSchemaV1);
            exec("PRAGMA user_version = 1");
            exec(("PRAGMA application_id = " + std::to_string(kRunStoreApplicationId)).c_str());
        }
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

std::string RunStore::integrityCheck() {
    std::lock_guard lock(mutex_);
    Statement s(prepare("PRAGMA integrity_check(20)"));
    std::string out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out += (out.empty() ? "" : "; ") + s.text(0);
    if (rc != SQLITE_DONE) fail("cannot check the run database", rc);
    return out;
}

fs::path RunStore::runFolder(const std::string& runId) const {
    return workspace_ / "runs" / runId;
}

// Checkpoints inside the run folder are stored relative to it. A path naming runs/<id>/ is this
// run's folder wherever the workspace is; another relative path is already the run folder's.
fs::path RunStore::storedCheckpointPath(const std::string& runId, const fs::path& path) const {
    std::vector<fs::path> parts(path.begin(), path.end());
    for (std::size_t i = 0; i + 1 < parts.size(); ++i)
        if (parts[i] == "runs" && parts[i + 1] == runId) {
            fs::path rest;
            for (std::size_t k = i + 2; k < parts.size(); ++k) rest /= parts[k];
            return rest;
        }
    return path;
}

// Relative paths are the run folder's; absolute paths of an older SegScope that name this run's
// folder elsewhere (a moved or copied workspace) are taken as the same file in this workspace.
fs::path RunStore::resolvedCheckpointPath(const std::string& runId, const std::string& stored) const {
    const fs::path path = storedCheckpointPath(runId, stored);
    return path.is_relative() ? runFolder(runId) / path : path;
}

void RunStore::insertRun(const std::string& id, const NewRun& run, const std::string& createdAt) {
    Statement s(
        prepare("INSERT OR IGNORE INTO runs (id, name, model, dataset, experiment_json, status, device, "
                "parameters, created_at, folder) VALUES (?,?,?,?,?,?,?,?,?,?)"));
    s.bind(1, id).bind(2, run.name).bind(3, run.model).bind(4, run.dataset).bind(5, run.experimentJson);
    s.bind(6, runStatusName(run.status)).bind(7, run.device).bind(8, run.parameters).bind(9, createdAt);
    s.bind(10, (fs::path("runs") / id).string());
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot create a run", rc);
}

std::string RunStore::createRun(const NewRun& run) {
    std::lock_guard lock(mutex_);
    if (run.name.size() > 1000)
        throw Error("run name too long (" + std::to_string(run.name.size()) + " bytes; at most 1000)");
    static thread_local std::mt19937_64 random{std::random_device{}()};
    for (int attempt = 0; attempt < 8; ++attempt) {
        std::ostringstream suffix;
        suffix << std::hex << std::setw(4) << std::setfill('0') << (random() & 0xffff);
        const std::string id = utcNow("%Y%m%d-%H%M%S") + "-" + slug(run.model) + "-" + suffix.str();
        const fs::path folder = runFolder(id);
        std::error_code ec;
        if (fs::exists(folder, ec)) continue;  // a folder the database does not list: never reuse it
        const std::string createdAt = isoNow();
        insertRun(id, run, createdAt);
        if (sqlite3_changes(db_) == 0) continue;  // id taken in the same second: draw another suffix
        ++ownCommits_;
        fs::create_directories(folder, ec);
        if (ec) {
            sqlite3_exec(db_, ("DELETE FROM runs WHERE id = '" + id + "'").c_str(), nullptr, nullptr, nullptr);
            throw FileError(folder.string(), "cannot create the run folder: " + ec.message());
        }
        try {
            journal(id, "run",
                    {{"version", 1},
                     {"id", id},
                     {"name", journalText(run.name)},
                     {"model", run.model},
                     {"dataset", journalText(run.dataset)},
                     {"experiment_json", journalText(run.experimentJson)},
                     {"device", run.device},
                     {"parameters", run.parameters},
                     {"status", runStatusName(run.status)},
                     {"created_at", createdAt}},
                    true);
        } catch (...) {
            sqlite3_exec(db_, ("DELETE FROM runs WHERE id = '" + id + "'").c_str(), nullptr, nullptr, nullptr);
            fs::remove_all(folder, ec);
            throw;
        }
        if (run.status == RunStatus::Running) updateStatus(id, RunStatus::Running);
        return id;
    }
    throw Error("run store: could not find a free run id");
}

void RunStore::applyStatus(const std::string& runId, RunStatus status, const std::string& message,
                           const std::string& at, std::int64_t pid, const std::string& host) {
    Statement s(
        prepare("UPDATE runs SET status = ?2, status_message = ?3, "
                "started_at = CASE WHEN ?2 = 'running' AND started_at IS NULL THEN ?4 ELSE started_at END, "
                "ended_at = CASE WHEN ?5 THEN ?4 WHEN ?2 IN ('running','queued','paused') THEN NULL ELSE ended_at END, "
                "pid = CASE WHEN ?2 = 'running' THEN ?6 ELSE pid END, "
                "hostname = CASE WHEN ?2 = 'running' THEN ?7 ELSE hostname END "
                "WHERE id = ?1"));
    s.bind(1, runId).bind(2, runStatusName(status)).bind(3, message).bind(4, at);
    s.bind(5, static_cast<int>(isTerminal(status))).bind(6, pid).bind(7, host);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot update run " + runId, rc);
    if (sqlite3_changes(db_) == 0) throw Error("run store: no run with id '" + runId + "'");
}

void RunStore::updateStatus(const std::string& runId, RunStatus status, const std::string& message) {
    std::lock_guard lock(mutex_);
    const std::string now = isoNow();
    const auto pid = static_cast<std::int64_t>(::getpid());
    const std::string host = hostName();
    requireRun(runId);
    journal(runId, "status",
            {{"status", runStatusName(status)},
             {"message", journalText(message)},
             {"at", now},
             {"pid", pid},
             {"host", journalText(host)}},
            true);
    applyStatus(runId, status, message, now, pid, host);
    ++ownCommits_;
}

void RunStore::updateTotals(const std::string& runId, double seconds, double imagesPerSecond) {
    std::lock_guard lock(mutex_);
    requireRun(runId);
    journal(runId, "totals", {{"seconds", seconds}, {"images_per_second", imagesPerSecond}}, true);
    Statement s(prepare("UPDATE runs SET seconds = ?, images_per_second = ? WHERE id = ?"));
    s.bind(1, seconds).bind(2, imagesPerSecond).bind(3, runId);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot update run " + runId, rc);
    ++ownCommits_;
}

void RunStore::updateParameters(const std::string& runId, std::int64_t parameters) {
    std::lock_guard lock(mutex_);
    requireRun(runId);
    journal(runId, "parameters", {{"parameters", parameters}}, false);
    Statement s(prepare("UPDATE runs SET parameters = ? WHERE id = ?"));
    s.bind(1, parameters).bind(2, runId);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot update run " + runId, rc);
    ++ownCommits_;
}

void RunStore::appendStep(const std::string& runId, const StepRecord& step) {
    std::lock_guard lock(mutex_);
    // Prepared once: steps are the hot path (one per iteration).
    if (!insertStep_)
        insertStep_ = prepare(
            "INSERT OR REPLACE INTO step_metrics (run_id, step, epoch, loss, lr, images_per_second, "
            "memory_bytes, wall_seconds) VALUES (?,?,?,?,?,?,?,?)");
    if (!replaying_) {
        // The journal is written only for a run the database knows.
        requireRun(runId);
        json entry{{"step", step.step},
                   {"epoch", step.epoch},
                   {"loss", step.loss},
                   {"lr", step.learningRate},
                   {"images_per_second", step.imagesPerSecond},
                   {"wall_seconds", step.wallSeconds}};
        if (step.memoryBytes) entry["memory_bytes"] = *step.memoryBytes;
        journal(runId, "step", std::move(entry), false);
    }
    Statement s(insertStep_, false);
    s.bind(1, runId).bind(2, step.step).bind(3, step.epoch).bind(4, step.loss).bind(5, step.learningRate);
    s.bind(6, step.imagesPerSecond).bind(7, step.memoryBytes).bind(8, step.wallSeconds);
    const int rc = s.step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) throw Error("run store: no run with id '" + runId + "'");
    if (rc != SQLITE_DONE) fail("cannot record step " + std::to_string(step.step), rc);
    ++ownCommits_;
}

void RunStore::appendEpoch(const std::string& runId, const EpochRecord& epoch, const std::vector<ClassRecord>& classes,
                           const std::vector<ImageRecord>& images) {
    std::lock_guard lock(mutex_);
    const bool own = !replaying_;
    if (own) exec("BEGIN IMMEDIATE");
    try {
        requireRun(runId);
        auto check = [this, &epoch](int rc) {
            if (rc != SQLITE_DONE) fail("cannot record evaluation " + std::to_string(epoch.epoch), rc);
        };
        for (const char* sql : {"DELETE FROM class_metrics WHERE run_id = ? AND epoch = ?",
                                "DELETE FROM image_metrics WHERE run_id = ? AND epoch = ?"}) {
            Statement s(prepare(sql));
            s.bind(1, runId).bind(2, epoch.epoch);
            check(s.step());
        }
        {
            Statement s(
                prepare("INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, step, aacc, miou, macc, mdice, "
                        "val_loss, wall_seconds) VALUES (?,?,?,?,?,?,?,?,?)"));
            s.bind(1, runId).bind(2, epoch.epoch).bind(3, epoch.step).bind(4, epoch.aAcc).bind(5, epoch.mIoU);
            s.bind(6, epoch.mAcc).bind(7, epoch.mDice).bind(8, epoch.valLoss).bind(9, epoch.wallSeconds);
            check(s.step());
        }
        {
            Statement s(
                prepare("INSERT INTO class_metrics (run_id, epoch, class_index, class_name, iou, acc, dice, "
                        "precision, recall, pixel_share) VALUES (?,?,?,?,?,?,?,?,?,?)"));
            for (const auto& c : classes) {
                s.bind(1, runId).bind(2, epoch.epoch).bind(3, c.classIndex).bind(4, c.className).bind(5, c.iou);
                s.bind(6, c.acc).bind(7, c.dice).bind(8, c.precision).bind(9, c.recall).bind(10, c.pixelShare);
                check(s.step());
                s.reset();
            }
        }
        {
            Statement s(
                prepare("INSERT OR REPLACE INTO image_metrics (run_id, epoch, image_id, miou, "
                        "per_class_iou_json) VALUES (?,?,?,?,?)"));
            for (const auto& image : images) {
                s.bind(1, runId).bind(2, epoch.epoch).bind(3, image.imageId).bind(4, image.mIoU);
                s.bind(5, image.perClassIouJson.empty() ? std::string("[]") : image.perClassIouJson);
                check(s.step());
                s.reset();
            }
        }
        {
            // best = the highest mIoU so far (earliest epoch on ties); final = the latest evaluation's.
            Statement s(
                prepare("UPDATE runs SET "
                        "best_miou = (SELECT miou FROM epoch_metrics WHERE run_id = ?1 AND miou IS NOT NULL "
                        "             ORDER BY miou DESC, epoch ASC LIMIT 1), "
                        "best_epoch = (SELECT epoch FROM epoch_metrics WHERE run_id = ?1 AND miou IS NOT NULL "
                        "              ORDER BY miou DESC, epoch ASC LIMIT 1), "
                        "final_miou = (SELECT miou FROM epoch_metrics WHERE run_id = ?1 ORDER BY epoch DESC LIMIT 1) "
                        "WHERE id = ?1"));
            s.bind(1, runId);
            check(s.step());
        }
        if (own) {
            // The journal line goes in last but before the commit: a failed append rolls the
            // database back, so the two never disagree about an evaluation.
            json classList = json::array();
            for (const auto& c : classes)
                classList.push_back({{"index", c.classIndex},
                                     {"name", journalText(c.className)},
                                     {"iou", optionalJson(c.iou)},
                                     {"acc", optionalJson(c.acc)},
                                     {"dice", optionalJson(c.dice)},
                                     {"precision", optionalJson(c.precision)},
                                     {"recall", optionalJson(c.recall)},
                                     {"pixel_share", optionalJson(c.pixelShare)}});
            json imageList = json::array();
            for (const auto& i : images)
                imageList.push_back({{"id", journalText(i.imageId)},
                                     {"miou", optionalJson(i.mIoU)},
                                     {"per_class_iou", i.perClassIouJson.empty() ? "[]" : i.perClassIouJson}});
            journal(runId, "evaluation",
                    {{"epoch", epoch.epoch},
                     {"step", epoch.step},
                     {"aacc", optionalJson(epoch.aAcc)},
                     {"miou", optionalJson(epoch.mIoU)},
                     {"macc", optionalJson(epoch.mAcc)},
                     {"mdice", optionalJson(epoch.mDice)},
                     {"val_loss", optionalJson(epoch.valLoss)},
                     {"wall_seconds", epoch.wallSeconds},
                     {"classes", std::move(classList)},
                     {"images", std::move(imageList)}},
                    true);
            exec("COMMIT");
        }
    } catch (...) {
        if (own) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    ++ownCommits_;
}

void RunStore::addCheckpoint(const std::string& runId, const CheckpointRecord& checkpoint) {
    std::lock_guard lock(mutex_);
    requireRun(runId);
    const fs::path stored = storedCheckpointPath(runId, checkpoint.path);
    const std::string createdAt = checkpoint.createdAt.empty() ? isoNow() : checkpoint.createdAt;
    journal(runId, "checkpoint",
            {{"epoch", checkpoint.epoch},
             {"step", checkpoint.step},
             {"path", journalText(stored.string())},
             {"created_at", createdAt}},
            true);
    Statement s(prepare("INSERT INTO checkpoints (run_id, epoch, step, path, created_at) VALUES (?,?,?,?,?)"));
    s.bind(1, runId).bind(2, checkpoint.epoch).bind(3, checkpoint.step).bind(4, stored.string());
    s.bind(5, createdAt);
    const int rc = s.step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) throw Error("run store: no run with id '" + runId + "'");
    if (rc != SQLITE_DONE) fail("cannot record a checkpoint", rc);
    ++ownCommits_;
}

void RunStore::removeCheckpoint(const std::string& runId, const fs::path& path) {
    std::lock_guard lock(mutex_);
    requireRun(runId);
    const fs::path target = resolvedCheckpointPath(runId, storedCheckpointPath(runId, path).string());
    std::vector<std::string> rows;
    {
        Statement s(prepare("SELECT path FROM checkpoints WHERE run_id = ?"));
        s.bind(1, runId);
        int rc;
        while ((rc = s.step()) == SQLITE_ROW)
            if (resolvedCheckpointPath(runId, s.text(0)) == target) rows.push_back(s.text(0));
        if (rc != SQLITE_DONE) fail("cannot read checkpoints of " + runId, rc);
    }
    if (rows.empty()) return;
    journal(runId, "checkpoint_removed", {{"path", journalText(storedCheckpointPath(runId, path).string())}}, false);
    for (const auto& row : rows) {
        Statement s(prepare("DELETE FROM checkpoints WHERE run_id = ? AND path = ?"));
        s.bind(1, runId).bind(2, row);
        const int rc = s.step();
        if (rc != SQLITE_DONE) fail("cannot forget a checkpoint of " + runId, rc);
    }
    ++ownCommits_;
}

std::vector<RunSummary> RunStore::listRuns() {
    std::lock_guard lock(mutex_);
    Statement s(prepare(
        (std::string("SELECT ") + kSummaryColumns + " FROM runs ORDER BY created_at DESC, rowid DESC").c_str()));
    std::vector<RunSummary> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
        RunSummary r;
        readSummary(s, r);
        r.folder = runFolder(r.id);
        out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) fail("cannot list runs", rc);
    return out;
}

std::optional<RunRecord> RunStore::run(const std::string& runId) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare((std::string("SELECT ") + kSummaryColumns + ", experiment_json, pid, hostname FROM runs WHERE id = ?")
                    .c_str()));
    s.bind(1, runId);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) fail("cannot read run " + runId, rc);
    RunRecord r;
    readSummary(s, r);
    r.folder = runFolder(r.id);
    r.experimentJson = s.text(17);
    r.pid = s.optionalInteger(18);
    r.hostname = s.text(19);
    return r;
}

void RunStore::requireRun(const std::string& runId) {
    Statement s(prepare("SELECT 1 FROM runs WHERE id = ?"));
    s.bind(1, runId);
    if (s.step() != SQLITE_ROW) throw Error("run store: no run with id '" + runId + "'");
}

std::vector<StepRecord> RunStore::steps(const std::string& runId, std::int64_t afterStep) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare("SELECT step, epoch, loss, lr, images_per_second, memory_bytes, wall_seconds FROM step_metrics "
                "WHERE run_id = ? AND step > ? ORDER BY step"));
    s.bind(1, runId).bind(2, afterStep);
    std::vector<StepRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
        StepRecord r;
        r.step = s.integer(0);
        r.epoch = static_cast<int>(s.integer(1));
        r.loss = s.real(2);
        r.learningRate = s.real(3);
        r.imagesPerSecond = s.real(4);
        r.memoryBytes = s.optionalInteger(5);
        r.wallSeconds = s.real(6);
        out.push_back(r);
    }
    if (rc != SQLITE_DONE) fail("cannot read steps of " + runId, rc);
    return out;
}

std::vector<EpochRecord> RunStore::epochs(const std::string& runId) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare("SELECT epoch, step, aacc, miou, macc, mdice, val_loss, wall_seconds FROM epoch_metrics "
                "WHERE run_id = ? ORDER BY epoch"));
    s.bind(1, runId);
    std::vector<EpochRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
        out.push_back({static_cast<int>(s.integer(0)), s.integer(1), s.optionalReal(2), s.optionalReal(3),
                       s.optionalReal(4), s.optionalReal(5), s.optionalReal(6), s.real(7)});
    if (rc != SQLITE_DONE) fail("cannot read evaluations of " + runId, rc);
    return out;
}

std::vector<ClassRecord> RunStore::classMetrics(const std::string& runId, int epoch) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare("SELECT class_index, class_name, iou, acc, dice, precision, recall, pixel_share "
                "FROM class_metrics WHERE run_id = ? AND epoch = ? ORDER BY class_index"));
    s.bind(1, runId).bind(2, epoch);
    std::vector<ClassRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
        out.push_back({static_cast<int>(s.integer(0)), s.text(1), s.optionalReal(2), s.optionalReal(3),
                       s.optionalReal(4), s.optionalReal(5), s.optionalReal(6), s.optionalReal(7)});
    if (rc != SQLITE_DONE) fail("cannot read class metrics of " + runId, rc);
    return out;
}

std::vector<ImageRecord> RunStore::imageMetrics(const std::string& runId, int epoch) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare("SELECT image_id, miou, per_class_iou_json FROM image_metrics WHERE run_id = ? AND epoch = ? "
                "ORDER BY miou IS NULL, miou ASC, image_id"));
    s.bind(1, runId).bind(2, epoch);
    std::vector<ImageRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.text(0), s.optionalReal(1), s.text(2)});
    if (rc != SQLITE_DONE) fail("cannot read image metrics of " + runId, rc);
    return out;
}

std::vector<CheckpointRecord> RunStore::checkpoints(const std::string& runId) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare("SELECT epoch, step, path, created_at FROM checkpoints WHERE run_id = ? "
                "ORDER BY step, rowid"));
    s.bind(1, runId);
    std::vector<CheckpointRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
        out.push_back(
            {static_cast<int>(s.integer(0)), s.integer(1), resolvedCheckpointPath(runId, s.text(2)), s.text(3)});
    if (rc != SQLITE_DONE) fail("cannot read checkpoints of " + runId, rc);
    return out;
}

std::optional<CheckpointRecord> RunStore::latestCheckpoint(const std::string& runId) {
    auto all = checkpoints(runId);
    if (all.empty()) return std::nullopt;
    return all.back();
}

void RunStore::truncateAfter(const std::string& runId, std::int64_t step) {
    std::lock_guard lock(mutex_);
    requireRun(runId);
    const bool own = !replaying_;
    if (own) exec("BEGIN IMMEDIATE");
    try {
        for (const char* sql : {"DELETE FROM step_metrics WHERE run_id = ? AND step > ?",
                                "DELETE FROM class_metrics WHERE run_id = ? AND epoch IN "
                                "(SELECT epoch FROM epoch_metrics WHERE run_id = ?1 AND step > ?2)",
                                "DELETE FROM image_metrics WHERE run_id = ? AND epoch IN "
                                "(SELECT epoch FROM epoch_metrics WHERE run_id = ?1 AND step > ?2)",
                                "DELETE FROM epoch_metrics WHERE run_id = ? AND step > ?",
                                "DELETE FROM checkpoints WHERE run_id = ? AND step > ?"}) {
            Statement s(prepare(sql));
            s.bind(1, runId);
            s.bind(2, step);
            const int rc = s.step();
            if (rc != SQLITE_DONE) fail("cannot truncate run " + runId, rc);
        }
        if (own) {
            journal(runId, "truncate", {{"step", step}}, true);
            exec("COMMIT");
        }
    } catch (...) {
        if (own) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    ++ownCommits_;
}

void RunStore::deleteRun(const std::string& runId, bool removeFolder) {
    std::lock_guard lock(mutex_);
    requireRun(runId);
    Statement s(prepare("DELETE FROM runs WHERE id = ?"));
    s.bind(1, runId);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot delete run " + runId, rc);
    ++ownCommits_;
    // The folder goes too; kept, its journal would bring the run back at the next rebuild, so a
    // kept folder loses its journal's claim by a marker line.
    std::error_code ec;
    if (removeFolder && !runId.empty() && runId.find('/') == std::string::npos && runId != "." && runId != "..")
        fs::remove_all(runFolder(runId), ec);
    else if (pathExists(runFolder(runId) / kJournalName))
        fs::rename(runFolder(runId) / kJournalName, runFolder(runId) / "journal.deleted.jsonl", ec);
}

std::int64_t RunStore::changeCounter() {
    std::lock_guard lock(mutex_);
    Statement s(prepare("PRAGMA data_version"));
    const int rc = s.step();
    if (rc != SQLITE_ROW) fail("cannot read the data version", rc);
    return s.integer(0) + ownCommits_;
}

int RunStore::markInterrupted() {
    std::lock_guard lock(mutex_);
    const std::string host = hostName();
    std::vector<std::string> dead;
    {
        Statement s(prepare("SELECT id, pid, hostname FROM runs WHERE status IN ('running', 'paused')"));
        int rc;
        while ((rc = s.step()) == SQLITE_ROW) {
            const auto pid = s.optionalInteger(1);
            const std::string runHost = s.text(2);
            if (!runHost.empty() && runHost != host) continue;  // another machine's run: cannot tell
            // No pid: set running by something that never recorded one; treat as gone.
            const bool alive = pid && *pid > 0 && (::kill(static_cast<pid_t>(*pid), 0) == 0 || errno == EPERM);
            if (!alive) dead.push_back(s.text(0));
        }
        if (rc != SQLITE_DONE) fail("cannot list running runs", rc);
    }
    for (const auto& id : dead)
        updateStatus(id, RunStatus::Interrupted, "the process running it ended without finishing");
    return static_cast<int>(dead.size());
}

}  // namespace segscope::core
