// segscope-cli runs: the runs of a workspace.
#include "commands.h"

#include "segscope/core/runs/run_store.h"

#include <filesystem>
#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;

int commandRuns(const Arguments& args) {
    args.allowOnly({"workspace", "json"});
    const std::filesystem::path workspace = args.value("workspace").value_or(core::defaultWorkspace().string());
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
    if (args.has("json"))
        std::cout << core::runsToJson(runs) << std::endl;
    else
        std::cout << core::runsToText(runs);
    return 0;
}

}  // namespace segscope::cli
