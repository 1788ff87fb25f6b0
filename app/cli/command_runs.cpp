// segscope-cli runs: the runs of a workspace.
#include "commands.h"
#include "run_report.h"

#include "segscope/core/runs/run_store.h"

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

struct RunsOptions {
    std::optional<std::string> workspace;
    bool json = false;
};

int listRuns(const RunsOptions& args) {
    const std::filesystem::path workspace = args.workspace.value_or(core::defaultWorkspace().string());
    std::vector<core::RunSummary> runs;
    // Listing must not create a workspace as a side effect: no database means no runs. It only
    // reads, so a read-only workspace (a copy on a USB stick, a shared folder) can be listed.
    if (core::isWorkspace(workspace)) {
        const auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
        runs = store->listRuns();
        // Runs whose process died show as interrupted; marking them needs write access, which a
        // listing does not insist on.
        try {
            if (core::RunStore::open(workspace)->markInterrupted() > 0) runs = store->listRuns();
        } catch (const core::Error&) {
        }
    }
    if (args.json)
        std::cout << runsToJson(runs) << std::endl;
    else
        std::cout << runsToText(runs);
    return 0;
}

}  // namespace

Command addRunsCommand(CLI::App& cli) {
    const auto options = std::make_shared<RunsOptions>();
    CLI::App* app = cli.add_subcommand("runs", "the runs of a workspace");
    app->footer("Only reads: a missing workspace lists no runs (none is created), a read-only one can be listed.");
    app->add_option("--workspace", options->workspace, "the workspace folder")->type_name("DIR");
    app->add_flag("--json", options->json, "the runs as JSON");
    return {app, [options] { return listRuns(*options); }, false};
}

}  // namespace segscope::cli
