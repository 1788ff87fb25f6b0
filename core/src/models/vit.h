#pragma once
// A plain ViT encoder (Dosovitskiy et al. 2021) with timm's VisionTransformer parameter names
// (patch_embed.proj, cls_token, pos_embed, blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2},
// norm), shared by Segmenter and SETR. Internal to the core.
#include "transformer_common.h"

#include <ATen/ops/scaled_dot_product_attention.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/container/modulelist.h>

#include <cstdint>
#include <vector>

namespace segscope::core::detail {

struct VitBlockOptions {
    std::int64_t dim = 0;
    std::int64_t heads = 0;
    std::int64_t mlpRatio = 4;
    double layerNormEps = 1e-6;
    double attentionDropout = 0.0;  // on the attention probabilities
    double dropout = 0.0;           // after attn.proj, after the MLP's GELU and after mlp.fc2
    double dropPath = 0.0;
};

// Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); the same structure
// (and names) in timm's Block, Segmenter's Block and mmseg's encoder layers once renamed.
class VitBlockImpl : public torch::nn::Module {
public:
    explicit VitBlockImpl(const VitBlockOptions& options) : options_(options) {
        const auto dim = options.dim;
        norm1_ = register_module("norm1", layerNorm(dim, options.layerNormEps));
        auto attn = std::make_shared<torch::nn::Module>();
        qkv_ = attn->register_module("qkv", torch::nn::Linear(dim, 3 * dim));
        proj_ = attn->register_module("proj", torch::nn::Linear(dim, dim));
        register_module("attn", attn);
        norm2_ = register_module("norm2", layerNorm(dim, options.layerNormEps));
        auto mlp = std::make_shared<torch::nn::Module>();
        fc1_ = mlp->register_module("fc1", torch::nn::Linear(dim, options.mlpRatio * dim));
        fc2_ = mlp->register_module("fc2", torch::nn::Linear(options.mlpRatio * dim, dim));
        register_module("mlp", mlp);
    }

    torch::Tensor forward(const torch::Tensor& x) {
        const bool training = is_training();
        auto y = detail::dropPath(drop(proj_->forward(attention(norm1_->forward(x)))), options_.dropPath, training);
        auto h = x + y;
        auto m = drop(fc2_->forward(drop(torch::gelu(fc1_->forward(norm2_->forward(h))))));
        return h + detail::dropPath(m, options_.dropPath, training);
    }

private:
    torch::Tensor attention(const torch::Tensor& x) {
        const auto batch = x.size(0), tokens = x.size(1), dim = x.size(2);
        auto qkv =
            qkv_->forward(x).reshape({batch, tokens, 3, options_.heads, dim / options_.heads}).permute({2, 0, 3, 1, 4});
        auto out = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], {},
                                                    is_training() ? options_.attentionDropout : 0.0);
        return out.transpose(1, 2).reshape({batch, tokens, dim});
    }
    torch::Tensor drop(const torch::Tensor& x) {
        namespace F = torch::nn::functional;
        if (options_.dropout <= 0.0 || !is_training()) return x;
        return F::dropout(x, F::DropoutFuncOptions().p(options_.dropout).training(true));
    }

    VitBlockOptions options_;
    torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
    torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(VitBlock);

struct VitOptions {
    std::int64_t dim = 192;
    std::int64_t depth = 12;
    std::int64_t heads = 3;
    std::int64_t patchSize = 16;
    std::int64_t defaultImageSize = 512;  // pos_embed holds (512 / patch)^2 grid positions + cls
    bool finalNorm = true;                // timm's `norm`; mmseg's SETR backbones have none
    double dropPathRate = 0.0;            // maximum, rising linearly over the blocks
    double dropout = 0.0;                 // after the position embedding and inside the blocks
};

struct VitOutput {
    std::vector<torch::Tensor> tapped;  // block outputs at the requested indices, (B, h*w, C), no cls
    torch::Tensor tokens;               // last block output after `norm` (if any), (B, h*w, C), no cls
    std::int64_t gridHeight = 0;
    std::int64_t gridWidth = 0;
};

class VisionTransformerImpl : public torch::nn::Module {
public:
    explicit VisionTransformerImpl(const VitOptions& options) : options_(options) {
        const auto dim = options.dim;
        auto patchEmbed = std::make_shared<torch::nn::Module>();
        patchProj_ = patchEmbed->register_module(
            "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, dim, options.patchSize).stride(options.patchSize)));
        register_module("patch_embed", patchEmbed);
        const auto grid = defaultGrid();
        clsToken_ = register_parameter("cls_token", torch::zeros({1, 1, dim}));
        posEmbed_ = register_parameter("pos_embed", torch::zeros({1, grid * grid + 1, dim}));
        auto blocks = torch::nn::ModuleList();
        const auto rates = linearDropPathRates(options.dropPathRate, options.depth);
        for (std::int64_t i = 0; i < options.depth; ++i) {
            VitBlockOptions block;
            block.dim = dim;
            block.heads = options.heads;
            block.dropout = options.dropout;
            block.dropPath = rates[static_cast<std::size_t>(i)];
            blocks_.push_back(VitBlock(block));
            blocks->push_back(blocks_.back());
        }
        register_module("blocks", blocks);
        if (options.finalNorm) norm_ = register_module("norm", layerNorm(dim, 1e-6));
        initialize();
    }

    const VitOptions& options() const { return options_; }

    // `input` must already be a multiple of the patch size. Position embeddings are resized
    // bilinearly (align_corners=false) from the default grid to the input's grid, the cls
    // position kept, as Segmenter's resize_pos_embed and mmseg's ViT (interpolate_mode='bilinear').
    VitOutput forward(const torch::Tensor& input, const std::vector<std::int64_t>& taps = {}) {
        namespace F = torch::nn::functional;
        auto patches = patchProj_->forward(input);
        VitOutput out;
        out.gridHeight = patches.size(2);
        out.gridWidth = patches.size(3);
        auto x = gridToTokens(patches);
        x = torch::cat({clsToken_.expand({x.size(0), -1, -1}).to(x.dtype()), x}, 1);
        x = x + positionEmbedding(out.gridHeight, out.gridWidth).to(x.dtype());
        if (options_.dropout > 0.0 && is_training())
            x = F::dropout(x, F::DropoutFuncOptions().p(options_.dropout).training(true));
        for (std::size_t i = 0; i < blocks_.size(); ++i) {
            x = blocks_[i]->forward(x);
            for (auto tap : taps)
                if (tap == static_cast<std::int64_t>(i)) out.tapped.push_back(x.narrow(1, 1, x.size(1) - 1));
        }
        if (norm_) x = norm_->forward(x);
        out.tokens = x.narrow(1, 1, x.size(1) - 1);
        return out;
    }

private:
    std::int64_t defaultGrid() const { return options_.defaultImageSize / options_.patchSize; }

    torch::Tensor positionEmbedding(std::int64_t height, std::int64_t width) {
        namespace F = torch::nn::functional;
        const auto grid = defaultGrid();
        if (height == grid && width == grid) return posEmbed_;
        const auto dim = posEmbed_.size(2);
        auto cls = posEmbed_.narrow(1, 0, 1);
        auto positions = posEmbed_.narrow(1, 1, grid * grid).reshape({1, grid, grid, dim}).permute({0, 3, 1, 2});
        positions = F::interpolate(positions, F::InterpolateFuncOptions()
                                                  .size(std::vector<std::int64_t>{height, width})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false));
        positions = positions.permute({0, 2, 3, 1}).reshape({1, height * width, dim});
        return torch::cat({cls, positions}, 1);
    }

    // timm's init_weights_vit_timm: pos_embed ~ TN(0.02), cls_token ~ N(0, 1e-6), Linear ~ TN(0.02)
    // with zero bias; the patch projection keeps PyTorch's default Conv2d initialisation.
    void initialize() {
        truncatedNormalInit(posEmbed_, 0.02);
        normalInit(clsToken_, 1e-6);
        for (auto& module : modules(false))
            if (auto* linear = module->as<torch::nn::Linear>()) {
                truncatedNormalInit(linear->weight, 0.02);
                torch::NoGradGuard noGrad;
                linear->bias.zero_();
            }
    }

    VitOptions options_;
    torch::nn::Conv2d patchProj_{nullptr};
    torch::Tensor clsToken_, posEmbed_;
    std::vector<VitBlock> blocks_;
    torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(VisionTransformer);

}  // namespace segscope::core::detail
