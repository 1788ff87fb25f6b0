#include "segscope/core/training/training_parts.h"

#include "segscope/core/models/model.h"

#include <ATen/ATen.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_fused_adamw.h>
#include <torch/cuda.h>
#include <torch/nn/functional.h>
#include <torch/optim.h>

#include <cmath>

namespace segscope::core {
namespace F = torch::nn::functional;

SegmentationLoss::SegmentationLoss(LossType type, int classes, std::optional<std::vector<double>> classWeights,
                                   double diceWeight, int ignoreIndex)
    : type_(type),
      classes_(classes),
      classWeights_(std::move(classWeights)),
      diceWeight_(diceWeight),
      ignoreIndex_(ignoreIndex) {
    if (classWeights_ && int(classWeights_->size()) != classes_)
        throw Error("training.class_weights: has " + std::to_string(classWeights_->size()) + " values for " +
                    std::to_string(classes_) + " classes");
}

torch::Tensor SegmentationLoss::operator()(const torch::Tensor& rawLogits, const torch::Tensor& labels) const {
    torch::Tensor logits = rawLogits;
    if (logits.size(-2) != labels.size(-2) || logits.size(-1) != labels.size(-1))
        logits = F::interpolate(logits, F::InterpolateFuncOptions()
                                            .size(std::vector<std::int64_t>{labels.size(-2), labels.size(-1)})
                                            .mode(torch::kBilinear)
                                            .align_corners(false));
    // The loss is computed in float32 even under autocast.
    logits = logits.to(torch::kFloat32);
    const torch::Tensor valid = labels != ignoreIndex_;
    auto options = F::CrossEntropyFuncOptions().ignore_index(ignoreIndex_).reduction(torch::kNone);
    torch::Tensor weights;
    if (classWeights_) {
        weights = torch::tensor(*classWeights_, torch::TensorOptions().dtype(torch::kFloat32)).to(logits.device());
        options = options.weight(weights);
    }
    const torch::Tensor perPixel = F::cross_entropy(logits, labels, options);
    // Mean over valid pixels (weighted as PyTorch does), without reading the count on the host;
    // an all-ignored batch gives 0 rather than 0/0.
    torch::Tensor denominator = classWeights_ ? weights.index({labels.masked_fill(~valid, 0)}).mul(valid).sum()
                                              : valid.sum().to(torch::kFloat32);
    torch::Tensor loss = perPixel.sum() / denominator.clamp_min(1e-12);
    if (type_ == LossType::CrossEntropyDice) {
        const torch::Tensor probabilities = torch::softmax(logits, 1);
        const torch::Tensor mask = valid.unsqueeze(1).to(probabilities.dtype());
        const torch::Tensor oneHot =
            F::one_hot(labels.masked_fill(~valid, 0), classes_).permute({0, 3, 1, 2}).to(probabilities.dtype()) * mask;
        const torch::Tensor masked = probabilities * mask;
        const std::vector<std::int64_t> dims = {0, 2, 3};
        const torch::Tensor intersection = (masked * oneHot).sum(dims);
        const torch::Tensor cardinality = masked.sum(dims) + oneHot.sum(dims);
        const double smooth = 1.0;
        const torch::Tensor dice = (2.0 * intersection + smooth) / (cardinality + smooth);
        loss = loss + diceWeight_ * (1.0 - dice.mean());
    }
    return loss;
}

LearningRateSchedule::LearningRateSchedule(const ExperimentSchedule& schedule, double baseLearningRate,
                                           std::int64_t totalIterations, std::int64_t iterationsPerEpoch)
    : schedule_(schedule),
      base_(baseLearningRate),
      total_(std::max<std::int64_t>(1, totalIterations)),
      perEpoch_(std::max<std::int64_t>(1, iterationsPerEpoch)) {}

double LearningRateSchedule::learningRate(std::int64_t iteration) const {
    const double progress = std::min(1.0, double(iteration) / double(total_));
    const double minimum = schedule_.minLearningRate;
    double rate = base_;
    switch (schedule_.type) {
        case ScheduleType::Constant:
            break;
        case ScheduleType::Step: {
            const std::int64_t t = schedule_.per == ScheduleUnit::Epoch ? iteration / perEpoch_ : iteration;
            rate = base_ * std::pow(schedule_.gamma, double(t / std::max(1, schedule_.stepSize)));
            break;
        }
        case ScheduleType::Poly:
            rate = (base_ - minimum) * std::pow(1.0 - progress, schedule_.power) + minimum;
            break;
        case ScheduleType::Cosine:
            rate = minimum + (base_ - minimum) * 0.5 * (1.0 + std::cos(M_PI * progress));
            break;
    }
    if (schedule_.warmupIterations > 0 && iteration < schedule_.warmupIterations) {
        const double k = (1.0 - double(iteration) / schedule_.warmupIterations) * (1.0 - schedule_.warmupRatio);
        rate *= 1.0 - k;
    }
    return rate;
}

GradScaler::GradScaler(bool enabled, double initialScale, double growthFactor, double backoffFactor,
                       std::int64_t growthInterval)
    : enabled_(enabled),
      initialScale_(initialScale),
      growthFactor_(growthFactor),
      backoffFactor_(backoffFactor),
      growthInterval_(growthInterval) {}

void GradScaler::ensureInitialised(const torch::Device& device) {
    if (scale_.defined() && scale_.device() == device) return;
    const auto options = torch::TensorOptions().device(device);
    if (scale_.defined()) {
        scale_ = scale_.to(device);
        growthTracker_ = growthTracker_.to(device);
    } else {
        scale_ = torch::full({1}, initialScale_, options.dtype(torch::kFloat32));
        growthTracker_ = torch::zeros({1}, options.dtype(torch::kInt32));
    }
    foundInf_ = torch::zeros({1}, options.dtype(torch::kFloat32));
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) {
    if (!enabled_) return loss;
    ensureInitialised(loss.device());
    return loss * scale_.to(loss.scalar_type());
}

void GradScaler::unscale(torch::optim::Optimizer& optimizer) {
    if (!enabled_ || unscaled_) return;
    std::vector<torch::Tensor> grads;
    for (auto& group : optimizer.param_groups())
        for (auto& p : group.params())
            if (p.grad().defined()) grads.push_back(p.grad());
    if (grads.empty()) return;
    ensureInitialised(grads.front().device());
    foundInf_.zero_();
    const torch::Tensor inverse = scale_.reciprocal();
    at::_amp_foreach_non_finite_check_and_unscale_(grads, foundInf_, inverse);
    unscaled_ = true;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
    if (!enabled_) {
        optimizer.step();
        return true;
    }
    unscale(optimizer);
    const bool finite = !foundInf_.defined() || foundInf_.item<float>() == 0.0f;
    if (finite) optimizer.step();
    return finite;
}

void GradScaler::update() {
    if (!enabled_ || !scale_.defined()) return;
    at::_amp_update_scale_(scale_, growthTracker_, foundInf_, growthFactor_, backoffFactor_, growthInterval_);
    unscaled_ = false;
}

double GradScaler::currentScale() const {
    return scale_.defined() ? scale_.item<double>() : initialScale_;
}

std::vector<torch::Tensor> GradScaler::state() const {
    if (!scale_.defined()) return {};
    return {scale_.cpu(), growthTracker_.cpu()};
}

void GradScaler::loadState(const std::vector<torch::Tensor>& state) {
    if (state.size() != 2) return;
    scale_ = state[0].clone();
    growthTracker_ = state[1].clone();
    foundInf_ = torch::zeros({1}, torch::kFloat32);
}

torch::Tensor clipGradientNorm(const std::vector<torch::Tensor>& parameters, double maxNorm) {
    std::vector<torch::Tensor> norms;
    for (const auto& p : parameters)
        if (p.grad().defined()) norms.push_back(p.grad().detach().to(torch::kFloat32).norm());
    if (norms.empty()) return torch::zeros({});
    const torch::Tensor total = torch::stack(norms).norm();
    const torch::Tensor coefficient = (maxNorm / (total + 1e-6)).clamp_max(1.0);
    for (const auto& p : parameters)
        if (p.grad().defined()) p.grad().detach().mul_(coefficient.to(p.grad().dtype()));
    return total;
}

OptimizerSetup makeOptimizer(SegmentationModel& model, const ExperimentOptimizer& config) {
    std::vector<torch::Tensor> encoder, head;
    for (const auto& p : model.named_parameters(true)) {
        if (!p.value().requires_grad()) continue;
        (model.isHeadParameter(p.key()) ? head : encoder).push_back(p.value());
    }
    OptimizerSetup setup;
    std::vector<std::pair<std::vector<torch::Tensor>, double>> groups;
    if (!encoder.empty()) groups.emplace_back(encoder, 1.0);
    if (!head.empty()) groups.emplace_back(head, config.headLearningRateMultiplier);
    if (groups.empty()) throw Error("the model has no trainable parameters");
    const double lr = config.learningRate;
    std::vector<torch::optim::OptimizerParamGroup> paramGroups;
    switch (config.type) {
        case OptimizerType::Sgd: {
            auto options = torch::optim::SGDOptions(lr)
                               .momentum(config.momentum)
                               .nesterov(config.nesterov)
                               .weight_decay(config.weightDecay);
            for (auto& [params, multiplier] : groups) {
                auto groupOptions = std::make_unique<torch::optim::SGDOptions>(options);
                groupOptions->lr(lr * multiplier);
                paramGroups.emplace_back(params, std::move(groupOptions));
                setup.groupMultipliers.push_back(multiplier);
            }
            setup.optimizer = std::make_unique<torch::optim::SGD>(paramGroups, options);
            break;
        }
        case OptimizerType::Adam: {
            auto options =
                torch::optim::AdamOptions(lr).betas({config.beta1, config.beta2}).weight_decay(config.weightDecay);
            for (auto& [params, multiplier] : groups) {
                auto groupOptions = std::make_unique<torch::optim::AdamOptions>(options);
                groupOptions->lr(lr * multiplier);
                paramGroups.emplace_back(params, std::move(groupOptions));
                setup.groupMultipliers.push_back(multiplier);
            }
            setup.optimizer = std::make_unique<torch::optim::Adam>(paramGroups, options);
            break;
        }
        case OptimizerType::AdamW: {
            auto options =
                torch::optim::AdamWOptions(lr).betas({config.beta1, config.beta2}).weight_decay(config.weightDecay);
            for (auto& [params, multiplier] : groups) {
                auto groupOptions = std::make_unique<torch::optim::AdamWOptions>(options);
                groupOptions->lr(lr * multiplier);
                paramGroups.emplace_back(params, std::move(groupOptions));
                setup.groupMultipliers.push_back(multiplier);
            }
            setup.optimizer = std::make_unique<FusedAdamW>(paramGroups, options);
            break;
        }
    }
    return setup;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
    torch::NoGradGuard noGrad;
    torch::Tensor loss;
    if (closure) {
        at::AutoGradMode enableGrad(true);
        loss = closure();
    }
    for (auto& group : param_groups()) {
        const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
        std::vector<torch::Tensor> params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, steps;
        for (auto& p : group.params()) {
            if (!p.grad().defined()) continue;
            if (p.grad().is_sparse()) throw Error("FusedAdamW does not support sparse gradients");
            if (!params.empty() && (p.device() != params.front().device() || p.dtype() != params.front().dtype()))
                throw Error("FusedAdamW: the parameters of a group must share one device and dtype");
            void* key = p.unsafeGetTensorImpl();
            auto found = state_.find(key);
            if (found == state_.end()) {
                auto state = std::make_unique<torch::optim::AdamWParamState>();
                state->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
                state->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
                if (options.amsgrad()) state->max_exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
                found = state_.emplace(key, std::move(state)).first;
            }
            auto& state = static_cast<torch::optim::AdamWParamState&>(*found->second);
            auto& counter = stepTensors_[key];
            if (!counter.defined())
                counter = torch::full({}, double(state.step()),
                                      torch::TensorOptions().dtype(torch::kFloat32).device(p.device()));
            state.step(state.step() + 1);
            params.push_back(p);
            grads.push_back(p.grad());
            expAvgs.push_back(state.exp_avg());
            expAvgSqs.push_back(state.exp_avg_sq());
            if (options.amsgrad()) maxExpAvgSqs.push_back(state.max_exp_avg_sq());
            steps.push_back(counter);
        }
        if (params.empty()) continue;
        // The kernel reads the step already incremented, as torch.optim.AdamW(fused=True) does.
        at::_foreach_add_(steps, 1.0);
        at::_fused_adamw_(params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, steps, options.lr(),
                          std::get<0>(options.betas()), std::get<1>(options.betas()), options.weight_decay(),
                          options.eps(), options.amsgrad(), /*maximize=*/false);
    }
    return loss;
}

void FusedAdamW::load(torch::serialize::InputArchive& archive) {
    torch::optim::AdamW::load(archive);
    stepTensors_.clear();
}

void setLearningRate(torch::optim::Optimizer& optimizer, const std::vector<double>& groupMultipliers, double baseRate) {
    auto& groups = optimizer.param_groups();
    for (std::size_t i = 0; i < groups.size() && i < groupMultipliers.size(); ++i)
        groups[i].options().set_lr(baseRate * groupMultipliers[i]);
}

}  // namespace segscope::core
