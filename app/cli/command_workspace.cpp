// segscope-cli workspace check|repair: the run database against the run folders' journals.
#include "commands.h"

#include "segscope/core/runs/run_store.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

struct WorkspaceOptions {
    std::vector<std::string> actions;
    std::optional<std::string> workspace;
    bool json = false, rebuild = false;
};

int workspaceCommand(const WorkspaceOptions& args) {
    if (args.actions.size() != 1) throw UsageError("workspace needs one action: check or repair");
    const std::string action = args.actions.front();
    const fs::path workspace = args.workspace.value_or(core::defaultWorkspace().string());
    if (action == "check") return check(workspace, args.json);
    if (action != "repair") throw UsageError("unknown workspace action '" + action + "' (check or repair)");
    if (!fs::is_directory(workspace)) throw core::FileError(workspace.string(), "no such workspace folder");
    const core::WorkspaceReport report = core::repairWorkspace(workspace, args.rebuild);
    const auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
    const auto runs = store->listRuns();
    if (args.json) {
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

}  // namespace

Command addWorkspaceCommand(CLI::App& cli) {
    const auto options = std::make_shared<WorkspaceOptions>();
    CLI::App* app = cli.add_subcommand("workspace", "check the run database, or rebuild it from the run folders");
    app->footer(
        "check: exits 0 when the database (.segscope/segscope.db) is healthy, 1 when it is not.\n"
        "repair: rebuilds a corrupt, foreign or missing database from the run folders' journals (the "
        "unusable file is moved aside, never deleted).");
    app->add_option("ACTION", options->actions, "check or repair (one of them)")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->type_name("");
    app->add_option("--workspace", options->workspace, "the workspace folder")->type_name("DIR");
    app->add_flag("--rebuild", options->rebuild, "repair: rebuild even a healthy database");
    app->add_flag("--json", options->json, "the report as JSON");
    return {app, [options] { return workspaceCommand(*options); }, false};
}

}  // namespace segscope::cli
