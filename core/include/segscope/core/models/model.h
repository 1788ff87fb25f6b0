#pragma once
// The interface every segmentation model implements.
//
// Models are torch::nn::Module trees whose registered names reproduce the reference Python
// implementation's state_dict keys exactly (torchvision, segmentation_models_pytorch, HF
// transformers, timm), so named_parameters()/named_buffers() of a model and the reference's
// state_dict() have the same keys and shapes.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace segscope::core {

// Feature maps by stage name: "stage1".."stage4" (encoder) and "decoder" (logits at input size).
using StageMap = std::map<std::string, torch::Tensor>;

class SegmentationModel : public torch::nn::Module {
public:
    ~SegmentationModel() override = default;

    // Logits (B, K, H, W) at the input's H and W, for any H and W.
    torch::Tensor forward(const torch::Tensor& input) { return forwardStages(input, nullptr); }

    // Same as forward(); when `stages` is not null it also receives the encoder stage outputs
    // (B, C, h, w) under "stage1".."stage4" and the logits under "decoder". ViT encoders report
    // token grids reshaped to (B, C, h, w).
    virtual torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) = 0;

    // Stage names this model reports, in order.
    virtual std::vector<std::string> stageNames() const { return {"stage1", "stage2", "stage3", "stage4", "decoder"}; }

    // True for parameters of the decoder/head (given their full state_dict name), which may train
    // with a learning-rate multiplier.
    virtual bool isHeadParameter(const std::string& name) const = 0;

    int numClasses() const { return numClasses_; }

protected:
    explicit SegmentationModel(int numClasses) : numClasses_(numClasses) {}

private:
    int numClasses_;
};

// Number of trainable parameters (what the reference's sum(p.numel()) gives).
std::int64_t countParameters(const torch::nn::Module& module);

}  // namespace segscope::core
