// Plain-ViT segmenters on a timm-named encoder (vit.h):
//  - Segmenter (Strudel et al. 2021), linear and mask-transformer decoders, as rstrudel/segmenter
//    (segm/model/{segmenter,decoder,blocks}.py);
//  - SETR (Zheng et al. 2021), naive, PUP and MLA heads, as mmsegmentation's SETRUPHead, MLANeck
//    and SETRMLAHead with mmcv ConvModule names.
#include "segscope/core/models/registry.h"

#include "vit.h"

#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/batchnorm.h>

#include <array>
#include <cmath>

namespace segscope::core {
namespace {

namespace F = torch::nn::functional;
using detail::VisionTransformer;
using detail::VitOptions;

struct VitSize {
    const char* name;
    std::int64_t dim;
    std::int64_t depth;
    std::int64_t heads;
};
constexpr std::array<VitSize, 4> kVitSizes{
    {{"tiny", 192, 12, 3}, {"small", 384, 12, 6}, {"base", 768, 12, 12}, {"large", 1024, 24, 16}}};

// Zeros on the right and bottom up to a multiple of the patch size (Segmenter's padding(), mmseg's
// AdaptivePadding in "corner" mode).
torch::Tensor padToPatch(const torch::Tensor& input, std::int64_t patch) {
    const auto padHeight = (patch - input.size(2) % patch) % patch;
    const auto padWidth = (patch - input.size(3) % patch) % patch;
    if (padHeight == 0 && padWidth == 0) return input;
    return F::pad(input, F::PadFuncOptions({0, padWidth, 0, padHeight}));
}

torch::Tensor resizeBilinear(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
    if (x.size(2) == height && x.size(3) == width) return x;
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<std::int64_t>{height, width})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
}

// Block indices at 1/4, 1/2, 3/4 and all of the depth (mmseg's MLA out_indices (5, 11, 17, 23)
// for 24 layers).
std::vector<std::int64_t> quarterTaps(std::int64_t depth) {
    return {depth / 4 - 1, depth / 2 - 1, 3 * depth / 4 - 1, depth - 1};
}

void reportStages(StageMap* stages, const detail::VitOutput& out, const torch::Tensor& last,
                  const torch::Tensor& logits) {
    if (!stages) return;
    for (std::size_t i = 0; i < 3; ++i)
        (*stages)["stage" + std::to_string(i + 1)] = detail::tokensToGrid(out.tapped[i], out.gridHeight, out.gridWidth);
    (*stages)["stage4"] = detail::tokensToGrid(last, out.gridHeight, out.gridWidth);
    (*stages)["decoder"] = logits;
}

// ------------------------------------------------------------------------------------------ Segmenter

class LinearDecoderImpl : public torch::nn::Module {
public:
    LinearDecoderImpl(std::int64_t dim, int numClasses) {
        head_ = register_module("head", torch::nn::Linear(dim, numClasses));
        detail::truncatedNormalInit(head_->weight, 0.02);
        torch::NoGradGuard noGrad;
        head_->bias.zero_();
    }
    torch::Tensor forward(const torch::Tensor& tokens, std::int64_t height, std::int64_t width) {
        return detail::tokensToGrid(head_->forward(tokens), height, width);
    }

private:
    torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(LinearDecoder);

// Segmenter's MaskTransformer with d_model = d_encoder, 2 layers, d_model / 64 heads. Its
// LayerNorms are nn.LayerNorm defaults (eps 1e-5), unlike the encoder's 1e-6.
class MaskTransformerImpl : public torch::nn::Module {
public:
    MaskTransformerImpl(std::int64_t dim, int numClasses) : numClasses_(numClasses) {
        constexpr double kEps = 1e-5;
        auto blocks = torch::nn::ModuleList();
        for (int i = 0; i < 2; ++i) {
            detail::VitBlockOptions options;
            options.dim = dim;
            options.heads = dim / 64;
            options.layerNormEps = kEps;
            options.attentionDropout = 0.1;  // Segmenter's decoder config: dropout 0.1, drop_path 0
            options.dropout = 0.1;
            blocks_.push_back(detail::VitBlock(options));
            blocks->push_back(blocks_.back());
        }
        register_module("blocks", blocks);
        clsEmb_ = register_parameter("cls_emb", torch::empty({1, numClasses, dim}));
        projDec_ = register_module("proj_dec", torch::nn::Linear(dim, dim));
        const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
        projPatch_ = register_parameter("proj_patch", torch::randn({dim, dim}) * scale);
        projClasses_ = register_parameter("proj_classes", torch::randn({dim, dim}) * scale);
        decoderNorm_ = register_module("decoder_norm", detail::layerNorm(dim, kEps));
        maskNorm_ = register_module("mask_norm", detail::layerNorm(numClasses, kEps));
        // segm/model/utils.init_weights on Linear layers, then trunc_normal_(cls_emb, 0.02).
        for (auto& module : modules(false))
            if (auto* linear = module->as<torch::nn::Linear>()) {
                detail::truncatedNormalInit(linear->weight, 0.02);
                torch::NoGradGuard noGrad;
                linear->bias.zero_();
            }
        detail::truncatedNormalInit(clsEmb_, 0.02);
    }

    torch::Tensor forward(const torch::Tensor& tokens, std::int64_t height, std::int64_t width) {
        auto x = projDec_->forward(tokens);
        x = torch::cat({x, clsEmb_.expand({x.size(0), -1, -1}).to(x.dtype())}, 1);
        for (auto& block : blocks_) x = block->forward(x);
        x = decoderNorm_->forward(x);
        const auto numPatches = x.size(1) - numClasses_;
        auto patches = torch::matmul(x.narrow(1, 0, numPatches), projPatch_.to(x.dtype()));
        auto classes = torch::matmul(x.narrow(1, numPatches, numClasses_), projClasses_.to(x.dtype()));
        patches = patches / patches.norm(2, {-1}, true);
        classes = classes / classes.norm(2, {-1}, true);
        auto masks = maskNorm_->forward(torch::matmul(patches, classes.transpose(1, 2)));
        return detail::tokensToGrid(masks, height, width);
    }

private:
    std::int64_t numClasses_;
    std::vector<detail::VitBlock> blocks_;
    torch::Tensor clsEmb_, projPatch_, projClasses_;
    torch::nn::Linear projDec_{nullptr};
    torch::nn::LayerNorm decoderNorm_{nullptr}, maskNorm_{nullptr};
};
TORCH_MODULE(MaskTransformer);

enum class SegmenterDecoder { Linear, Mask };

class Segmenter : public SegmentationModel {
public:
    Segmenter(const VitSize& size, std::int64_t patch, SegmenterDecoder decoder, int numClasses)
        : SegmentationModel(numClasses) {
        VitOptions options;
        options.dim = size.dim;
        options.depth = size.depth;
        options.heads = size.heads;
        options.patchSize = patch;
        options.finalNorm = true;
        options.dropPathRate = 0.1;  // Segmenter's encoder config: drop_path_rate 0.1, dropout 0
        encoder_ = register_module("encoder", VisionTransformer(options));
        if (decoder == SegmenterDecoder::Linear)
            linear_ = register_module("decoder", LinearDecoder(size.dim, numClasses));
        else
            mask_ = register_module("decoder", MaskTransformer(size.dim, numClasses));
    }

    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        const auto height = input.size(2), width = input.size(3);
        const auto padded = padToPatch(input, encoder_->options().patchSize);
        const auto out = encoder_->forward(padded, quarterTaps(encoder_->options().depth));
        auto masks = linear_ ? linear_->forward(out.tokens, out.gridHeight, out.gridWidth)
                             : mask_->forward(out.tokens, out.gridHeight, out.gridWidth);
        masks = resizeBilinear(masks, padded.size(2), padded.size(3));
        auto logits = masks.narrow(2, 0, height).narrow(3, 0, width);
        reportStages(stages, out, out.tokens, logits);
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override { return name.rfind("decoder.", 0) == 0; }

private:
    VisionTransformer encoder_{nullptr};
    LinearDecoder linear_{nullptr};
    MaskTransformer mask_{nullptr};
};

// ------------------------------------------------------------------------------------------ SETR

// mmcv ConvModule(conv, norm_cfg=BN, act_cfg=ReLU): `conv` without bias, `bn`, ReLU.
class ConvModuleImpl : public torch::nn::Module {
public:
    ConvModuleImpl(std::int64_t inChannels, std::int64_t outChannels, std::int64_t kernel) {
        conv_ = register_module(
            "conv",
            torch::nn::Conv2d(
                torch::nn::Conv2dOptions(inChannels, outChannels, kernel).padding((kernel - 1) / 2).bias(false)));
        bn_ = register_module("bn", torch::nn::BatchNorm2d(outChannels));
        // mmcv kaiming_init(mode='fan_out', nonlinearity='relu', distribution='normal').
        torch::nn::init::kaiming_normal_(conv_->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
    torch::Tensor forward(const torch::Tensor& x) { return torch::relu(bn_->forward(conv_->forward(x))); }

private:
    torch::nn::Conv2d conv_{nullptr};
    torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ConvModule);

torch::Tensor upsample(const torch::Tensor& x, double scale) {
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{scale, scale})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
}

// LayerNorm over the channels of a (B, C, h, w) map, as the SETR heads apply it to the tokens.
torch::Tensor channelLayerNorm(torch::nn::LayerNorm& norm, const torch::Tensor& x) {
    return detail::tokensToGrid(norm->forward(detail::gridToTokens(x)), x.size(2), x.size(3));
}

// BaseDecodeHead.conv_seg: 1x1 conv, N(0, 0.01) weights, zero bias.
torch::nn::Conv2d classifierConv(std::int64_t inChannels, int numClasses) {
    auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(inChannels, numClasses, 1));
    detail::normalInit(conv->weight, 0.01);
    torch::NoGradGuard noGrad;
    conv->bias.zero_();
    return conv;
}

// SETRUPHead: LN on the last block's tokens, `numConvs` x [ConvModule, x`upScale` bilinear],
// conv_seg. Naive: 1 x [1x1 conv, x4]; PUP: 4 x [3x3 conv, x2].
class SetrUpHeadImpl : public torch::nn::Module {
public:
    SetrUpHeadImpl(std::int64_t inChannels, std::int64_t channels, int numClasses, int numConvs, double upScale,
                   std::int64_t kernel)
        : upScale_(upScale) {
        norm_ = register_module("norm", detail::layerNorm(inChannels, 1e-6));
        auto upConvs = torch::nn::ModuleList();
        for (int i = 0; i < numConvs; ++i) {
            convs_.push_back(ConvModule(i == 0 ? inChannels : channels, channels, kernel));
            auto stage = torch::nn::ModuleList();  // mmseg's Sequential(ConvModule, Upsample)
            stage->push_back(convs_.back());
            upConvs->push_back(stage);
        }
        register_module("up_convs", upConvs);
        convSeg_ = register_module("conv_seg", classifierConv(channels, numClasses));
    }
    torch::Tensor forward(const torch::Tensor& x) {
        auto y = channelLayerNorm(norm_, x);
        for (auto& conv : convs_) y = upsample(conv->forward(y), upScale_);
        return convSeg_->forward(y);
    }

private:
    double upScale_;
    torch::nn::LayerNorm norm_{nullptr};
    std::vector<ConvModule> convs_;
    torch::nn::Conv2d convSeg_{nullptr};
};
TORCH_MODULE(SetrUpHead);

// MLANeck: per tap LN, 1x1 ConvModule (mla.channel_proj), top-down running sums from the deepest
// tap, 3x3 ConvModule (mla.feat_extract). Outputs are ordered deepest sum first, as mmseg's.
class MlaNeckImpl : public torch::nn::Module {
public:
    MlaNeckImpl(std::int64_t inChannels, std::int64_t outChannels) {
        auto norms = torch::nn::ModuleList();
        auto mla = std::make_shared<torch::nn::Module>();
        auto channelProj = torch::nn::ModuleList();
        auto featExtract = torch::nn::ModuleList();
        for (std::size_t i = 0; i < 4; ++i) {
            norms_[i] = detail::layerNorm(inChannels, 1e-6);
            norms->push_back(norms_[i]);
            channelProj_[i] = ConvModule(inChannels, outChannels, 1);
            channelProj->push_back(channelProj_[i]);
            featExtract_[i] = ConvModule(outChannels, outChannels, 3);
            featExtract->push_back(featExtract_[i]);
        }
        register_module("norm", norms);
        mla->register_module("channel_proj", channelProj);
        mla->register_module("feat_extract", featExtract);
        register_module("mla", mla);
    }
    std::array<torch::Tensor, 4> forward(const std::array<torch::Tensor, 4>& inputs) {
        std::array<torch::Tensor, 4> projected;
        for (std::size_t i = 0; i < 4; ++i)
            projected[i] = channelProj_[i]->forward(channelLayerNorm(norms_[i], inputs[i]));
        std::array<torch::Tensor, 4> outputs;
        torch::Tensor running;
        for (std::size_t i = 0; i < 4; ++i) {
            const auto& feature = projected[3 - i];
            running = running.defined() ? running + feature : feature;
            outputs[i] = featExtract_[i]->forward(running);
        }
        return outputs;
    }

private:
    std::array<torch::nn::LayerNorm, 4> norms_{nullptr, nullptr, nullptr, nullptr};
    std::array<ConvModule, 4> channelProj_{nullptr, nullptr, nullptr, nullptr};
    std::array<ConvModule, 4> featExtract_{nullptr, nullptr, nullptr, nullptr};
};
TORCH_MODULE(MlaNeck);

// SETRMLAHead: per neck output two 3x3 ConvModules and x4 bilinear; concatenated; conv_seg.
class SetrMlaHeadImpl : public torch::nn::Module {
public:
    SetrMlaHeadImpl(std::int64_t inChannels, std::int64_t mlaChannels, int numClasses) {
        auto upConvs = torch::nn::ModuleList();
        for (std::size_t i = 0; i < 4; ++i) {
            auto stage = torch::nn::ModuleList();  // mmseg's Sequential(ConvModule, ConvModule, Upsample)
            first_[i] = ConvModule(inChannels, mlaChannels, 3);
            second_[i] = ConvModule(mlaChannels, mlaChannels, 3);
            stage->push_back(first_[i]);
            stage->push_back(second_[i]);
            upConvs->push_back(stage);
        }
        register_module("up_convs", upConvs);
        convSeg_ = register_module("conv_seg", classifierConv(4 * mlaChannels, numClasses));
    }
    torch::Tensor forward(const std::array<torch::Tensor, 4>& inputs) {
        std::vector<torch::Tensor> branches;
        for (std::size_t i = 0; i < 4; ++i)
            branches.push_back(upsample(second_[i]->forward(first_[i]->forward(inputs[i])), 4.0));
        return convSeg_->forward(torch::cat(branches, 1));
    }

private:
    std::array<ConvModule, 4> first_{nullptr, nullptr, nullptr, nullptr};
    std::array<ConvModule, 4> second_{nullptr, nullptr, nullptr, nullptr};
    torch::nn::Conv2d convSeg_{nullptr};
};
TORCH_MODULE(SetrMlaHead);

enum class SetrHead { Naive, Pup, Mla };

class Setr : public SegmentationModel {
public:
    Setr(const VitSize& size, SetrHead head, int numClasses) : SegmentationModel(numClasses) {
        VitOptions options;
        options.dim = size.dim;
        options.depth = size.depth;
        options.heads = size.heads;
        options.patchSize = 16;
        options.finalNorm = false;  // mmseg VisionTransformer(final_norm=False) in the SETR configs
        options.dropout = 0.1;      // drop_rate=0.1
        backbone_ = register_module("backbone", VisionTransformer(options));
        switch (head) {
            case SetrHead::Naive:
                upHead_ = register_module("decode_head", SetrUpHead(size.dim, 256, numClasses, 1, 4.0, 1));
                break;
            case SetrHead::Pup:
                upHead_ = register_module("decode_head", SetrUpHead(size.dim, 256, numClasses, 4, 2.0, 3));
                break;
            case SetrHead::Mla:
                neck_ = register_module("neck", MlaNeck(size.dim, 256));
                mlaHead_ = register_module("decode_head", SetrMlaHead(256, 128, numClasses));
                break;
        }
    }

    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        const auto padded = padToPatch(input, 16);
        const auto out = backbone_->forward(padded, quarterTaps(backbone_->options().depth));
        std::array<torch::Tensor, 4> grids;
        for (std::size_t i = 0; i < 4; ++i)
            grids[i] = detail::tokensToGrid(out.tapped[i], out.gridHeight, out.gridWidth);
        auto logits = upHead_ ? upHead_->forward(grids[3]) : mlaHead_->forward(neck_->forward(grids));
        // mmseg's EncoderDecoder resizes the head output straight to the unpadded input size.
        logits = resizeBilinear(logits, input.size(2), input.size(3));
        reportStages(stages, out, out.tapped[3], logits);
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override {
        return name.rfind("decode_head.", 0) == 0 || name.rfind("neck.", 0) == 0;
    }

private:
    VisionTransformer backbone_{nullptr};
    SetrUpHead upHead_{nullptr};
    MlaNeck neck_{nullptr};
    SetrMlaHead mlaHead_{nullptr};
};

}  // namespace

void registerVitModels(std::vector<ModelEntry>& registry) {
    const std::vector<std::string> stageNames{"stage1", "stage2", "stage3", "stage4", "decoder"};
    for (const auto decoder : {SegmenterDecoder::Linear, SegmenterDecoder::Mask}) {
        const std::string decoderName = decoder == SegmenterDecoder::Linear ? "linear" : "mask";
        for (const std::int64_t patch : {16, 8, 32}) {
            for (const auto& size : kVitSizes) {
                if (patch != 16 && std::string(size.name) == "large") continue;
                ModelInfo info;
                info.id = "segmenter-" + decoderName + "-vit-" + size.name + "-p" + std::to_string(patch);
                info.family = "segmenter";
                info.reference = std::string("Segmenter (rstrudel/segmenter) ") +
                                 (decoder == SegmenterDecoder::Linear ? "DecoderLinear" : "MaskTransformer") +
                                 " on timm VisionTransformer (vit_" + size.name + "_patch" + std::to_string(patch) +
                                 ")";
                info.stages = stageNames;
                registry.push_back(
                    {std::move(info), [size, patch, decoder](int numClasses) -> std::shared_ptr<SegmentationModel> {
                         return std::make_shared<Segmenter>(size, patch, decoder, numClasses);
                     }});
            }
        }
    }
    const std::array<std::pair<SetrHead, const char*>, 3> heads{
        {{SetrHead::Naive, "naive"}, {SetrHead::Pup, "pup"}, {SetrHead::Mla, "mla"}}};
    for (const auto& [head, headName] : heads) {
        for (const auto& size : kVitSizes) {
            ModelInfo info;
            info.id = std::string("setr-") + headName + "-vit-" + size.name + "-p16";
            info.family = "setr";
            info.reference = std::string("mmsegmentation SETR ") +
                             (head == SetrHead::Mla ? "MLANeck + SETRMLAHead" : "SETRUPHead") +
                             " on timm VisionTransformer (vit_" + size.name + "_patch16)";
            info.stages = stageNames;
            registry.push_back(
                {std::move(info), [size, head = head](int numClasses) -> std::shared_ptr<SegmentationModel> {
                     return std::make_shared<Setr>(size, head, numClasses);
                 }});
        }
    }
}

}  // namespace segscope::core
