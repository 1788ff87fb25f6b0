#pragma once
// The model zoo: every architecture SegScope offers, by id.
#include "segscope/core/models/model.h"

#include <functional>
#include <string>
#include <vector>

namespace segscope::core {

struct ModelInfo {
    std::string id;         // e.g. "segformer-b0", "unet-resnet50", "segmenter-mask-vit-tiny-p16"
    std::string family;     // "unet", "fpn", "deeplabv3plus", "fcn", "segformer", "segmenter", "setr"
    std::string reference;  // the Python implementation whose names and outputs it matches
    std::vector<std::string> stages;
};

using ModelFactory = std::function<std::shared_ptr<SegmentationModel>(int numClasses)>;

struct ModelEntry {
    ModelInfo info;
    ModelFactory create;
};

// All models, in a stable display order.
const std::vector<ModelEntry>& modelRegistry();
const ModelEntry* findModel(const std::string& id);

// Builds model `id` with `numClasses` outputs and fresh (reference-style) initialisation.
// Throws Error for an unknown id (the message lists close matches) or numClasses < 1.
std::shared_ptr<SegmentationModel> createModel(const std::string& id, int numClasses);

// Each family adds its ids; called once by modelRegistry().
void registerResNetModels(std::vector<ModelEntry>& registry);
void registerSegFormerModels(std::vector<ModelEntry>& registry);
void registerVitModels(std::vector<ModelEntry>& registry);

}  // namespace segscope::core
