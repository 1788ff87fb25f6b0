#include "run_report.h"

#include "segscope/core/analysis/metrics.h"
#include "segscope/core/safe_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <optional>
#include <sstream>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

nlohmann::json numberOrNull(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

std::string runsToJson(const std::vector<core::RunSummary>& runs, int indent) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : runs) {
        list.push_back({{"id", r.id},
                        {"name", r.name},
                        {"model", r.model},
                        {"dataset", r.dataset},
                        {"status", core::runStatusName(r.status)},
                        {"status_message", r.statusMessage},
                        {"device", r.device},
                        {"parameters", r.parameters},
                        {"created_at", r.createdAt},
                        {"started_at", r.startedAt.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.startedAt)},
                        {"ended_at", r.endedAt.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.endedAt)},
                        {"best_miou", numberOrNull(r.bestMiou)},
                        {"best_epoch", r.bestEpoch ? nlohmann::json(*r.bestEpoch) : nlohmann::json(nullptr)},
                        {"final_miou", numberOrNull(r.finalMiou)},
                        {"seconds", numberOrNull(r.seconds)},
                        {"images_per_second", numberOrNull(r.imagesPerSecond)},
                        {"folder", r.folder.string()}});
    }
    // Run names and folders may hold bytes that are not UTF-8: replaced, and counted in the JSON.
    return core::dumpJson(nlohmann::json{{"runs", list}}, indent);
}

std::string runsToText(const std::vector<core::RunSummary>& runs) {
    if (runs.empty()) return "no runs\n";
    std::size_t idWidth = 2;
    for (const auto& r : runs) idWidth = std::max(idWidth, r.id.size());
    std::ostringstream out;
    out << std::left << std::setw(static_cast<int>(idWidth) + 2) << "id" << std::setw(12) << "status" << std::right
        << std::setw(10) << "best mIoU" << std::setw(11) << "final mIoU" << std::setw(12) << "parameters"
        << "  name\n";
    for (const auto& r : runs)
        out << std::left << std::setw(static_cast<int>(idWidth) + 2) << r.id << std::setw(12)
            << core::runStatusName(r.status) << std::right << std::setw(10) << core::formatPercent(r.bestMiou)
            << std::setw(11) << core::formatPercent(r.finalMiou) << std::setw(12) << r.parameters << "  " << r.name
            << "\n";
    return out.str();
}

}  // namespace segscope::cli
