#include "segscope/core/models/pretrained.h"

#include "segscope/core/error.h"
#include "segscope/core/models/registry.h"

namespace segscope::core {

TensorMap mapPretrained(const std::string& modelId, const TensorMap& checkpoint) {
    const ModelEntry* entry = findModel(modelId);
    if (!entry) throw Error("unknown model '" + modelId + "'");
    const std::string& family = entry->info.family;
    const bool resnetBased = family == "unet" || family == "fpn" || family == "deeplabv3plus" || family == "fcn";
    if (resnetBased && checkpoint.count("layer1.0.conv1.weight") && checkpoint.count("conv1.weight"))
        return mapPretrainedResNet(modelId, checkpoint);
    if (family == "segformer") {
        TensorMap mapped;
        for (const auto& [key, value] : checkpoint)
            if (key.rfind("classifier.", 0) != 0) mapped.emplace(key, value);
        return mapped;
    }
    return checkpoint;
}

} // namespace segscope::core
