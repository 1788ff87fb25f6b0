// SegFormer B0-B5 (Xie et al. 2021), module for module as HF transformers'
// SegformerForSemanticSegmentation, so its state_dict keys ("segformer.encoder...",
// "decode_head...") load unchanged.
#include "segscope/core/models/registry.h"

#include "segscope/core/error.h"

#include "transformer_common.h"

#include <ATen/ops/scaled_dot_product_attention.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>

#include <array>
#include <cmath>

namespace segscope::core {
namespace {

namespace F = torch::nn::functional;
using detail::layerNorm;

struct SegFormerConfig {
    std::array<std::int64_t, 4> hiddenSizes;
    std::array<std::int64_t, 4> depths;
    std::int64_t decoderHiddenSize;
    std::array<std::int64_t, 4> numHeads{1, 2, 5, 8};
    std::array<std::int64_t, 4> reductionRatios{8, 4, 2, 1};
    std::array<std::int64_t, 4> patchSizes{7, 3, 3, 3};
    std::array<std::int64_t, 4> strides{4, 2, 2, 2};
    std::int64_t mlpRatio = 4;
    double dropPathRate = 0.1;  // SegformerConfig defaults
    double classifierDropout = 0.1;
};

// HF's SegformerLayer instantiates nn.LayerNorm(hidden) without config.layer_norm_eps, so every
// LayerNorm in the model uses PyTorch's default.
constexpr double kLayerNormEps = 1e-5;
constexpr std::int64_t kMinimumInputSize = 29;

class OverlapPatchEmbeddingsImpl : public torch::nn::Module {
public:
    OverlapPatchEmbeddingsImpl(std::int64_t patchSize, std::int64_t stride, std::int64_t inChannels,
                               std::int64_t hiddenSize) {
        proj_ = register_module(
            "proj",
            torch::nn::Conv2d(
                torch::nn::Conv2dOptions(inChannels, hiddenSize, patchSize).stride(stride).padding(patchSize / 2)));
        layerNorm_ = register_module("layer_norm", layerNorm(hiddenSize, kLayerNormEps));
    }
    // Returns (B, h*w, C) tokens and the grid size.
    torch::Tensor forward(const torch::Tensor& x, std::int64_t& height, std::int64_t& width) {
        auto y = proj_->forward(x);
        height = y.size(2);
        width = y.size(3);
        return layerNorm_->forward(detail::gridToTokens(y));
    }

private:
    torch::nn::Conv2d proj_{nullptr};
    torch::nn::LayerNorm layerNorm_{nullptr};
};
TORCH_MODULE(OverlapPatchEmbeddings);

class EfficientSelfAttentionImpl : public torch::nn::Module {
public:
    EfficientSelfAttentionImpl(std::int64_t hidden, std::int64_t heads, std::int64_t ratio)
        : heads_(heads), ratio_(ratio) {
        query_ = register_module("query", torch::nn::Linear(hidden, hidden));
        key_ = register_module("key", torch::nn::Linear(hidden, hidden));
        value_ = register_module("value", torch::nn::Linear(hidden, hidden));
        if (ratio > 1) {
            sr_ =
                register_module("sr", torch::nn::Conv2d(torch::nn::Conv2dOptions(hidden, hidden, ratio).stride(ratio)));
            layerNorm_ = register_module("layer_norm", layerNorm(hidden, kLayerNormEps));
        }
    }
    torch::Tensor forward(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
        const auto batch = x.size(0);
        const auto channels = x.size(2);
        const auto headDim = channels / heads_;
        auto split = [&](const torch::Tensor& t) { return t.view({batch, -1, heads_, headDim}).transpose(1, 2); };
        auto q = split(query_->forward(x));
        auto reduced = x;
        if (ratio_ > 1) {
            reduced = sr_->forward(detail::tokensToGrid(x, height, width));
            reduced = layerNorm_->forward(detail::gridToTokens(reduced));
        }
        auto k = split(key_->forward(reduced));
        auto v = split(value_->forward(reduced));
        // attention_probs_dropout_prob is 0 in every SegFormer config.
        auto context = at::scaled_dot_product_attention(q, k, v);
        return context.transpose(1, 2).reshape({batch, -1, channels});
    }

private:
    std::int64_t heads_;
    std::int64_t ratio_;
    torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr};
    torch::nn::Conv2d sr_{nullptr};
    torch::nn::LayerNorm layerNorm_{nullptr};
};
TORCH_MODULE(EfficientSelfAttention);

class SelfOutputImpl : public torch::nn::Module {
public:
    explicit SelfOutputImpl(std::int64_t hidden) {
        dense_ = register_module("dense", torch::nn::Linear(hidden, hidden));
    }
    torch::Tensor forward(const torch::Tensor& x) { return dense_->forward(x); }

private:
    torch::nn::Linear dense_{nullptr};
};
TORCH_MODULE(SelfOutput);

class AttentionImpl : public torch::nn::Module {
public:
    AttentionImpl(std::int64_t hidden, std::int64_t heads, std::int64_t ratio) {
        self_ = register_module("self", EfficientSelfAttention(hidden, heads, ratio));
        output_ = register_module("output", SelfOutput(hidden));
    }
    torch::Tensor forward(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
        return output_->forward(self_->forward(x, height, width));
    }

private:
    EfficientSelfAttention self_{nullptr};
    SelfOutput output_{nullptr};
};
TORCH_MODULE(Attention);

class DepthwiseConvImpl : public torch::nn::Module {
public:
    explicit DepthwiseConvImpl(std::int64_t dim) {
        dwconv_ =
            register_module("dwconv", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 3).padding(1).groups(dim)));
    }
    torch::Tensor forward(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
        return detail::gridToTokens(dwconv_->forward(detail::tokensToGrid(x, height, width)));
    }

private:
    torch::nn::Conv2d dwconv_{nullptr};
};
TORCH_MODULE(DepthwiseConv);

class MixFfnImpl : public torch::nn::Module {
public:
    MixFfnImpl(std::int64_t dim, std::int64_t hiddenDim) {
        dense1_ = register_module("dense1", torch::nn::Linear(dim, hiddenDim));
        dwconv_ = register_module("dwconv", DepthwiseConv(hiddenDim));
        dense2_ = register_module("dense2", torch::nn::Linear(hiddenDim, dim));
    }
    torch::Tensor forward(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
        auto y = torch::gelu(dwconv_->forward(dense1_->forward(x), height, width));
        return dense2_->forward(y);
    }

private:
    torch::nn::Linear dense1_{nullptr}, dense2_{nullptr};
    DepthwiseConv dwconv_{nullptr};
};
TORCH_MODULE(MixFfn);

class SegFormerLayerImpl : public torch::nn::Module {
public:
    SegFormerLayerImpl(std::int64_t hidden, std::int64_t heads, std::int64_t ratio, std::int64_t mlpRatio,
                       double dropPath)
        : dropPath_(dropPath) {
        layerNorm1_ = register_module("layer_norm_1", layerNorm(hidden, kLayerNormEps));
        attention_ = register_module("attention", Attention(hidden, heads, ratio));
        layerNorm2_ = register_module("layer_norm_2", layerNorm(hidden, kLayerNormEps));
        mlp_ = register_module("mlp", MixFfn(hidden, hidden * mlpRatio));
    }
    torch::Tensor forward(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
        auto h =
            x + detail::dropPath(attention_->forward(layerNorm1_->forward(x), height, width), dropPath_, is_training());
        return h + detail::dropPath(mlp_->forward(layerNorm2_->forward(h), height, width), dropPath_, is_training());
    }

private:
    double dropPath_;
    torch::nn::LayerNorm layerNorm1_{nullptr}, layerNorm2_{nullptr};
    Attention attention_{nullptr};
    MixFfn mlp_{nullptr};
};
TORCH_MODULE(SegFormerLayer);

// "segformer.encoder": the Mix Transformer (MiT) hierarchy.
class MixTransformerImpl : public torch::nn::Module {
public:
    explicit MixTransformerImpl(const SegFormerConfig& config) {
        auto embeddings = torch::nn::ModuleList();
        auto blocks = torch::nn::ModuleList();
        auto norms = torch::nn::ModuleList();
        std::int64_t totalDepth = 0;
        for (auto depth : config.depths) totalDepth += depth;
        const auto rates = detail::linearDropPathRates(config.dropPathRate, totalDepth);
        std::size_t layerIndex = 0;
        for (std::size_t stage = 0; stage < 4; ++stage) {
            const auto hidden = config.hiddenSizes[stage];
            const auto inChannels = stage == 0 ? 3 : config.hiddenSizes[stage - 1];
            embeddings_[stage] =
                OverlapPatchEmbeddings(config.patchSizes[stage], config.strides[stage], inChannels, hidden);
            embeddings->push_back(embeddings_[stage]);
            auto stageLayers = torch::nn::ModuleList();
            for (std::int64_t j = 0; j < config.depths[stage]; ++j) {
                auto layer = SegFormerLayer(hidden, config.numHeads[stage], config.reductionRatios[stage],
                                            config.mlpRatio, rates[layerIndex++]);
                layers_[stage].push_back(layer);
                stageLayers->push_back(layer);
            }
            blocks->push_back(stageLayers);
            norms_[stage] = layerNorm(hidden, kLayerNormEps);
            norms->push_back(norms_[stage]);
        }
        register_module("patch_embeddings", embeddings);
        register_module("block", blocks);
        register_module("layer_norm", norms);
    }

    // The four stage outputs (B, C_i, h_i, w_i) after each stage's final LayerNorm.
    std::array<torch::Tensor, 4> forward(const torch::Tensor& input) {
        std::array<torch::Tensor, 4> outputs;
        auto x = input;
        for (std::size_t stage = 0; stage < 4; ++stage) {
            std::int64_t height = 0, width = 0;
            auto tokens = embeddings_[stage]->forward(x, height, width);
            for (auto& layer : layers_[stage]) tokens = layer->forward(tokens, height, width);
            tokens = norms_[stage]->forward(tokens);
            x = detail::tokensToGrid(tokens, height, width);
            outputs[stage] = x;
        }
        return outputs;
    }

private:
    std::array<OverlapPatchEmbeddings, 4> embeddings_{nullptr, nullptr, nullptr, nullptr};
    std::array<std::vector<SegFormerLayer>, 4> layers_;
    std::array<torch::nn::LayerNorm, 4> norms_{nullptr, nullptr, nullptr, nullptr};
};
TORCH_MODULE(MixTransformer);

class SegFormerBackboneImpl : public torch::nn::Module {
public:
    explicit SegFormerBackboneImpl(const SegFormerConfig& config) {
        encoder_ = register_module("encoder", MixTransformer(config));
    }
    std::array<torch::Tensor, 4> forward(const torch::Tensor& input) { return encoder_->forward(input); }

private:
    MixTransformer encoder_{nullptr};
};
TORCH_MODULE(SegFormerBackbone);

class LinearEmbeddingImpl : public torch::nn::Module {
public:
    LinearEmbeddingImpl(std::int64_t inDim, std::int64_t outDim) {
        proj_ = register_module("proj", torch::nn::Linear(inDim, outDim));
    }
    torch::Tensor forward(const torch::Tensor& x) { return proj_->forward(x); }

private:
    torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(LinearEmbedding);

// "decode_head": the all-MLP decoder.
class SegFormerDecodeHeadImpl : public torch::nn::Module {
public:
    SegFormerDecodeHeadImpl(const SegFormerConfig& config, int numClasses) : dropout_(config.classifierDropout) {
        auto linears = torch::nn::ModuleList();
        for (std::size_t i = 0; i < 4; ++i) {
            linearC_[i] = LinearEmbedding(config.hiddenSizes[i], config.decoderHiddenSize);
            linears->push_back(linearC_[i]);
        }
        register_module("linear_c", linears);
        const auto d = config.decoderHiddenSize;
        linearFuse_ =
            register_module("linear_fuse", torch::nn::Conv2d(torch::nn::Conv2dOptions(4 * d, d, 1).bias(false)));
        batchNorm_ = register_module("batch_norm", torch::nn::BatchNorm2d(d));
        classifier_ = register_module("classifier", torch::nn::Conv2d(torch::nn::Conv2dOptions(d, numClasses, 1)));
    }
    // Logits at the first stage's resolution (H/4).
    torch::Tensor forward(const std::array<torch::Tensor, 4>& features) {
        const auto& first = features[0];
        const std::vector<std::int64_t> size{first.size(2), first.size(3)};
        std::vector<torch::Tensor> unified(4);
        for (std::size_t i = 0; i < 4; ++i) {
            const auto& f = features[i];
            auto y = linearC_[i]->forward(detail::gridToTokens(f));
            y = detail::tokensToGrid(y, f.size(2), f.size(3));
            // The decoder concatenates the coarsest stage first (c4, c3, c2, c1).
            unified[3 - i] =
                F::interpolate(y, F::InterpolateFuncOptions().size(size).mode(torch::kBilinear).align_corners(false));
        }
        auto x = torch::relu(batchNorm_->forward(linearFuse_->forward(torch::cat(unified, 1))));
        x = F::dropout(x, F::DropoutFuncOptions().p(dropout_).training(is_training()));
        return classifier_->forward(x);
    }

private:
    double dropout_;
    std::array<LinearEmbedding, 4> linearC_{nullptr, nullptr, nullptr, nullptr};
    torch::nn::Conv2d linearFuse_{nullptr}, classifier_{nullptr};
    torch::nn::BatchNorm2d batchNorm_{nullptr};
};
TORCH_MODULE(SegFormerDecodeHead);

class SegFormer : public SegmentationModel {
public:
    SegFormer(const SegFormerConfig& config, int numClasses) : SegmentationModel(numClasses) {
        segformer_ = register_module("segformer", SegFormerBackbone(config));
        decodeHead_ = register_module("decode_head", SegFormerDecodeHead(config, numClasses));
        initialize();
    }

    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        // Below 29 pixels the first stage's grid is smaller than its 8x8 sequence-reduction
        // kernel (HF fails there too); say so instead of failing inside a convolution.
        if (input.size(2) < kMinimumInputSize || input.size(3) < kMinimumInputSize)
            throw Error("SegFormer needs inputs of at least " + std::to_string(kMinimumInputSize) + "x" +
                        std::to_string(kMinimumInputSize) + " pixels, got " + std::to_string(input.size(3)) + "x" +
                        std::to_string(input.size(2)));
        const auto features = segformer_->forward(input);
        auto logits = decodeHead_->forward(features);
        logits = F::interpolate(logits, F::InterpolateFuncOptions()
                                            .size(std::vector<std::int64_t>{input.size(2), input.size(3)})
                                            .mode(torch::kBilinear)
                                            .align_corners(false));
        if (stages) {
            for (std::size_t i = 0; i < 4; ++i) (*stages)["stage" + std::to_string(i + 1)] = features[i];
            (*stages)["decoder"] = logits;
        }
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override { return name.rfind("decode_head.", 0) == 0; }

private:
    // SegformerPreTrainedModel._init_weights: Linear/Conv2d ~ N(0, 0.02) with zero bias,
    // LayerNorm/BatchNorm weight 1 and bias 0 (already LibTorch's defaults for those).
    void initialize() {
        for (auto& module : modules(/*include_self=*/false)) {
            if (auto* linear = module->as<torch::nn::Linear>()) {
                detail::normalInit(linear->weight, 0.02);
                torch::NoGradGuard noGrad;
                linear->bias.zero_();
            } else if (auto* conv = module->as<torch::nn::Conv2d>()) {
                detail::normalInit(conv->weight, 0.02);
                torch::NoGradGuard noGrad;
                if (conv->bias.defined()) conv->bias.zero_();
            }
        }
    }

    SegFormerBackbone segformer_{nullptr};
    SegFormerDecodeHead decodeHead_{nullptr};
};

SegFormerConfig segFormerConfig(int variant) {
    static const std::array<std::array<std::int64_t, 4>, 6> depths{
        {{2, 2, 2, 2}, {2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 18, 3}, {3, 8, 27, 3}, {3, 6, 40, 3}}};
    SegFormerConfig config;
    config.hiddenSizes =
        variant == 0 ? std::array<std::int64_t, 4>{32, 64, 160, 256} : std::array<std::int64_t, 4>{64, 128, 320, 512};
    config.depths = depths[static_cast<std::size_t>(variant)];
    config.decoderHiddenSize = variant < 2 ? 256 : 768;
    return config;
}

}  // namespace

void registerSegFormerModels(std::vector<ModelEntry>& registry) {
    for (int variant = 0; variant <= 5; ++variant) {
        ModelInfo info;
        info.id = "segformer-b" + std::to_string(variant);
        info.family = "segformer";
        info.reference = "transformers.SegformerForSemanticSegmentation (nvidia/mit-b" + std::to_string(variant) + ")";
        info.stages = {"stage1", "stage2", "stage3", "stage4", "decoder"};
        registry.push_back({std::move(info), [variant](int numClasses) -> std::shared_ptr<SegmentationModel> {
                                return std::make_shared<SegFormer>(segFormerConfig(variant), numClasses);
                            }});
    }
}

}  // namespace segscope::core
