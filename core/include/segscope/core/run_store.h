#pragma once
// The run store: every training run of a workspace, its metrics and checkpoints, in SQLite.
//
// A workspace is a folder holding segscope.db and runs/<run-id>/ (one folder per run for
// checkpoints and artefacts). The database uses WAL journaling, so other connections (the GUI,
// `segscope-cli runs`, another process) read while a trainer writes; writers wait up to 5 s for
// each other (busy_timeout). Every append is its own transaction and committed when the call
// returns: a crashed process loses at most the write in flight. (synchronous=NORMAL: durable
// against process crashes; a power cut may lose the last commits, never corrupt the file.)
//
// Thread-safety: a RunStore serialises its own calls with an internal mutex, so one instance may
// be shared by threads; a reader that must not wait behind a writer's statements opens its own
// RunStore (its own connection) on the same workspace.
//
// Errors: methods throw FileError (naming the database or folder) when the workspace cannot be
// created, opened, written (read-only, disk full) or was written by a newer SegScope, and Error
// for an unknown run id where one is required.
#include "segscope/core/error.h"
#include "segscope/core/metrics.h"

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

struct StepRecord {
    std::int64_t step = 0;
    int epoch = 0;
    double loss = 0;
    double learningRate = 0;
    double imagesPerSecond = 0;
    std::optional<std::int64_t> memoryBytes;
    double wallSeconds = 0;
};

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

class RunStore {
public:
    // Opens (creating the folder and database, and migrating the schema, as needed).
    static std::unique_ptr<RunStore> open(const std::filesystem::path& workspace);
    ~RunStore();
    RunStore(const RunStore&) = delete;
    RunStore& operator=(const RunStore&) = delete;

    const std::filesystem::path& workspace() const { return workspace_; }
    std::filesystem::path databasePath() const { return workspace_ / "segscope.db"; }

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

    // Newest first.
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

private:
    explicit RunStore(std::filesystem::path workspace);
    void exec(const char* sql);
    void migrate();
    [[noreturn]] void fail(const std::string& what, int code);
    sqlite3_stmt* prepare(const char* sql);
    void requireRun(const std::string& runId);

    std::filesystem::path workspace_;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* insertStep_ = nullptr;
    std::recursive_mutex mutex_;
    std::int64_t ownCommits_ = 0;
};

// {"runs": [{"id", "name", "model", "dataset", "status", "parameters", "best_miou",
// "final_miou", "seconds", "images_per_second", ...}]} with null for unset values.
std::string runsToJson(const std::vector<RunSummary>& runs, int indent = 2);
// A table for terminals.
std::string runsToText(const std::vector<RunSummary>& runs);

}  // namespace segscope::core
