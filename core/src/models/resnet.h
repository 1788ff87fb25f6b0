#pragma once
// Internal: torchvision's ResNet (v1.5: stride on the 3x3 convolution of a bottleneck) as an
// encoder, with torchvision's module names (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, …),
// so a torchvision ImageNet checkpoint loads into it by renaming prefixes only.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <vector>

namespace segscope::core::models {

// A Sequential with a plain Tensor → Tensor forward, so it can nest inside another Sequential
// (nn::Sequential's templated forward cannot); names its children "0", "1", … like Sequential.
class ChainImpl : public torch::nn::SequentialImpl {
public:
    using SequentialImpl::SequentialImpl;
    torch::Tensor forward(const torch::Tensor& x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(Chain);

// Depth 18 and 34 use basic blocks, 50 and 101 bottlenecks (expansion 4).
struct ResNetSpec {
    int depth = 50;
    bool bottleneck = true;
    std::array<std::int64_t, 4> blocks{3, 4, 6, 3};
    // Output channels of layer1..layer4.
    std::array<std::int64_t, 4> channels() const;
};
// Throws Error for a depth other than 18, 34, 50 or 101.
ResNetSpec resNetSpec(int depth);

// How layer3/layer4 trade their stride for dilation.
enum class ResNetDilation {
    // Strides 4, 8, 16, 32 for layer1..layer4.
    None,
    // torchvision replace_stride_with_dilation=[False, True, True]: layer3 and layer4 keep
    // stride 8; a layer's first block uses the previous dilation, the rest 2 (layer3) and 4 (layer4).
    TorchvisionStride8,
    // segmentation_models_pytorch make_dilated(output_stride=16): layer4 keeps stride 16 and every
    // convolution in it, first block included, has dilation 2.
    SmpStride16,
};

// torchvision's `_make_layer`: a Sequential of blocks named "0", "1", …; `inplanes` is updated to
// the layer's output channels. `firstDilation` applies to block 0's 3x3 convolution, `dilation`
// to the others.
Chain makeResNetLayer(const ResNetSpec& spec, std::int64_t& inplanes, std::int64_t planes, std::int64_t blocks,
                      std::int64_t stride, std::int64_t firstDilation, std::int64_t dilation);

// torchvision's initialisation: kaiming_normal_(fan_out, relu) for convolutions, BN weight 1 and
// bias 0, applied to every convolution/BN below `module` (not `module` itself: it may not be owned
// by a shared_ptr yet).
void initializeResNet(torch::nn::Module& module);

// The stem (conv1, bn1, relu, maxpool) and layer1..layer4, without avgpool/fc.
class ResNetEncoderImpl : public torch::nn::Module {
public:
    ResNetEncoderImpl(int depth, ResNetDilation dilation);

    struct Features {
        torch::Tensor stem;                   // after conv1/bn1/relu, stride 2, 64 channels
        std::array<torch::Tensor, 4> layers;  // layer1..layer4
    };
    Features forward(const torch::Tensor& input);

    const ResNetSpec& spec() const { return spec_; }

private:
    ResNetSpec spec_;
    torch::nn::Conv2d conv1_{nullptr};
    torch::nn::BatchNorm2d bn1_{nullptr};
    std::array<Chain, 4> layers_{Chain{nullptr}, Chain{nullptr}, Chain{nullptr}, Chain{nullptr}};
};
TORCH_MODULE(ResNetEncoder);

// torchvision's stem: 7x7/2 convolution without bias, and its BN.
torch::nn::Conv2d makeResNetStemConv();

}  // namespace segscope::core::models
