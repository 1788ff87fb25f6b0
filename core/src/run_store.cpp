#include "segscope/core/run_store.h"

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <random>
#include <sstream>

namespace segscope::core {
namespace {

const char* const kStatusNames[] = {"queued", "running", "paused", "finished", "failed", "cancelled", "interrupted"};

std::string utcNow(const char* format) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[64];
    std::strftime(buffer, sizeof buffer, format, &tm);
    return buffer;
}

std::string isoNow() {
    return utcNow("%Y-%m-%dT%H:%M:%SZ");
}

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

// A prepared statement that finalizes itself, with typed binds and column reads.
class Statement {
public:
    Statement(sqlite3_stmt* statement, bool owned = true) : statement_(statement), owned_(owned) {}
    ~Statement() {
        if (owned_)
            sqlite3_finalize(statement_);
        else
            sqlite3_reset(statement_);
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, const std::string& v) {
        sqlite3_bind_text(statement_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind(int i, const char* v) { return bind(i, std::string(v)); }
    Statement& bind(int i, std::int64_t v) {
        sqlite3_bind_int64(statement_, i, v);
        return *this;
    }
    Statement& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Statement& bind(int i, double v) {
        sqlite3_bind_double(statement_, i, v);
        return *this;
    }
    template <typename T>
    Statement& bind(int i, const std::optional<T>& v) {
        if (v) return bind(i, *v);
        sqlite3_bind_null(statement_, i);
        return *this;
    }
    Statement& bindTextOrNull(int i, const std::string& v) {
        if (v.empty())
            sqlite3_bind_null(statement_, i);
        else
            bind(i, v);
        return *this;
    }
    // SQLITE_ROW or SQLITE_DONE; anything else is returned for the caller to report.
    int step() { return sqlite3_step(statement_); }
    // Ready for the next set of binds.
    void reset() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }

    std::string text(int column) const {
        const auto* p = sqlite3_column_text(statement_, column);
        return p ? reinterpret_cast<const char*>(p) : std::string();
    }
    std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
    double real(int column) const { return sqlite3_column_double(statement_, column); }
    bool isNull(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }
    std::optional<double> optionalReal(int column) const {
        if (isNull(column)) return std::nullopt;
        return real(column);
    }
    std::optional<std::int64_t> optionalInteger(int column) const {
        if (isNull(column)) return std::nullopt;
        return integer(column);
    }

private:
    sqlite3_stmt* statement_;
    bool owned_;
};

nlohmann::json optionalJson(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
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

// ---------------------------------------------------------------------------------------------

RunStore::RunStore(std::filesystem::path workspace) : workspace_(std::move(workspace)) {}

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
    throw FileError(databasePath().string(), reason);
}

void RunStore::exec(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        const std::string text = message ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        std::string reason = text;
        const int primary = rc & 0xff;
        if (primary == SQLITE_FULL)
            reason += " (the disk is full)";
        else if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM)
            reason += " (is the workspace writable?)";
        throw FileError(databasePath().string(), reason);
    }
}

sqlite3_stmt* RunStore::prepare(const char* sql) {
    sqlite3_stmt* statement = nullptr;
    const int rc = sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr);
    if (rc != SQLITE_OK) fail("cannot prepare a query", rc);
    return statement;
}

std::unique_ptr<RunStore> RunStore::open(const std::filesystem::path& workspace) {
    std::error_code ec;
    std::filesystem::create_directories(workspace / "runs", ec);
    if (ec) throw FileError(workspace.string(), "cannot create the workspace folder: " + ec.message());
    std::unique_ptr<RunStore> store(new RunStore(workspace));
    const std::string path = store->databasePath().string();
    // NOMUTEX: the RunStore's own mutex serialises access to the connection.
    const int rc = sqlite3_open_v2(path.c_str(), &store->db_,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) store->fail("cannot open the run database", rc);
    sqlite3_extended_result_codes(store->db_, 1);
    sqlite3_busy_timeout(store->db_, 5000);
    store->exec("PRAGMA foreign_keys = ON");
    {
        // journal_mode=WAL returns the mode in force: anything else means WAL is unavailable
        // (e.g. a network file system), which would make readers block the trainer.
        Statement s(store->prepare("PRAGMA journal_mode = WAL"));
        const int step = s.step();
        if (step != SQLITE_ROW) store->fail("cannot enable WAL journaling", step);
        if (s.text(0) != "wal")
            throw FileError(path, "cannot enable WAL journaling (journal mode is " + s.text(0) + ")");
    }
    store->exec("PRAGMA synchronous = NORMAL");
    store->migrate();
    return store;
}

void RunStore::migrate() {
    int version = 0;
    {
        Statement s(prepare("PRAGMA user_version"));
        if (s.step() == SQLITE_ROW) version = static_cast<int>(s.integer(0));
    }
    if (version > kRunStoreSchemaVersion)
        throw FileError(databasePath().string(), "written by a newer SegScope (schema " + std::to_string(version) +
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
        }
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

void RunStore::requireRun(const std::string& runId) {
    Statement s(prepare("SELECT 1 FROM runs WHERE id = ?"));
    s.bind(1, runId);
    if (s.step() != SQLITE_ROW) throw Error("run store: no run with id '" + runId + "'");
}

std::string RunStore::createRun(const NewRun& run) {
    std::lock_guard lock(mutex_);
    static thread_local std::mt19937_64 random{std::random_device{}()};
    for (int attempt = 0; attempt < 8; ++attempt) {
        std::ostringstream suffix;
        suffix << std::hex << std::setw(4) << std::setfill('0') << (random() & 0xffff);
        const std::string id = utcNow("%Y%m%d-%H%M%S") + "-" + slug(run.model) + "-" + suffix.str();
        const std::filesystem::path folder = workspace_ / "runs" / id;
        Statement s(
            prepare("INSERT OR IGNORE INTO runs (id, name, model, dataset, experiment_json, status, device, "
                    "parameters, created_at, folder) VALUES (?,?,?,?,?,?,?,?,?,?)"));
        s.bind(1, id).bind(2, run.name).bind(3, run.model).bind(4, run.dataset).bind(5, run.experimentJson);
        s.bind(6, runStatusName(run.status)).bind(7, run.device).bind(8, run.parameters).bind(9, isoNow());
        s.bind(10, folder.string());
        const int rc = s.step();
        if (rc != SQLITE_DONE) fail("cannot create a run", rc);
        if (sqlite3_changes(db_) == 0) continue;  // id taken in the same second: draw another suffix
        ++ownCommits_;
        std::error_code ec;
        std::filesystem::create_directories(folder, ec);
        if (ec) throw FileError(folder.string(), "cannot create the run folder: " + ec.message());
        if (run.status == RunStatus::Running) updateStatus(id, RunStatus::Running);
        return id;
    }
    throw Error("run store: could not find a free run id");
}

void RunStore::updateStatus(const std::string& runId, RunStatus status, const std::string& message) {
    std::lock_guard lock(mutex_);
    const std::string now = isoNow();
    Statement s(
        prepare("UPDATE runs SET status = ?2, status_message = ?3, "
                "started_at = CASE WHEN ?2 = 'running' AND started_at IS NULL THEN ?4 ELSE started_at END, "
                "ended_at = CASE WHEN ?5 THEN ?4 WHEN ?2 IN ('running','queued','paused') THEN NULL ELSE ended_at END, "
                "pid = CASE WHEN ?2 = 'running' THEN ?6 ELSE pid END, "
                "hostname = CASE WHEN ?2 = 'running' THEN ?7 ELSE hostname END "
                "WHERE id = ?1"));
    s.bind(1, runId).bind(2, runStatusName(status)).bind(3, message).bind(4, now);
    s.bind(5, static_cast<int>(isTerminal(status))).bind(6, static_cast<std::int64_t>(::getpid())).bind(7, hostName());
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot update run " + runId, rc);
    if (sqlite3_changes(db_) == 0) throw Error("run store: no run with id '" + runId + "'");
    ++ownCommits_;
}

void RunStore::updateTotals(const std::string& runId, double seconds, double imagesPerSecond) {
    std::lock_guard lock(mutex_);
    Statement s(prepare("UPDATE runs SET seconds = ?, images_per_second = ? WHERE id = ?"));
    s.bind(1, seconds).bind(2, imagesPerSecond).bind(3, runId);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot update run " + runId, rc);
    if (sqlite3_changes(db_) == 0) throw Error("run store: no run with id '" + runId + "'");
    ++ownCommits_;
}

void RunStore::updateParameters(const std::string& runId, std::int64_t parameters) {
    std::lock_guard lock(mutex_);
    Statement s(prepare("UPDATE runs SET parameters = ? WHERE id = ?"));
    s.bind(1, parameters).bind(2, runId);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot update run " + runId, rc);
    if (sqlite3_changes(db_) == 0) throw Error("run store: no run with id '" + runId + "'");
    ++ownCommits_;
}

void RunStore::appendStep(const std::string& runId, const StepRecord& step) {
    std::lock_guard lock(mutex_);
    // Prepared once: steps are the hot path (one per iteration).
    if (!insertStep_)
        insertStep_ = prepare(
            "INSERT OR REPLACE INTO step_metrics (run_id, step, epoch, loss, lr, images_per_second, "
            "memory_bytes, wall_seconds) VALUES (?,?,?,?,?,?,?,?)");
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
    exec("BEGIN IMMEDIATE");
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
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    ++ownCommits_;
}

void RunStore::addCheckpoint(const std::string& runId, const CheckpointRecord& checkpoint) {
    std::lock_guard lock(mutex_);
    Statement s(prepare("INSERT INTO checkpoints (run_id, epoch, step, path, created_at) VALUES (?,?,?,?,?)"));
    s.bind(1, runId).bind(2, checkpoint.epoch).bind(3, checkpoint.step).bind(4, checkpoint.path.string());
    s.bind(5, checkpoint.createdAt.empty() ? isoNow() : checkpoint.createdAt);
    const int rc = s.step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) throw Error("run store: no run with id '" + runId + "'");
    if (rc != SQLITE_DONE) fail("cannot record a checkpoint", rc);
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
    r.experimentJson = s.text(17);
    r.pid = s.optionalInteger(18);
    r.hostname = s.text(19);
    return r;
}

std::vector<StepRecord> RunStore::steps(const std::string& runId, std::int64_t afterStep) {
    std::lock_guard lock(mutex_);
    Statement s(
        prepare("SELECT step, epoch, loss, lr, images_per_second, memory_bytes, wall_seconds FROM step_metrics "
                "WHERE run_id = ? AND step > ? ORDER BY step"));
    s.bind(1, runId).bind(2, afterStep);
    std::vector<StepRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
        out.push_back({s.integer(0), static_cast<int>(s.integer(1)), s.real(2), s.real(3), s.real(4),
                       s.optionalInteger(5), s.real(6)});
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
        out.push_back({static_cast<int>(s.integer(0)), s.integer(1), s.text(2), s.text(3)});
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
    exec("BEGIN IMMEDIATE");
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
        exec("COMMIT");
    } catch (...) {
        exec("ROLLBACK");
        throw;
    }
    ++ownCommits_;
}

void RunStore::deleteRun(const std::string& runId, bool removeFolder) {
    std::lock_guard lock(mutex_);
    std::filesystem::path folder;
    {
        Statement s(prepare("SELECT folder FROM runs WHERE id = ?"));
        s.bind(1, runId);
        if (s.step() != SQLITE_ROW) throw Error("run store: no run with id '" + runId + "'");
        folder = s.text(0);
    }
    Statement s(prepare("DELETE FROM runs WHERE id = ?"));
    s.bind(1, runId);
    const int rc = s.step();
    if (rc != SQLITE_DONE) fail("cannot delete run " + runId, rc);
    ++ownCommits_;
    // Only folders inside this workspace's runs/ are removed, whatever the database says.
    if (removeFolder && !folder.empty() && folder.parent_path() == workspace_ / "runs") {
        std::error_code ec;
        std::filesystem::remove_all(folder, ec);
    }
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

std::string runsToJson(const std::vector<RunSummary>& runs, int indent) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : runs) {
        list.push_back({{"id", r.id},
                        {"name", r.name},
                        {"model", r.model},
                        {"dataset", r.dataset},
                        {"status", runStatusName(r.status)},
                        {"status_message", r.statusMessage},
                        {"device", r.device},
                        {"parameters", r.parameters},
                        {"created_at", r.createdAt},
                        {"started_at", r.startedAt.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.startedAt)},
                        {"ended_at", r.endedAt.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.endedAt)},
                        {"best_miou", optionalJson(r.bestMiou)},
                        {"best_epoch", r.bestEpoch ? nlohmann::json(*r.bestEpoch) : nlohmann::json(nullptr)},
                        {"final_miou", optionalJson(r.finalMiou)},
                        {"seconds", optionalJson(r.seconds)},
                        {"images_per_second", optionalJson(r.imagesPerSecond)},
                        {"folder", r.folder.string()}});
    }
    return nlohmann::json{{"runs", list}}.dump(indent);
}

std::string runsToText(const std::vector<RunSummary>& runs) {
    if (runs.empty()) return "no runs\n";
    std::size_t idWidth = 2;
    for (const auto& r : runs) idWidth = std::max(idWidth, r.id.size());
    std::ostringstream out;
    out << std::left << std::setw(static_cast<int>(idWidth) + 2) << "id" << std::setw(12) << "status" << std::right
        << std::setw(10) << "best mIoU" << std::setw(11) << "final mIoU" << std::setw(12) << "parameters"
        << "  name\n";
    for (const auto& r : runs)
        out << std::left << std::setw(static_cast<int>(idWidth) + 2) << r.id << std::setw(12) << runStatusName(r.status)
            << std::right << std::setw(10) << formatPercent(r.bestMiou) << std::setw(11) << formatPercent(r.finalMiou)
            << std::setw(12) << r.parameters << "  " << r.name << "\n";
    return out.str();
}

}  // namespace segscope::core
