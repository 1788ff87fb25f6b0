#pragma once
// The run store: every training run of a workspace, its metrics and checkpoints, in SQLite.
//
// A workspace is a folder holding runs/<run-id>/ (one folder per run for checkpoints and
// artefacts) and the hidden folder .segscope/ with the database (.segscope/segscope.db). Nothing
// but SQLite ever opens the database files: POSIX advisory locks belong to the process, and a
// close() of any other descriptor of the file (a file dialog's MIME sniffing, a watcher) would
// drop SQLite's locks and let another process delete the WAL under this one. The hidden folder
// keeps the files out of file dialogs and folder views. A workspace of an older SegScope
// (segscope.db at the top) is moved there on the first read-write open.
//
// The database is an index that can be rebuilt: every write is also appended to the run's
// journal, runs/<id>/journal.jsonl (one JSON object a line, fsynced at each evaluation,
// checkpoint and status change). A corrupt or missing database is rebuilt from the journals by
// repairWorkspace(), losing nothing beyond the step in flight.
//
// Paths are stored relative to the workspace (run folders) and to the run folder (checkpoints),
// so a workspace can be moved or copied: a copy reads and writes its own folders.
//
// The database uses WAL journaling, so other connections (the GUI, `segscope-cli runs`,
// another process) read while a trainer writes; writers wait up to 5 s for each other
// (busy_timeout). Every append is its own transaction and committed when the call returns: a
// crashed process loses at most the write in flight. (synchronous=NORMAL: durable against
// process crashes; a power cut may lose the last commits, never corrupt the file.) WAL needs
// shared memory between the processes, so it is not for network file systems.
//
// Thread-safety: a RunStore serialises its own calls with an internal mutex, so one instance may
// be shared by threads; a reader that must not wait behind a writer's statements opens its own
// RunStore (its own connection) on the same workspace.
//
// Errors: methods throw FileError (naming the database or folder) when the workspace cannot be
// created, opened, written (read-only, disk full) or was written by a newer SegScope;
// DatabaseError when the database is corrupt, empty while runs exist, or not SegScope's
// (repairWorkspace() is the remedy); Error for an unknown run id where one is required.
#include "segscope/core/analysis/metrics.h"
#include "segscope/core/error.h"
#include "segscope/core/training/step_event.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace segscope::core {

inline constexpr int kRunStoreSchemaVersion = 1;
// PRAGMA application_id of SegScope's databases ("SgSc"); a database with another one is foreign.
inline constexpr std::int32_t kRunStoreApplicationId = 0x53675363;

// The database cannot be used as it is: corrupt, not SegScope's, or empty while the workspace
// holds runs. what() names the file and says what to do (repairWorkspace, `workspace repair`).
class DatabaseError : public FileError {
public:
    enum class Kind { Corrupt, Foreign, EmptyWithRuns };
    DatabaseError(Kind kind, std::string path, std::string reason)
        : FileError(std::move(path), std::move(reason)), kind_(kind) {}
    Kind kind() const noexcept { return kind_; }

private:
    Kind kind_;
};

enum class StoreAccess {
    ReadWrite,  // creates the workspace, migrates, writes
    ReadOnly,   // never writes a byte: works on a read-only workspace or medium
};

enum class RunStatus { Queued, Running, Paused, Finished, Failed, Cancelled, Interrupted };
const char* runStatusName(RunStatus status);  // "queued", "running", ...
std::optional<RunStatus> parseRunStatus(const std::string& text);
// Finished, failed, cancelled and interrupted runs have ended.
bool isTerminal(RunStatus status);

// What a new run starts with.
struct NewRun {
    std::string name;
    std::string model;    // model id
    std::string dataset;  // a short description, e.g. "voc:/data/VOC2012"
    std::string experimentJson;
    std::string device;
    std::int64_t parameters = 0;
    RunStatus status = RunStatus::Queued;
};

struct RunSummary {
    std::string id;
    std::string name;
    std::string model;
    std::string dataset;
    RunStatus status = RunStatus::Queued;
    std::string statusMessage;
    std::string device;
    std::int64_t parameters = 0;
    std::string createdAt;  // ISO-8601 UTC, "2026-11-22T13:45:01Z"
    std::string startedAt;  // empty until running
    std::string endedAt;    // empty until terminal
    std::optional<double> bestMiou;
    std::optional<int> bestEpoch;
    std::optional<double> finalMiou;
    std::optional<double> seconds;
    std::optional<double> imagesPerSecond;
    std::filesystem::path folder;  // workspace/runs/<id>
};

struct RunRecord : RunSummary {
    std::string experimentJson;
    std::optional<std::int64_t> pid;  // process that set it running
    std::string hostname;
};

// One training step: the trainer's StepEvent, stored as it is reported (every field but
// stepInEpoch, which steps() returns as 0).
using StepRecord = StepEvent;

// One evaluation. `epoch` is its key within the run: the epoch number for per-epoch validation
// (for per-iteration validation the trainer numbers evaluations 1, 2, ...). Appending the same
// key again replaces the earlier rows (a resumed run re-validating an epoch).
struct EpochRecord {
    int epoch = 0;
    std::int64_t step = 0;
    std::optional<double> aAcc;
    std::optional<double> mIoU;
    std::optional<double> mAcc;
    std::optional<double> mDice;
    std::optional<double> valLoss;
    double wallSeconds = 0;
};

struct ClassRecord {
    int classIndex = 0;
    std::string className;
    std::optional<double> iou, acc, dice, precision, recall, pixelShare;
};

struct ImageRecord {
    std::string imageId;
    std::optional<double> mIoU;
    std::string perClassIouJson;  // e.g. "[0.9,null,0.4]" (perClassIouJson() in metrics.h)
};

struct CheckpointRecord {
    int epoch = 0;
    std::int64_t step = 0;
    std::filesystem::path path;
    std::string createdAt;
};

// Rows of an evaluation from computed metrics.
EpochRecord epochRecord(const SegmentationMetrics& metrics, int epoch, std::int64_t step, std::optional<double> valLoss,
                        double wallSeconds);
std::vector<ClassRecord> classRecords(const SegmentationMetrics& metrics);

// $SEGSCOPE_WORKSPACE, else $XDG_DATA_HOME/SegScope, else ~/.local/share/SegScope.
std::filesystem::path defaultWorkspace();

// workspace/.segscope/segscope.db. File dialogs must never be pointed at its folder.
std::filesystem::path workspaceDatabasePath(const std::filesystem::path& workspace);
// True when `workspace` holds a SegScope database (in .segscope/ or, from an older version, at
// the top). Creates nothing.
bool isWorkspace(const std::filesystem::path& workspace);

// What opening or repairing a workspace did beyond the ordinary, for a person to read.
struct WorkspaceReport {
    bool migrated = false;              // segscope.db moved from the top into .segscope/
    bool rebuilt = false;               // the database was built anew from the run folders
    std::filesystem::path movedAside;   // where an unusable database was moved (empty: none)
    std::string reason;                 // why it was unusable
    int runsRecovered = 0;              // runs rebuilt from their journals
    int runsWithoutJournal = 0;         // older run folders rebuilt from experiment.json and checkpoints only
    std::vector<std::string> problems;  // per run: lines skipped, folders unreadable, ...
    bool nothingToReport() const { return !migrated && !rebuilt && problems.empty(); }
    // A few lines: what happened, where the old file went, what was recovered.
    std::string summary() const;
};

// Checks the workspace's database and repairs it: a corrupt, foreign or empty database is moved
// aside (to .segscope/segscope.db.broken-<UTC time>) and a new one is built from the run
// folders' journals; a healthy one gains the runs whose folders it does not list (a run folder
// copied in from another workspace). With `rebuild`, a healthy database is rebuilt as well.
// Throws FileError when the workspace cannot be written.
WorkspaceReport repairWorkspace(const std::filesystem::path& workspace, bool rebuild = false);

class RunStore {
public:
    // Opens the workspace's database. ReadWrite creates the folders and database, moves an older
    // workspace's database into .segscope/ and migrates the schema, as needed; a database that
    // is missing while run folders exist is rebuilt from their journals (openReport() says so).
    // ReadOnly opens an existing database without writing anything (FileError when there is
    // none). Both throw DatabaseError for a corrupt, foreign or empty-with-runs database.
    static std::unique_ptr<RunStore> open(const std::filesystem::path& workspace,
                                          StoreAccess access = StoreAccess::ReadWrite);
    ~RunStore();
    RunStore(const RunStore&) = delete;
    RunStore& operator=(const RunStore&) = delete;

    const std::filesystem::path& workspace() const { return workspace_; }
    const std::filesystem::path& databasePath() const { return databasePath_; }
    bool readOnly() const { return access_ == StoreAccess::ReadOnly; }
    // What open() did beyond the ordinary (migration, rebuild).
    const WorkspaceReport& openReport() const { return openReport_; }

    // Creates the run and its folder; returns the id, e.g. "20261122-134501-segformer-b0-3f2a"
    // (UTC time, model, random suffix: ids sort by creation time).
    std::string createRun(const NewRun& run);
    // Sets the status and message. Running stamps started_at (once) and records this process's
    // pid and host name; a terminal status stamps ended_at.
    void updateStatus(const std::string& runId, RunStatus status, const std::string& message = {});
    // Final figures shown in run lists.
    void updateTotals(const std::string& runId, double seconds, double imagesPerSecond);
    void updateParameters(const std::string& runId, std::int64_t parameters);

    // One training step, committed before returning.
    void appendStep(const std::string& runId, const StepRecord& step);
    // One evaluation with its per-class and per-image rows, in one transaction; also updates the
    // run's best_miou/best_epoch and final_miou.
    void appendEpoch(const std::string& runId, const EpochRecord& epoch, const std::vector<ClassRecord>& classes,
                     const std::vector<ImageRecord>& images);
    void addCheckpoint(const std::string& runId, const CheckpointRecord& checkpoint);
    // Forgets the checkpoint rows of `path` (a pruned checkpoint's state file). Unknown paths are
    // ignored.
    void removeCheckpoint(const std::string& runId, const std::filesystem::path& path);

    // Newest first. Run folders and checkpoint paths are absolute, inside this workspace.
    std::vector<RunSummary> listRuns();
    std::optional<RunRecord> run(const std::string& runId);
    std::vector<StepRecord> steps(const std::string& runId, std::int64_t afterStep = -1);
    std::vector<EpochRecord> epochs(const std::string& runId);
    std::vector<ClassRecord> classMetrics(const std::string& runId, int epoch);
    // Sorted by mIoU ascending (worst first; images without a defined mIoU last).
    std::vector<ImageRecord> imageMetrics(const std::string& runId, int epoch);
    std::vector<CheckpointRecord> checkpoints(const std::string& runId);
    std::optional<CheckpointRecord> latestCheckpoint(const std::string& runId);
    // Deletes the step rows after `step` and evaluations after it (a resumed run redoes them).
    void truncateAfter(const std::string& runId, std::int64_t step);
    // Removes the run's rows and, with removeFolder, its folder.
    void deleteRun(const std::string& runId, bool removeFolder = true);

    // A number that changes whenever the database changed, through this connection or any
    // other (PRAGMA data_version plus this connection's own commits). Cheap: poll it from a
    // timer and reload only when it moved.
    std::int64_t changeCounter();

    // Marks running or paused runs whose process is gone (same host, pid no longer alive) as
    // interrupted. Returns how many were marked. Runs of other hosts are left alone.
    int markInterrupted();

    // PRAGMA integrity_check: "ok", or the first problems it lists.
    std::string integrityCheck();

private:
    friend WorkspaceReport repairWorkspace(const std::filesystem::path&, bool);
    friend class JournalReplay;
    RunStore(std::filesystem::path workspace, StoreAccess access);
    void connect(const std::filesystem::path& path);
    void checkIdentity();
    bool listTablesEmpty();
    void exec(const char* sql);
    void migrate();
    std::filesystem::path runFolder(const std::string& runId) const;
    // Appends one journal entry of the run (no-op while replaying a journal).
    void journal(const std::string& runId, const std::string& type, nlohmann::json entry, bool sync);
    void applyStatus(const std::string& runId, RunStatus status, const std::string& message, const std::string& at,
                     std::int64_t pid, const std::string& host);
    void insertRun(const std::string& id, const NewRun& run, const std::string& createdAt);
    void writeJournalFromDatabase(const std::string& runId);
    std::filesystem::path storedCheckpointPath(const std::string& runId, const std::filesystem::path& path) const;
    std::filesystem::path resolvedCheckpointPath(const std::string& runId, const std::string& stored) const;
    [[noreturn]] void fail(const std::string& what, int code);
    sqlite3_stmt* prepare(const char* sql);
    void requireRun(const std::string& runId);

    std::filesystem::path workspace_;
    std::filesystem::path databasePath_;
    StoreAccess access_;
    WorkspaceReport openReport_;
    bool replaying_ = false;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* insertStep_ = nullptr;
    std::recursive_mutex mutex_;
    std::int64_t ownCommits_ = 0;
};

}  // namespace segscope::core
