#pragma once
// Private to core/src/runs: what the run store (run_store.cpp) and its journal and repair
// (run_journal.cpp) share. The journal is runs/<id>/journal.jsonl, one JSON object a line.
#include "segscope/core/runs/run_store.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace segscope::core::runs_detail {

inline constexpr const char* kJournalName = "journal.jsonl";
inline constexpr const char* kLegacyDatabaseName = "segscope.db";

// The current UTC time in strftime `format`.
std::string utcNow(const char* format);
// workspace/segscope.db, where SegScope kept the database before .segscope/.
std::filesystem::path legacyDatabasePath(const std::filesystem::path& workspace);
bool pathExists(const std::filesystem::path& path);
// One line appended to a journal (fsynced when `sync`). A failed write is cut back off, so the
// file never ends in half a line written by this process. Throws FileError naming the file.
void appendLine(const std::filesystem::path& file, const std::string& line, bool sync);
// Text for the journal, losslessly: UTF-8 as a JSON string, anything else (file names in another
// encoding) as {"hex": "..."} of its bytes.
nlohmann::json journalText(const std::string& text);
// One journal line: compact JSON, invalid UTF-8 replaced.
std::string dumpLine(const nlohmann::json& value);
// The number, or null.
nlohmann::json optionalJson(const std::optional<double>& v);

// Adds every run folder the database does not list (replaying its journal, or its
// experiment.json and checkpoint names for an older run). Returns how many were added; what could
// not be recovered goes into report.problems.
int addUnlistedRuns(RunStore& store, WorkspaceReport& report);
// True when workspace/runs holds a folder with a journal or an experiment.json.
bool hasRunFolders(const std::filesystem::path& workspace);

}  // namespace segscope::core::runs_detail
