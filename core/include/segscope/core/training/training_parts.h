#pragma once
// The pieces of a training step, each usable and testable alone: the loss, the learning-rate
// schedule and the gradient scaler for fp16 autocast (device selection is in runtime.h).
#include "segscope/core/experiment.h"

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/archive.h>

#include <torch/optim/optimizer.h>
#include <torch/types.h>
#include <unordered_map>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

// Cross-entropy with an ignore index and optional class weights, optionally plus a soft Dice
// term over the non-ignored pixels (weight diceWeight). Logits (B, K, h, w) are upsampled
// bilinearly to the label size (B, H, W) first when the sizes differ. A batch whose labels are
// all ignored gives a zero loss that still depends on the logits.
class SegmentationLoss {
public:
    SegmentationLoss(LossType type, int classes, std::optional<std::vector<double>> classWeights, double diceWeight,
                     int ignoreIndex = 255);
    torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& labels) const;

private:
    LossType type_;
    int classes_;
    std::optional<std::vector<double>> classWeights_;
    double diceWeight_;
    int ignoreIndex_;
};

// Learning-rate factor schedule (multiplies each group's base rate), mmsegmentation-style:
//   constant  1
//   step      gamma^floor(t / stepSize), t in epochs or iterations
//   poly      (1 - i / total)^power, scaled between base and min_lr
//   cosine    min + (base - min) (1 + cos(pi i / total)) / 2
// with an optional linear warmup over the first warmupIterations:
//   factor *= 1 - (1 - i / warmup) (1 - warmupRatio).
class LearningRateSchedule {
public:
    LearningRateSchedule(const ExperimentSchedule& schedule, double baseLearningRate, std::int64_t totalIterations,
                         std::int64_t iterationsPerEpoch);
    // Learning rate at iteration `iteration` (0-based, counted in optimiser steps).
    double learningRate(std::int64_t iteration) const;

private:
    ExperimentSchedule schedule_;
    double base_;
    std::int64_t total_;
    std::int64_t perEpoch_;
};

// Dynamic loss scaling for fp16 autocast on CUDA, built from ATen's _amp_* operations as
// PyTorch's GradScaler is. Disabled scalers pass everything through.
class GradScaler {
public:
    explicit GradScaler(bool enabled, double initialScale = 65536.0, double growthFactor = 2.0,
                        double backoffFactor = 0.5, std::int64_t growthInterval = 2000);
    bool enabled() const { return enabled_; }
    torch::Tensor scale(const torch::Tensor& loss);
    // Unscales gradients in place (once per step, before clipping); records whether any was
    // not finite.
    void unscale(torch::optim::Optimizer& optimizer);
    // Steps unless a gradient was not finite; returns whether it stepped. This reads one flag
    // from the device, as PyTorch's GradScaler.step does.
    bool step(torch::optim::Optimizer& optimizer);
    void update();
    double currentScale() const;
    // State for checkpoints: {scale, growth_tracker}.
    std::vector<torch::Tensor> state() const;
    void loadState(const std::vector<torch::Tensor>& state);

private:
    void ensureInitialised(const torch::Device& device);
    bool enabled_;
    double initialScale_, growthFactor_, backoffFactor_;
    std::int64_t growthInterval_;
    torch::Tensor scale_, growthTracker_, foundInf_;
    bool unscaled_ = false;
};

// Global L2 norm clipping over all parameters with gradients; returns the norm before clipping
// (a tensor: no host sync).
torch::Tensor clipGradientNorm(const std::vector<torch::Tensor>& parameters, double maxNorm);

// torch::optim::AdamW with its per-parameter update replaced by one fused kernel per parameter
// group (at::_fused_adamw_, CPU and CUDA): the same update rule (decoupled weight decay, bias
// correction, amsgrad) and the same state (AdamWParamState, so save()/load() and checkpoints are
// unchanged), without LibTorch's ~8 small tensor ops per parameter per step. Parameters of one
// group must share a device and dtype (Error otherwise); sparse gradients are an Error.
class FusedAdamW : public torch::optim::AdamW {
public:
    using torch::optim::AdamW::AdamW;
    torch::Tensor step(LossClosure closure = nullptr) override;
    void load(torch::serialize::InputArchive& archive) override;

private:
    // Float step counters per parameter, as the fused kernel takes them; rebuilt from the
    // integer steps of the state after load().
    std::unordered_map<void*, torch::Tensor> stepTensors_;
};

// Builds the optimiser with two parameter groups: encoder parameters at the base rate and head
// parameters (model.isHeadParameter) at base * headLearningRateMultiplier. Group order is
// (encoder, head); empty groups are dropped.
struct OptimizerSetup {
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    std::vector<double> groupMultipliers;  // per parameter group
};
class SegmentationModel;
OptimizerSetup makeOptimizer(SegmentationModel& model, const ExperimentOptimizer& config);
void setLearningRate(torch::optim::Optimizer& optimizer, const std::vector<double>& groupMultipliers, double baseRate);

}  // namespace segscope::core
