#pragma once
// A recorded run restored for use: the value runs/run_loader.h produces and analysis/ consumes.
// It holds no reference to the run store, so analysis code can take a run without depending on
// the store (scripts/check_layers.py allows analysis/ to include this one header of runs/).
#include "segscope/core/data/classes.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/model.h"

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

// A run's model restored from one of its checkpoints, ready for inference. A plain value: copies
// share the model. inspectRun() fills everything but model, device and classInfo.
struct LoadedRun {
    std::string runId;
    std::filesystem::path folder;              // the run's folder (workspace/runs/<id>)
    Experiment experiment;                     // as recorded with the run
    std::shared_ptr<SegmentationModel> model;  // in eval mode, on `device`; null from inspectRun()
    torch::Device device{torch::kCPU};
    int classes = 0;  // the model's outputs
    // Names and colours: the dataset's class table when the dataset is readable, else the names
    // recorded with the run's metrics and VOC colours; "classN" beyond the dataset's classes.
    std::vector<ClassInfo> classInfo;
    std::filesystem::path checkpoint;  // the weights file (.safetensors)
    std::optional<int> epoch;          // of a checkpoint recorded in the run store
    std::optional<std::int64_t> step;
};

}  // namespace segscope::core
