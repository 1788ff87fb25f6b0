// segscope-cli runs: the runs of a workspace.
#include "commands.h"

#include "segscope/core/run_store.h"

#include <filesystem>
#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;

int commandRuns(const Arguments& args) {
    args.allowOnly({"workspace", "json"});
    const std::filesystem::path workspace = args.value("workspace").value_or(core::defaultWorkspace().string());
    std::vector<core::RunSummary> runs;
    // Listing must not create a workspace as a side effect: no database means no runs.
    if (std::filesystem::exists(workspace / "segscope.db")) {
        const auto store = core::RunStore::open(workspace);
        try {
            store->markInterrupted();
        } catch (const core::Error&) {
            // A read-only workspace can still be listed; stale "running" rows stay as they are.
        }
        runs = store->listRuns();
    }
    if (args.has("json"))
        std::cout << core::runsToJson(runs) << std::endl;
    else
        std::cout << core::runsToText(runs);
    return 0;
}

}  // namespace segscope::cli
