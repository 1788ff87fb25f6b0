#include "runs/run_journal.h"

#include "runs/sqlite.h"

#include "segscope/core/runtime.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

namespace segscope::core {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace runs_detail;

namespace {

std::string errnoText(int error) {
    switch (error) {
        case ENOSPC:
        case EDQUOT:
            return "disk full";
        case EROFS:
            return "read-only file system";
        case EACCES:
        case EPERM:
            return "permission denied";
        default:
            return std::strerror(error);
    }
}

bool isUtf8(const std::string& text) {
    std::size_t i = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    while (i < text.size()) {
        const unsigned char c = p[i];
        int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
        if (extra < 0 || (extra == 1 && c < 0xc2) || i + extra >= text.size()) return false;
        for (int k = 1; k <= extra; ++k)
            if (i + k >= text.size() || (p[i + k] & 0xc0) != 0x80) return false;
        if (extra == 2 && ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] >= 0xa0))) return false;
        if (extra == 3 && ((c == 0xf0 && p[i + 1] < 0x90) || c > 0xf4 || (c == 0xf4 && p[i + 1] >= 0x90))) return false;
        i += extra + 1;
    }
    return true;
}

std::optional<double> optionalNumber(const json& value, const char* key) {
    const auto it = value.find(key);
    if (it == value.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

double numberOr(const json& value, const char* key, double fallback) {
    return optionalNumber(value, key).value_or(fallback);
}

std::string textOr(const json& value, const char* key, const std::string& fallback = {}) {
    const auto it = value.find(key);
    if (it == value.end()) return fallback;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("hex") && (*it)["hex"].is_string()) {
        const std::string hex = (*it)["hex"].get<std::string>();
        std::string out;
        for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
            out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
        return out;
    }
    return fallback;
}

// "epoch-0003-step-00000042.state.pt" -> (3, 42)
std::optional<std::pair<int, std::int64_t>> checkpointName(const std::string& name) {
    int epoch = 0;
    long long step = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "epoch-%d-step-%lld.state.pt%n", &epoch, &step, &used) == 2 &&
        used == static_cast<int>(name.size()))
        return std::make_pair(epoch, static_cast<std::int64_t>(step));
    return std::nullopt;
}

}  // namespace

namespace runs_detail {

std::string utcNow(const char* format) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[64];
    std::strftime(buffer, sizeof buffer, format, &tm);
    return buffer;
}

fs::path legacyDatabasePath(const fs::path& workspace) {
    return workspace / kLegacyDatabaseName;
}

bool pathExists(const fs::path& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

// One line appended to a journal. A failed write is cut back off, so the file never ends in half
// a line written by this process.
void appendLine(const fs::path& file, const std::string& line, bool sync) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw FileError(file.string(), "cannot open the run journal: " + errnoText(errno));
    struct stat before {};
    const bool sized = ::fstat(fd, &before) == 0;
    const std::string data = line + '\n';
    std::size_t written = 0;
    int error = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            error = errno;
            break;
        }
        written += static_cast<std::size_t>(n);
    }
    if (!error && sync && ::fsync(fd) != 0) error = errno;
    if (error && sized) (void)::ftruncate(fd, before.st_size);
    ::close(fd);
    if (error) {
        std::string reason = "cannot append to the run journal: " + errnoText(error);
        if (error == ENOSPC || error == EDQUOT)
            reason += " (" + std::to_string(data.size()) + " bytes needed; free some space and resume the run)";
        throw FileError(file.string(), reason);
    }
}

// Text for the journal, losslessly: UTF-8 as a JSON string, anything else (file names in another
// encoding) as {"hex": "..."} of its bytes.
json journalText(const std::string& text) {
    if (isUtf8(text)) return text;
    static const char* digits = "0123456789abcdef";
    std::string hex;
    for (const unsigned char c : text) {
        hex += digits[c >> 4];
        hex += digits[c & 0xf];
    }
    return json{{"hex", hex}};
}

std::string dumpLine(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

nlohmann::json optionalJson(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace runs_detail

// ---------------------------------------------------------------------------------------------
// Journal replay: a run folder's journal back into the database.

class JournalReplay {
public:
    JournalReplay(RunStore& store, WorkspaceReport& report) : store_(store), report_(report) {}

    // Adds the run of `folder` (runs/<id>); false when the folder holds nothing to recover.
    bool add(const fs::path& folder) {
        const std::string id = folder.filename().string();
        const fs::path journal = folder / kJournalName;
        if (pathExists(journal)) return replay(id, journal);
        if (pathExists(folder / "experiment.json")) return legacy(id, folder);
        return false;
    }

private:
    bool replay(const std::string& id, const fs::path& journal) {
        std::ifstream in(journal, std::ios::binary);
        if (!in) {
            report_.problems.push_back(journal.string() + ": cannot be read; the run was not recovered");
            return false;
        }
        std::vector<json> entries;
        std::string line;
        std::size_t number = 0;
        int broken = 0;
        while (std::getline(in, line)) {
            ++number;
            if (line.empty()) continue;
            try {
                entries.push_back(json::parse(line));
            } catch (const json::exception&) {
                ++broken;
            }
        }
        if (broken > 0)
            report_.problems.push_back(journal.string() + ": " + std::to_string(broken) + " of " +
                                       std::to_string(number) +
                                       " lines unreadable and skipped (a write cut off by a crash)");
        if (entries.empty() || textOr(entries.front(), "type") != "run") {
            report_.problems.push_back(journal.string() + ": does not start with the run's entry; not recovered");
            return false;
        }
        inOneTransaction([&] {
            for (const auto& e : entries) apply(id, e);
        });
        ++report_.runsRecovered;
        return true;
    }

    // Runs `body` with journaling off, in one transaction (a run's rows appear whole or not at all).
    template <typename Body>
    void inOneTransaction(const Body& body) {
        RunStore& s = store_;
        std::lock_guard lock(s.mutex_);
        s.replaying_ = true;
        s.exec("BEGIN IMMEDIATE");
        try {
            body();
            s.exec("COMMIT");
        } catch (...) {
            sqlite3_exec(s.db_, "ROLLBACK", nullptr, nullptr, nullptr);
            s.replaying_ = false;
            throw;
        }
        s.replaying_ = false;
    }

    void apply(const std::string& id, const json& e) {
        RunStore& s = store_;
        const std::string type = textOr(e, "type");
        if (type == "run") {
            NewRun run;
            run.name = textOr(e, "name");
            run.model = textOr(e, "model");
            run.dataset = textOr(e, "dataset");
            run.experimentJson = textOr(e, "experiment_json");
            run.device = textOr(e, "device");
            run.parameters = static_cast<std::int64_t>(numberOr(e, "parameters", 0));
            run.status = parseRunStatus(textOr(e, "status")).value_or(RunStatus::Queued);
            s.insertRun(id, run, textOr(e, "created_at", isoNow()));
        } else if (type == "status") {
            s.applyStatus(id, parseRunStatus(textOr(e, "status")).value_or(RunStatus::Interrupted),
                          textOr(e, "message"), textOr(e, "at", isoNow()),
                          static_cast<std::int64_t>(numberOr(e, "pid", 0)), textOr(e, "host"));
        } else if (type == "parameters") {
            s.updateParameters(id, static_cast<std::int64_t>(numberOr(e, "parameters", 0)));
        } else if (type == "totals") {
            s.updateTotals(id, numberOr(e, "seconds", 0), numberOr(e, "images_per_second", 0));
        } else if (type == "step") {
            StepRecord r;
            r.step = static_cast<std::int64_t>(numberOr(e, "step", 0));
            r.epoch = static_cast<int>(numberOr(e, "epoch", 0));
            r.loss = numberOr(e, "loss", std::nan(""));
            r.learningRate = numberOr(e, "lr", 0);
            r.imagesPerSecond = numberOr(e, "images_per_second", 0);
            if (const auto m = optionalNumber(e, "memory_bytes")) r.memoryBytes = static_cast<std::int64_t>(*m);
            r.wallSeconds = numberOr(e, "wall_seconds", 0);
            s.appendStep(id, r);
        } else if (type == "evaluation") {
            EpochRecord r;
            r.epoch = static_cast<int>(numberOr(e, "epoch", 0));
            r.step = static_cast<std::int64_t>(numberOr(e, "step", 0));
            r.aAcc = optionalNumber(e, "aacc");
            r.mIoU = optionalNumber(e, "miou");
            r.mAcc = optionalNumber(e, "macc");
            r.mDice = optionalNumber(e, "mdice");
            r.valLoss = optionalNumber(e, "val_loss");
            r.wallSeconds = numberOr(e, "wall_seconds", 0);
            std::vector<ClassRecord> classes;
            for (const auto& c : e.value("classes", json::array()))
                classes.push_back({static_cast<int>(numberOr(c, "index", 0)), textOr(c, "name"),
                                   optionalNumber(c, "iou"), optionalNumber(c, "acc"), optionalNumber(c, "dice"),
                                   optionalNumber(c, "precision"), optionalNumber(c, "recall"),
                                   optionalNumber(c, "pixel_share")});
            std::vector<ImageRecord> images;
            for (const auto& i : e.value("images", json::array()))
                images.push_back({textOr(i, "id"), optionalNumber(i, "miou"), textOr(i, "per_class_iou", "[]")});
            s.appendEpoch(id, r, classes, images);
        } else if (type == "checkpoint") {
            s.addCheckpoint(
                id, {static_cast<int>(numberOr(e, "epoch", 0)), static_cast<std::int64_t>(numberOr(e, "step", 0)),
                     textOr(e, "path"), textOr(e, "created_at")});
        } else if (type == "checkpoint_removed") {
            s.removeCheckpoint(id, textOr(e, "path"));
        } else if (type == "truncate") {
            s.truncateAfter(id, static_cast<std::int64_t>(numberOr(e, "step", 0)));
        }
        // Unknown types come from a newer SegScope: skipped, the rest still applies.
    }

    // A run folder of a SegScope that kept no journal: what experiment.json and the checkpoint
    // files tell.
    bool legacy(const std::string& id, const fs::path& folder) {
        json experiment;
        try {
            std::ifstream in(folder / "experiment.json", std::ios::binary);
            experiment = json::parse(in);
        } catch (const json::exception&) {
            report_.problems.push_back((folder / "experiment.json").string() +
                                       ": unreadable; the run was not recovered");
            return false;
        }
        NewRun run;
        if (experiment.is_object() && experiment.contains("model") && experiment["model"].is_object())
            run.model = textOr(experiment["model"], "id");
        run.name = experiment.is_object() ? textOr(experiment, "name", run.model) : run.model;
        run.experimentJson = experiment.dump(2, ' ', false, json::error_handler_t::replace);
        run.status = RunStatus::Interrupted;
        // Ids start with the creation time, "20261122-134501-...".
        std::string created = isoNow();
        if (id.size() >= 15 && id[8] == '-')
            created = id.substr(0, 4) + "-" + id.substr(4, 2) + "-" + id.substr(6, 2) + "T" + id.substr(9, 2) + ":" +
                      id.substr(11, 2) + ":" + id.substr(13, 2) + "Z";
        RunStore& s = store_;
        inOneTransaction([&] {
            s.insertRun(id, run, created);
            s.applyStatus(id, RunStatus::Interrupted,
                          "recovered from its folder without a journal: metrics were not recovered", isoNow(), 0, {});
            std::error_code ec;
            std::vector<std::pair<std::pair<int, std::int64_t>, std::string>> found;
            for (const auto& entry : fs::directory_iterator(folder / "checkpoints", ec))
                if (const auto parsed = checkpointName(entry.path().filename().string()))
                    found.push_back({*parsed, "checkpoints/" + entry.path().filename().string()});
            std::sort(found.begin(), found.end());
            for (const auto& [key, path] : found) s.addCheckpoint(id, {key.first, key.second, path, {}});
        });
        ++report_.runsWithoutJournal;
        report_.problems.push_back("run " + id +
                                   ": no journal (recorded by an older SegScope); its metrics were not "
                                   "recovered, its checkpoints were");
        return true;
    }

    RunStore& store_;
    WorkspaceReport& report_;
};

namespace runs_detail {

int addUnlistedRuns(RunStore& store, WorkspaceReport& report) {
    std::set<std::string> listed;
    for (const auto& r : store.listRuns()) listed.insert(r.id);
    std::error_code ec;
    std::vector<fs::path> folders;
    for (const auto& entry : fs::directory_iterator(store.workspace() / "runs", ec))
        if (entry.is_directory(ec) && !listed.count(entry.path().filename().string())) folders.push_back(entry.path());
    if (ec && ec != std::errc::no_such_file_or_directory)
        report.problems.push_back((store.workspace() / "runs").string() + ": cannot be listed: " + ec.message());
    std::sort(folders.begin(), folders.end());
    JournalReplay replay(store, report);
    int added = 0;
    for (const auto& folder : folders) {
        try {
            if (replay.add(folder)) ++added;
        } catch (const Error& e) {
            report.problems.push_back(folder.string() + ": not recovered: " + e.what());
        }
    }
    return added;
}

bool hasRunFolders(const fs::path& workspace) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(workspace / "runs", ec))
        if (entry.is_directory(ec) &&
            (pathExists(entry.path() / kJournalName) || pathExists(entry.path() / "experiment.json")))
            return true;
    return false;
}

}  // namespace runs_detail

void RunStore::journal(const std::string& runId, const std::string& type, json entry, bool sync) {
    if (replaying_) return;
    if (access_ == StoreAccess::ReadOnly)
        throw FileError(databasePath_.string(), "cannot record " + type + ": the workspace was opened read-only");
    // A run whose folder was deleted by hand keeps its rows; there is nothing left to rebuild it
    // from, so there is no journal to keep either.
    std::error_code ec;
    if (!fs::is_directory(runFolder(runId), ec)) return;
    entry["type"] = type;
    appendLine(runFolder(runId) / kJournalName, dumpLine(entry), sync);
}

// The journal of a run recorded before journals existed, written from its rows.
void RunStore::writeJournalFromDatabase(const std::string& runId) {
    const auto record = run(runId);
    if (!record) return;
    journal(runId, "run",
            {{"version", 1},
             {"id", runId},
             {"name", journalText(record->name)},
             {"model", record->model},
             {"dataset", journalText(record->dataset)},
             {"experiment_json", journalText(record->experimentJson)},
             {"device", record->device},
             {"parameters", record->parameters},
             {"status", "queued"},
             {"created_at", record->createdAt}},
            false);
    if (!record->startedAt.empty())
        journal(
            runId, "status",
            {{"status", "running"}, {"message", ""}, {"at", record->startedAt}, {"pid", 0}, {"host", record->hostname}},
            false);
    for (const auto& s : steps(runId)) {
        json entry{{"step", s.step},
                   {"epoch", s.epoch},
                   {"loss", s.loss},
                   {"lr", s.learningRate},
                   {"images_per_second", s.imagesPerSecond},
                   {"wall_seconds", s.wallSeconds}};
        if (s.memoryBytes) entry["memory_bytes"] = *s.memoryBytes;
        journal(runId, "step", std::move(entry), false);
    }
    for (const auto& e : epochs(runId)) {
        json classList = json::array();
        for (const auto& c : classMetrics(runId, e.epoch))
            classList.push_back({{"index", c.classIndex},
                                 {"name", journalText(c.className)},
                                 {"iou", optionalJson(c.iou)},
                                 {"acc", optionalJson(c.acc)},
                                 {"dice", optionalJson(c.dice)},
                                 {"precision", optionalJson(c.precision)},
                                 {"recall", optionalJson(c.recall)},
                                 {"pixel_share", optionalJson(c.pixelShare)}});
        json imageList = json::array();
        for (const auto& i : imageMetrics(runId, e.epoch))
            imageList.push_back(
                {{"id", journalText(i.imageId)}, {"miou", optionalJson(i.mIoU)}, {"per_class_iou", i.perClassIouJson}});
        journal(runId, "evaluation",
                {{"epoch", e.epoch},
                 {"step", e.step},
                 {"aacc", optionalJson(e.aAcc)},
                 {"miou", optionalJson(e.mIoU)},
                 {"macc", optionalJson(e.mAcc)},
                 {"mdice", optionalJson(e.mDice)},
                 {"val_loss", optionalJson(e.valLoss)},
                 {"wall_seconds", e.wallSeconds},
                 {"classes", std::move(classList)},
                 {"images", std::move(imageList)}},
                false);
    }
    for (const auto& c : checkpoints(runId))
        journal(runId, "checkpoint",
                {{"epoch", c.epoch},
                 {"step", c.step},
                 {"path", journalText(storedCheckpointPath(runId, c.path).string())},
                 {"created_at", c.createdAt}},
                false);
    if (record->seconds)
        journal(runId, "totals",
                {{"seconds", *record->seconds}, {"images_per_second", record->imagesPerSecond.value_or(0)}}, false);
    journal(runId, "status",
            {{"status", runStatusName(record->status)},
             {"message", journalText(record->statusMessage)},
             {"at", record->endedAt.empty() ? isoNow() : record->endedAt},
             {"pid", record->pid.value_or(0)},
             {"host", record->hostname}},
            true);
}

// ---------------------------------------------------------------------------------------------

WorkspaceReport repairWorkspace(const fs::path& workspace, bool rebuild) {
    WorkspaceReport report;
    const fs::path current = workspaceDatabasePath(workspace);
    std::string unusable;
    if (isWorkspace(workspace) && !rebuild) {
        try {
            auto store = RunStore::open(workspace);
            report = store->openReport();
            const std::string integrity = store->integrityCheck();
            if (integrity == "ok") {
                const int added = addUnlistedRuns(*store, report);
                if (added > 0) {
                    report.rebuilt = true;
                    report.problems.insert(report.problems.begin(), std::to_string(added) + " run folder" +
                                                                        (added == 1 ? "" : "s") +
                                                                        " the database did not list added");
                }
                return report;
            }
            unusable = "integrity check: " + integrity;
        } catch (const DatabaseError& e) {
            unusable = e.reason();
        }
    } else if (rebuild) {
        unusable = "a rebuild was asked for";
    }
    WorkspaceReport fresh;
    fresh.migrated = report.migrated;
    std::error_code ec;
    for (const fs::path& database : {current, legacyDatabasePath(workspace)}) {
        if (!fs::exists(database, ec)) continue;
        const fs::path aside = current.parent_path() / ("segscope.db.broken-" + utcNow("%Y%m%d-%H%M%S"));
        fs::create_directories(aside.parent_path(), ec);
        for (const char* suffix : {"", "-wal", "-shm"}) {
            const fs::path from = database.string() + suffix;
            if (!fs::exists(from, ec)) continue;
            fs::rename(from, aside.string() + suffix, ec);
            if (ec) throw FileError(from.string(), "cannot move the unusable database aside: " + ec.message());
        }
        fresh.movedAside = aside;
        fresh.reason = unusable.empty() ? "unusable" : unusable;
    }
    auto store = RunStore::open(workspace);
    const WorkspaceReport& opened = store->openReport();
    fresh.rebuilt = true;
    fresh.runsRecovered = opened.runsRecovered;
    fresh.runsWithoutJournal = opened.runsWithoutJournal;
    fresh.problems = opened.problems;
    if (!opened.rebuilt) addUnlistedRuns(*store, fresh);
    if (fresh.reason.empty()) fresh.reason = opened.reason;
    return fresh;
}

}  // namespace segscope::core
