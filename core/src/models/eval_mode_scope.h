#pragma once
// Private to core/src: puts a model in eval mode and restores its previous mode on every exit.
#include "segscope/core/models/model.h"

namespace segscope::core {

class EvalModeScope {
public:
    explicit EvalModeScope(SegmentationModel& model) : model_(model), wasTraining_(model.is_training()) {
        model_.eval();
    }
    ~EvalModeScope() { model_.train(wasTraining_); }
    EvalModeScope(const EvalModeScope&) = delete;
    EvalModeScope& operator=(const EvalModeScope&) = delete;

private:
    SegmentationModel& model_;
    bool wasTraining_;
};

}  // namespace segscope::core
