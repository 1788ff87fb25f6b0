#pragma once
// One training step as the trainer reports it (TrainingObserver::onStep), records it in the run
// store (RunStore::appendStep, whose StepRecord is this type) and the GUI plots it: one type from
// the trainer to the curves, so no field is copied by hand on the way.
#include <cstdint>
#include <optional>

namespace segscope::core {

struct StepEvent {
    std::int64_t step = 0;  // optimiser steps done, counting this one (1-based)
    int epoch = 0;          // 0-based
    std::int64_t stepInEpoch = 0;
    double loss = 0.0;
    double learningRate = 0.0;  // base group's rate used for this step
    double imagesPerSecond = 0.0;
    std::optional<std::int64_t> memoryBytes;  // device memory in use (CPU: resident set)
    double wallSeconds = 0.0;                 // since the run first started, across resumes
};

}  // namespace segscope::core
