// segscope-cli workspace check|repair: the run database against the run folders' journals.
#include "commands.h"

#include "segscope/core/runs/run_store.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

namespace {

nlohmann::json reportJson(const core::WorkspaceReport& report) {
    return {{"migrated", report.migrated},
            {"rebuilt", report.rebuilt},
            {"moved_aside",
             report.movedAside.empty() ? nlohmann::json(nullptr) : nlohmann::json(report.movedAside.string())},
            {"reason", report.reason},
            {"runs_recovered", report.runsRecovered},
            {"runs_without_journal", report.runsWithoutJournal},
            {"problems", report.problems}};
}

int check(const fs::path& workspace, bool asJson) {
    if (!core::isWorkspace(workspace)) throw core::FileError(workspace.string(), "not a SegScope workspace");
    std::string integrity;
    std::size_t runs = 0;
    try {
        const auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
        integrity = store->integrityCheck();
        runs = store->listRuns().size();
    } catch (const core::DatabaseError& e) {
        integrity = e.reason();
    }
    const bool healthy = integrity == "ok";
    if (asJson) {
        std::cout << nlohmann::json{{"workspace", workspace.string()},
                                    {"database", core::workspaceDatabasePath(workspace).string()},
                                    {"healthy", healthy},
                                    {"integrity", integrity},
                                    {"runs", runs}}
                         .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                  << std::endl;
    } else if (healthy) {
        std::cout << "workspace " << workspace.string() << ": database ok, " << runs << " runs\n";
    } else {
        std::cout << "workspace " << workspace.string() << ": the run database is unusable: " << integrity
                  << "\nrun `segscope-cli workspace repair --workspace " << workspace.string()
                  << "` to rebuild it from the run folders\n";
    }
    return healthy ? 0 : 1;
}

}  // namespace

int commandWorkspace(const Arguments& args) {
    args.allowOnly({"workspace", "json", "rebuild"});
    if (args.positionals().size() != 1) throw UsageError("workspace needs one action: check or repair");
    const std::string action = args.positionals().front();
    const fs::path workspace = args.value("workspace").value_or(core::defaultWorkspace().string());
    if (action == "check") return check(workspace, args.has("json"));
    if (action != "repair") throw UsageError("unknown workspace action '" + action + "' (check or repair)");
    if (!fs::is_directory(workspace)) throw core::FileError(workspace.string(), "no such workspace folder");
    const core::WorkspaceReport report = core::repairWorkspace(workspace, args.has("rebuild"));
    const auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
    const auto runs = store->listRuns();
    if (args.has("json")) {
        nlohmann::json out = reportJson(report);
        out["runs"] = runs.size();
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    } else {
        std::cout << (report.nothingToReport()
                          ? "workspace " + workspace.string() + ": database ok, nothing to repair\n"
                          : report.summary())
                  << runs.size() << " run" << (runs.size() == 1 ? "" : "s") << " in the workspace\n";
    }
    return 0;
}

}  // namespace segscope::cli
