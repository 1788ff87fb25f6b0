// The CNN models: smp's Unet/FPN/DeepLabV3+ and torchvision's FCN on ResNet encoders, and the
// seed U-Net/ResNet-50. Module names follow the references so state_dicts load unchanged.
#include "resnet.h"

#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"

#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/pooling.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

namespace segscope::core {

namespace F = torch::nn::functional;
using models::ResNetDilation;
using models::ResNetEncoder;

namespace {

bool startsWith(const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0;
}

// Zero-pads right/bottom so H and W are multiples of `multiple`; the reference requires that.
torch::Tensor padToMultiple(const torch::Tensor& x, std::int64_t multiple) {
    const std::int64_t padH = (multiple - x.size(2) % multiple) % multiple;
    const std::int64_t padW = (multiple - x.size(3) % multiple) % multiple;
    if (padH == 0 && padW == 0) return x;
    return F::pad(x, F::PadFuncOptions({0, padW, 0, padH}));
}

torch::Tensor cropTo(const torch::Tensor& x, std::int64_t height, std::int64_t width) {
    if (x.size(2) == height && x.size(3) == width) return x;
    return x.slice(2, 0, height).slice(3, 0, width);
}

torch::Tensor upsampleBilinear(const torch::Tensor& x, double scale, bool alignCorners) {
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{scale, scale})
                                 .mode(torch::kBilinear)
                                 .align_corners(alignCorners));
}

torch::nn::Conv2d conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, bool bias, std::int64_t padding = 0,
                         std::int64_t dilation = 1, std::int64_t groups = 1) {
    return torch::nn::Conv2d(
        torch::nn::Conv2dOptions(in, out, kernel).padding(padding).dilation(dilation).groups(groups).bias(bias));
}

// In-place ReLU after batch norm (smp's Conv2dReLU, torchvision): same values, no extra buffer.
torch::nn::ReLU inplaceRelu() {
    return torch::nn::ReLU(torch::nn::ReLUOptions(true));
}

// conv (no bias) → BN → ReLU: smp's Conv2dReLU and the many ASPP/decoder triples.
models::Chain convBnRelu(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t padding = 0) {
    return models::Chain(conv2d(in, out, kernel, false, padding), torch::nn::BatchNorm2d(out), inplaceRelu());
}

// smp's SeparableConv2d: depthwise (no bias) then pointwise.
models::Chain separableConv(std::int64_t in, std::int64_t out, std::int64_t padding, std::int64_t dilation, bool bias) {
    return models::Chain(conv2d(in, in, 3, false, padding, dilation, in), conv2d(in, out, 1, bias));
}

// smp's initialize_decoder.
void initializeSmpDecoder(torch::nn::Module& module) {
    torch::NoGradGuard noGrad;
    for (auto& child : module.modules(false)) {
        if (auto* c = child->as<torch::nn::Conv2d>()) {
            torch::nn::init::kaiming_uniform_(c->weight, 0.0, torch::kFanIn, torch::kReLU);
            if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
        } else if (auto* bn = child->as<torch::nn::BatchNorm2d>()) {
            torch::nn::init::ones_(bn->weight);
            torch::nn::init::zeros_(bn->bias);
        } else if (auto* gn = child->as<torch::nn::GroupNorm>()) {
            torch::nn::init::ones_(gn->weight);
            torch::nn::init::zeros_(gn->bias);
        }
    }
}

// smp's initialize_head.
void initializeSmpHead(torch::nn::Module& module) {
    torch::NoGradGuard noGrad;
    for (auto& child : module.modules(false)) {
        if (auto* c = child->as<torch::nn::Conv2d>()) {
            torch::nn::init::xavier_uniform_(c->weight);
            if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
        }
    }
}

void reportStages(StageMap* stages, const models::ResNetEncoderImpl::Features& features) {
    if (!stages) return;
    for (std::size_t i = 0; i < 4; ++i) (*stages)["stage" + std::to_string(i + 1)] = features.layers[i];
}

// ---------------------------------------------------------------------------------------------
// smp.Unet

class UnetDecoderBlockImpl : public torch::nn::Module {
public:
    UnetDecoderBlockImpl(std::int64_t in, std::int64_t skip, std::int64_t out)
        : conv1_(register_module("conv1", convBnRelu(in + skip, out, 3, 1))),
          conv2_(register_module("conv2", convBnRelu(out, out, 3, 1))) {}

    torch::Tensor forward(const torch::Tensor& x, std::int64_t height, std::int64_t width, const torch::Tensor& skip) {
        torch::Tensor y = F::interpolate(
            x, F::InterpolateFuncOptions().size(std::vector<std::int64_t>{height, width}).mode(torch::kNearest));
        if (skip.defined()) y = torch::cat({y, skip}, 1);
        return conv2_->forward(conv1_->forward(y));
    }

private:
    models::Chain conv1_, conv2_;
};
TORCH_MODULE(UnetDecoderBlock);

class SmpUnetImpl : public SegmentationModel {
public:
    SmpUnetImpl(int depth, int numClasses) : SegmentationModel(numClasses) {
        encoder_ = register_module("encoder", ResNetEncoder(depth, ResNetDilation::None));
        const auto channels = encoder_->spec().channels();
        const std::array<std::int64_t, 5> decoderChannels{256, 128, 64, 32, 16};
        const std::array<std::int64_t, 5> in{channels[3], 256, 128, 64, 32};
        const std::array<std::int64_t, 5> skip{channels[2], channels[1], channels[0], 64, 0};
        torch::nn::ModuleList blockList;
        auto decoder = std::make_shared<torch::nn::Module>("UnetDecoder");
        for (std::size_t i = 0; i < 5; ++i) {
            blocks_.push_back(UnetDecoderBlock(in[i], skip[i], decoderChannels[i]));
            blockList->push_back(blocks_.back());
        }
        decoder->register_module("blocks", blockList);
        decoder_ = register_module("decoder", decoder);
        head_ = register_module("segmentation_head", models::Chain(conv2d(16, numClasses, 3, true, 1)));
        initializeSmpDecoder(*decoder_);
        initializeSmpHead(*head_);
    }

    // smp's Unet accepts any size: each decoder block resizes (nearest) to its skip's size.
    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        const auto features = encoder_->forward(input);
        reportStages(stages, features);
        const std::array<torch::Tensor, 5> skips{features.layers[2], features.layers[1], features.layers[0],
                                                 features.stem, input};
        torch::Tensor x = features.layers[3];
        for (std::size_t i = 0; i < 5; ++i)
            x = blocks_[i]->forward(x, skips[i].size(2), skips[i].size(3), i < 4 ? skips[i] : torch::Tensor());
        torch::Tensor logits = head_->forward(x);
        if (stages) (*stages)["decoder"] = logits;
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override { return !startsWith(name, "encoder."); }

private:
    ResNetEncoder encoder_{nullptr};
    std::shared_ptr<torch::nn::Module> decoder_;
    std::vector<UnetDecoderBlock> blocks_;
    models::Chain head_{nullptr};
};

// ---------------------------------------------------------------------------------------------
// smp.FPN

class FpnBlockImpl : public torch::nn::Module {
public:
    FpnBlockImpl(std::int64_t pyramid, std::int64_t skip)
        : skipConv_(register_module("skip_conv", conv2d(skip, pyramid, 1, true))) {}

    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& skip) {
        const torch::Tensor up = F::interpolate(
            x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
        return up + skipConv_->forward(skip);
    }

private:
    torch::nn::Conv2d skipConv_;
};
TORCH_MODULE(FpnBlock);

// Conv3x3GNReLU: a Sequential named "block", then an optional bilinear ×2 (align_corners true).
class ConvGnReluImpl : public torch::nn::Module {
public:
    ConvGnReluImpl(std::int64_t in, std::int64_t out, bool upsample)
        : upsample_(upsample),
          block_(register_module(
              "block", models::Chain(conv2d(in, out, 3, false, 1),
                                     torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, out)), torch::nn::ReLU()))) {}

    torch::Tensor forward(const torch::Tensor& x) {
        torch::Tensor y = block_->forward(x);
        return upsample_ ? upsampleBilinear(y, 2.0, true) : y;
    }

private:
    bool upsample_;
    models::Chain block_;
};
TORCH_MODULE(ConvGnRelu);

class SegmentationBlockImpl : public torch::nn::Module {
public:
    SegmentationBlockImpl(std::int64_t in, std::int64_t out, int upsamples) {
        models::Chain block;
        block->push_back(ConvGnRelu(in, out, upsamples > 0));
        for (int i = 1; i < upsamples; ++i) block->push_back(ConvGnRelu(out, out, true));
        block_ = register_module("block", block);
    }
    torch::Tensor forward(const torch::Tensor& x) { return block_->forward(x); }

private:
    models::Chain block_{nullptr};
};
TORCH_MODULE(SegmentationBlock);

class SmpFpnImpl : public SegmentationModel {
public:
    static constexpr std::int64_t kPyramidChannels = 256;
    static constexpr std::int64_t kSegmentationChannels = 128;
    static constexpr double kDropout = 0.2;

    SmpFpnImpl(int depth, int numClasses) : SegmentationModel(numClasses) {
        encoder_ = register_module("encoder", ResNetEncoder(depth, ResNetDilation::None));
        const auto channels = encoder_->spec().channels();
        auto decoder = std::make_shared<torch::nn::Module>("FPNDecoder");
        p5_ = decoder->register_module("p5", conv2d(channels[3], kPyramidChannels, 1, true));
        p4_ = decoder->register_module("p4", FpnBlock(kPyramidChannels, channels[2]));
        p3_ = decoder->register_module("p3", FpnBlock(kPyramidChannels, channels[1]));
        p2_ = decoder->register_module("p2", FpnBlock(kPyramidChannels, channels[0]));
        torch::nn::ModuleList segBlocks;
        for (int upsamples : {3, 2, 1, 0}) {
            segBlocks_.push_back(SegmentationBlock(kPyramidChannels, kSegmentationChannels, upsamples));
            segBlocks->push_back(segBlocks_.back());
        }
        decoder->register_module("seg_blocks", segBlocks);
        dropout_ = decoder->register_module("dropout", torch::nn::Dropout2d(kDropout));
        decoder_ = register_module("decoder", decoder);
        head_ = register_module("segmentation_head", models::Chain(conv2d(kSegmentationChannels, numClasses, 1, true)));
        initializeSmpDecoder(*decoder_);
        initializeSmpHead(*head_);
    }

    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        const torch::Tensor x = padToMultiple(input, 32);
        const auto features = encoder_->forward(x);
        reportStages(stages, features);
        const torch::Tensor p5 = p5_->forward(features.layers[3]);
        const torch::Tensor p4 = p4_->forward(p5, features.layers[2]);
        const torch::Tensor p3 = p3_->forward(p4, features.layers[1]);
        const torch::Tensor p2 = p2_->forward(p3, features.layers[0]);
        // Merge policy "add".
        torch::Tensor merged = torch::stack({segBlocks_[0]->forward(p5), segBlocks_[1]->forward(p4),
                                             segBlocks_[2]->forward(p3), segBlocks_[3]->forward(p2)})
                                   .sum(0);
        merged = dropout_->forward(merged);
        torch::Tensor logits = upsampleBilinear(head_->forward(merged), 4.0, true);
        logits = cropTo(logits, input.size(2), input.size(3));
        if (stages) (*stages)["decoder"] = logits;
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override { return !startsWith(name, "encoder."); }

private:
    ResNetEncoder encoder_{nullptr};
    std::shared_ptr<torch::nn::Module> decoder_;
    torch::nn::Conv2d p5_{nullptr};
    FpnBlock p4_{nullptr}, p3_{nullptr}, p2_{nullptr};
    std::vector<SegmentationBlock> segBlocks_;
    torch::nn::Dropout2d dropout_{nullptr};
    models::Chain head_{nullptr};
};

// ---------------------------------------------------------------------------------------------
// smp.DeepLabV3Plus (output stride 16, separable ASPP with rates 12/24/36)

class AsppImpl : public torch::nn::Module {
public:
    AsppImpl(std::int64_t in, std::int64_t out, const std::array<std::int64_t, 3>& rates, double dropout) {
        torch::nn::ModuleList convs;
        branches_.push_back(convBnRelu(in, out, 1));
        for (std::int64_t rate : rates)
            branches_.push_back(models::Chain(separableConv(in, out, rate, rate, false), torch::nn::BatchNorm2d(out),
                                              torch::nn::ReLU()));
        pooling_ = models::Chain(torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions({1, 1})),
                                 conv2d(in, out, 1, false), torch::nn::BatchNorm2d(out), torch::nn::ReLU());
        for (auto& branch : branches_) convs->push_back(branch);
        convs->push_back(pooling_);
        register_module("convs", convs);
        project_ = register_module("project", models::Chain(conv2d(5 * out, out, 1, false), torch::nn::BatchNorm2d(out),
                                                            torch::nn::ReLU(), torch::nn::Dropout(dropout)));
    }

    torch::Tensor forward(const torch::Tensor& x) {
        std::vector<torch::Tensor> results;
        for (auto& branch : branches_) results.push_back(branch->forward(x));
        results.push_back(
            F::interpolate(pooling_->forward(x), F::InterpolateFuncOptions()
                                                     .size(std::vector<std::int64_t>{x.size(2), x.size(3)})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(false)));
        return project_->forward(torch::cat(results, 1));
    }

private:
    std::vector<models::Chain> branches_;
    models::Chain pooling_{nullptr}, project_{nullptr};
};
TORCH_MODULE(Aspp);

class SmpDeepLabV3PlusImpl : public SegmentationModel {
public:
    static constexpr std::int64_t kDecoderChannels = 256;
    static constexpr std::int64_t kHighResChannels = 48;
    static constexpr std::int64_t kOutputStride = 16;

    SmpDeepLabV3PlusImpl(int depth, int numClasses) : SegmentationModel(numClasses) {
        encoder_ = register_module("encoder", ResNetEncoder(depth, ResNetDilation::SmpStride16));
        const auto channels = encoder_->spec().channels();
        auto decoder = std::make_shared<torch::nn::Module>("DeepLabV3PlusDecoder");
        aspp_ = decoder->register_module(
            "aspp", models::Chain(Aspp(channels[3], kDecoderChannels, std::array<std::int64_t, 3>{12, 24, 36}, 0.5),
                                  separableConv(kDecoderChannels, kDecoderChannels, 1, 1, false),
                                  torch::nn::BatchNorm2d(kDecoderChannels), torch::nn::ReLU()));
        block1_ = decoder->register_module("block1", convBnRelu(channels[0], kHighResChannels, 1));
        block2_ = decoder->register_module(
            "block2", models::Chain(separableConv(kHighResChannels + kDecoderChannels, kDecoderChannels, 1, 1, false),
                                    torch::nn::BatchNorm2d(kDecoderChannels), torch::nn::ReLU()));
        decoder_ = register_module("decoder", decoder);
        head_ = register_module("segmentation_head", models::Chain(conv2d(kDecoderChannels, numClasses, 1, true)));
        initializeSmpDecoder(*decoder_);
        initializeSmpHead(*head_);
    }

    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        const torch::Tensor x = padToMultiple(input, kOutputStride);
        const auto features = encoder_->forward(x);
        reportStages(stages, features);
        const torch::Tensor aspp = upsampleBilinear(aspp_->forward(features.layers[3]), 4.0, true);
        const torch::Tensor highRes = block1_->forward(features.layers[0]);
        const torch::Tensor fused = block2_->forward(torch::cat({aspp, highRes}, 1));
        torch::Tensor logits = upsampleBilinear(head_->forward(fused), 4.0, true);
        logits = cropTo(logits, input.size(2), input.size(3));
        if (stages) (*stages)["decoder"] = logits;
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override { return !startsWith(name, "encoder."); }

private:
    ResNetEncoder encoder_{nullptr};
    std::shared_ptr<torch::nn::Module> decoder_;
    models::Chain aspp_{nullptr}, block1_{nullptr}, block2_{nullptr}, head_{nullptr};
};

// ---------------------------------------------------------------------------------------------
// torchvision fcn_resnet50 (no aux classifier)

class FcnResNetImpl : public SegmentationModel {
public:
    FcnResNetImpl(int depth, int numClasses) : SegmentationModel(numClasses) {
        backbone_ = register_module("backbone", ResNetEncoder(depth, ResNetDilation::TorchvisionStride8));
        const std::int64_t in = backbone_->spec().channels()[3];
        const std::int64_t inter = in / 4;
        classifier_ =
            register_module("classifier", models::Chain(conv2d(in, inter, 3, false, 1), torch::nn::BatchNorm2d(inter),
                                                        torch::nn::ReLU(), torch::nn::Dropout(0.1),
                                                        conv2d(inter, numClasses, 1, true)));
    }

    // Any size: the head's output is resized (bilinear, align_corners false) to the input.
    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        const auto features = backbone_->forward(input);
        reportStages(stages, features);
        torch::Tensor logits = F::interpolate(classifier_->forward(features.layers[3]),
                                              F::InterpolateFuncOptions()
                                                  .size(std::vector<std::int64_t>{input.size(2), input.size(3)})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false));
        if (stages) (*stages)["decoder"] = logits;
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override { return startsWith(name, "classifier."); }

private:
    ResNetEncoder backbone_{nullptr};
    models::Chain classifier_{nullptr};
};

// ---------------------------------------------------------------------------------------------
// Seed U-Net/ResNet-50: torchvision resnet50 split into encoder1..5, transposed-conv decoders.

class DoubleConvImpl : public torch::nn::Module {
public:
    DoubleConvImpl(std::int64_t in, std::int64_t out)
        : doubleConv_(register_module(
              "double_conv",
              models::Chain(conv2d(in, out, 3, false, 1), torch::nn::BatchNorm2d(out), inplaceRelu(),
                            conv2d(out, out, 3, false, 1), torch::nn::BatchNorm2d(out), inplaceRelu()))) {}
    torch::Tensor forward(const torch::Tensor& x) { return doubleConv_->forward(x); }

private:
    models::Chain doubleConv_;
};
TORCH_MODULE(DoubleConv);

class SeedUnetResNetImpl : public SegmentationModel {
public:
    SeedUnetResNetImpl(int depth, int numClasses) : SegmentationModel(numClasses) {
        const models::ResNetSpec spec = models::resNetSpec(depth);
        encoder1_ = register_module(
            "encoder1", models::Chain(models::makeResNetStemConv(), torch::nn::BatchNorm2d(64), inplaceRelu()));
        std::int64_t inplanes = 64;
        encoder2_ = register_module(
            "encoder2", models::Chain(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)),
                                      models::makeResNetLayer(spec, inplanes, 64, spec.blocks[0], 1, 1, 1)));
        encoder3_ = register_module("encoder3", models::makeResNetLayer(spec, inplanes, 128, spec.blocks[1], 2, 1, 1));
        encoder4_ = register_module("encoder4", models::makeResNetLayer(spec, inplanes, 256, spec.blocks[2], 2, 1, 1));
        encoder5_ = register_module("encoder5", models::makeResNetLayer(spec, inplanes, 512, spec.blocks[3], 2, 1, 1));
        for (auto* encoder : {&encoder1_, &encoder2_, &encoder3_, &encoder4_, &encoder5_})
            models::initializeResNet(**encoder);

        const auto channels = spec.channels();
        // decoder4..decoder1: channels[3] → channels[2] → channels[1] → channels[0] → 64.
        const std::array<std::int64_t, 5> widths{channels[3], channels[2], channels[1], channels[0], 64};
        for (int i = 0; i < 4; ++i) {
            const std::int64_t in = widths[i];
            const std::int64_t out = widths[i + 1];
            up_[i] = torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 2).stride(2));
            fuse_[i] = DoubleConv(2 * out, out);
            register_module("decoder" + std::to_string(4 - i), models::Chain(up_[i], fuse_[i]));
        }
        finalConv_ = register_module("final_conv", conv2d(64, numClasses, 1, true));
    }

    torch::Tensor forwardStages(const torch::Tensor& input, StageMap* stages) override {
        // Four ×2 transposed convolutions must meet their skips exactly: stride 32 overall.
        const torch::Tensor x = padToMultiple(input, 32);
        const torch::Tensor e1 = encoder1_->forward(x);
        const torch::Tensor e2 = encoder2_->forward(e1);
        const torch::Tensor e3 = encoder3_->forward(e2);
        const torch::Tensor e4 = encoder4_->forward(e3);
        const torch::Tensor e5 = encoder5_->forward(e4);
        if (stages) {
            (*stages)["stage1"] = e2;
            (*stages)["stage2"] = e3;
            (*stages)["stage3"] = e4;
            (*stages)["stage4"] = e5;
        }
        const std::array<torch::Tensor, 4> skips{e4, e3, e2, e1};
        torch::Tensor d = e5;
        for (std::size_t i = 0; i < 4; ++i) d = fuse_[i]->forward(torch::cat({up_[i]->forward(d), skips[i]}, 1));
        torch::Tensor logits = finalConv_->forward(upsampleBilinear(d, 2.0, false));
        logits = cropTo(logits, input.size(2), input.size(3));
        if (stages) (*stages)["decoder"] = logits;
        return logits;
    }

    bool isHeadParameter(const std::string& name) const override {
        return startsWith(name, "decoder") || startsWith(name, "final_conv.");
    }

private:
    models::Chain encoder1_{nullptr}, encoder2_{nullptr}, encoder3_{nullptr}, encoder4_{nullptr}, encoder5_{nullptr};
    std::array<torch::nn::ConvTranspose2d, 4> up_{nullptr, nullptr, nullptr, nullptr};
    std::array<DoubleConv, 4> fuse_{nullptr, nullptr, nullptr, nullptr};
    torch::nn::Conv2d finalConv_{nullptr};
};

// ---------------------------------------------------------------------------------------------

enum class Naming { Smp, Torchvision, Seed };

struct CnnModel {
    const char* id;
    const char* family;
    const char* reference;
    int depth;
    Naming naming;
    std::function<std::shared_ptr<SegmentationModel>(int depth, int numClasses)> build;
};

template <typename Impl>
std::shared_ptr<SegmentationModel> make(int depth, int numClasses) {
    return std::make_shared<Impl>(depth, numClasses);
}

const std::vector<CnnModel>& cnnModels() {
    static const std::vector<CnnModel> all = {
        {"unet-resnet18", "unet",
         "segmentation_models_pytorch 0.5.0 smp.Unet(encoder_name=\"resnet18\", encoder_weights=None, classes=K)", 18,
         Naming::Smp, make<SmpUnetImpl>},
        {"unet-resnet34", "unet",
         "segmentation_models_pytorch 0.5.0 smp.Unet(encoder_name=\"resnet34\", encoder_weights=None, classes=K)", 34,
         Naming::Smp, make<SmpUnetImpl>},
        {"unet-resnet50", "unet",
         "segmentation_models_pytorch 0.5.0 smp.Unet(encoder_name=\"resnet50\", encoder_weights=None, classes=K)", 50,
         Naming::Smp, make<SmpUnetImpl>},
        {"unet-resnet101", "unet",
         "segmentation_models_pytorch 0.5.0 smp.Unet(encoder_name=\"resnet101\", encoder_weights=None, classes=K)", 101,
         Naming::Smp, make<SmpUnetImpl>},
        {"fpn-resnet50", "fpn",
         "segmentation_models_pytorch 0.5.0 smp.FPN(\"resnet50\", encoder_weights=None, classes=K)", 50, Naming::Smp,
         make<SmpFpnImpl>},
        {"deeplabv3plus-resnet50", "deeplabv3plus",
         "segmentation_models_pytorch 0.5.0 smp.DeepLabV3Plus(\"resnet50\", encoder_weights=None, classes=K)", 50,
         Naming::Smp, make<SmpDeepLabV3PlusImpl>},
        {"fcn-resnet50", "fcn",
         "torchvision 0.23 fcn_resnet50(weights=None, weights_backbone=None, num_classes=K, aux_loss=False)[\"out\"]",
         50, Naming::Torchvision, make<FcnResNetImpl>},
        {"unet-seed-resnet50", "unet",
         "seed U-Net/ResNet-50 of a SegFormer-vs-U-Net VOC comparison (torchvision resnet50 encoder1..5, "
         "ConvTranspose2d + DoubleConv decoders, final_conv)",
         50, Naming::Seed, make<SeedUnetResNetImpl>},
    };
    return all;
}

}  // namespace

void registerResNetModels(std::vector<ModelEntry>& registry) {
    for (const auto& model : cnnModels()) {
        ModelInfo info{model.id, model.family, model.reference, {"stage1", "stage2", "stage3", "stage4", "decoder"}};
        const int depth = model.depth;
        const auto build = model.build;
        registry.push_back({std::move(info), [depth, build](int numClasses) { return build(depth, numClasses); }});
    }
}

TensorMap mapPretrainedResNet(const std::string& modelId, const TensorMap& torchvision) {
    const CnnModel* model = nullptr;
    for (const auto& m : cnnModels())
        if (m.id == modelId) model = &m;
    if (!model) throw Error("'" + modelId + "' is not a ResNet-based model; no torchvision ResNet mapping");

    TensorMap mapped;
    for (const auto& [key, tensor] : torchvision) {
        if (startsWith(key, "fc.")) continue;
        const bool stem = startsWith(key, "conv1.") || startsWith(key, "bn1.");
        int layer = 0;
        for (int i = 1; i <= 4; ++i)
            if (startsWith(key, "layer" + std::to_string(i) + ".")) layer = i;
        if (!stem && layer == 0) throw Error("'" + key + "' is not a torchvision ResNet parameter");
        switch (model->naming) {
            case Naming::Smp:
                mapped["encoder." + key] = tensor;
                break;
            case Naming::Torchvision:
                mapped["backbone." + key] = tensor;
                break;
            case Naming::Seed: {
                const std::string rest = key.substr(key.find('.') + 1);
                if (stem)
                    mapped[std::string(startsWith(key, "conv1.") ? "encoder1.0." : "encoder1.1.") + rest] = tensor;
                else if (layer == 1)
                    mapped["encoder2.1." + rest] = tensor;
                else
                    mapped["encoder" + std::to_string(layer + 1) + "." + rest] = tensor;
                break;
            }
        }
    }
    return mapped;
}

}  // namespace segscope::core
