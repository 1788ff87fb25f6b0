#pragma once
// segscope-cli runs: the list of a workspace's runs as JSON and as a table for terminals.
#include "segscope/core/runs/run_store.h"

#include <string>
#include <vector>

namespace segscope::cli {

// {"runs": [{"id", "name", "model", "dataset", "status", "parameters", "best_miou",
// "final_miou", "seconds", "images_per_second", ...}]} with null for unset values. Names and
// folders that are not UTF-8 are replaced and counted (core::dumpJson()).
std::string runsToJson(const std::vector<core::RunSummary>& runs, int indent = 2);
// A table for terminals: id, status, best and final mIoU, parameters, name; "no runs" when empty.
std::string runsToText(const std::vector<core::RunSummary>& runs);

}  // namespace segscope::cli
