#include "segscope/core/models/registry.h"

#include "segscope/core/error.h"

#include <algorithm>

namespace segscope::core {

std::int64_t countParameters(const torch::nn::Module& module) {
    std::int64_t total = 0;
    for (const auto& p : module.parameters(true)) total += p.numel();
    return total;
}

const std::vector<ModelEntry>& modelRegistry() {
    static const std::vector<ModelEntry> registry = [] {
        std::vector<ModelEntry> entries;
        registerResNetModels(entries);
        registerSegFormerModels(entries);
        registerVitModels(entries);
        return entries;
    }();
    return registry;
}

const ModelEntry* findModel(const std::string& id) {
    for (const auto& entry : modelRegistry())
        if (entry.info.id == id) return &entry;
    return nullptr;
}

std::shared_ptr<SegmentationModel> createModel(const std::string& id, int numClasses) {
    if (numClasses < 1) throw Error("number of classes must be at least 1, got " + std::to_string(numClasses));
    const ModelEntry* entry = findModel(id);
    if (!entry) {
        std::string close;
        const std::string family = id.substr(0, id.find('-'));
        for (const auto& e : modelRegistry())
            if (e.info.id.rfind(family, 0) == 0) close += (close.empty() ? "" : ", ") + e.info.id;
        throw Error(
            "unknown model '" + id + "'" +
            (close.empty() ? std::string(" (segscope-cli models lists them)") : "; did you mean one of: " + close));
    }
    return entry->create(numClasses);
}

}  // namespace segscope::core
