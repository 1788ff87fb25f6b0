#include "resnet.h"

#include "segscope/core/error.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/init.h>

#include <string>

namespace segscope::core::models {

namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride = 1,
                       std::int64_t dilation = 1) {
    const std::int64_t padding = kernel == 1 ? 0 : dilation;
    return torch::nn::Conv2d(
        torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).dilation(dilation).bias(false));
}

// conv1x1 + BN, when a block changes stride or width.
torch::nn::Sequential downsample(std::int64_t in, std::int64_t out, std::int64_t stride) {
    return torch::nn::Sequential(conv(in, out, 1, stride), torch::nn::BatchNorm2d(out));
}

class BasicBlockImpl : public torch::nn::Module {
public:
    BasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, std::int64_t dilation,
                   torch::nn::Sequential down)
        : conv1_(register_module("conv1", conv(inplanes, planes, 3, stride, dilation))),
          bn1_(register_module("bn1", torch::nn::BatchNorm2d(planes))),
          conv2_(register_module("conv2", conv(planes, planes, 3, 1, dilation))),
          bn2_(register_module("bn2", torch::nn::BatchNorm2d(planes))) {
        if (down) downsample_ = register_module("downsample", std::move(down));
    }

    torch::Tensor forward(const torch::Tensor& x) {
        // In place, as torchvision's blocks (ReLU(inplace=True), out += identity): each
        // out-of-place ReLU or add allocated and first-touched a fresh activation-sized buffer.
        torch::Tensor out = bn1_(conv1_(x)).relu_();
        out = bn2_(conv2_(out));
        out += downsample_ ? downsample_->forward(x) : x;
        return out.relu_();
    }

private:
    // Declared in registration order (the reference's state_dict order).
    torch::nn::Conv2d conv1_;
    torch::nn::BatchNorm2d bn1_;
    torch::nn::Conv2d conv2_;
    torch::nn::BatchNorm2d bn2_;
    torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public torch::nn::Module {
public:
    static constexpr std::int64_t expansion = 4;

    BottleneckImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, std::int64_t dilation,
                   torch::nn::Sequential down)
        : conv1_(register_module("conv1", conv(inplanes, planes, 1))),
          bn1_(register_module("bn1", torch::nn::BatchNorm2d(planes))),
          conv2_(register_module("conv2", conv(planes, planes, 3, stride, dilation))),
          bn2_(register_module("bn2", torch::nn::BatchNorm2d(planes))),
          conv3_(register_module("conv3", conv(planes, planes * expansion, 1))),
          bn3_(register_module("bn3", torch::nn::BatchNorm2d(planes * expansion))) {
        if (down) downsample_ = register_module("downsample", std::move(down));
    }

    torch::Tensor forward(const torch::Tensor& x) {
        torch::Tensor out = bn1_(conv1_(x)).relu_();
        out = bn2_(conv2_(out)).relu_();
        out = bn3_(conv3_(out));
        out += downsample_ ? downsample_->forward(x) : x;
        return out.relu_();
    }

private:
    torch::nn::Conv2d conv1_;
    torch::nn::BatchNorm2d bn1_;
    torch::nn::Conv2d conv2_;
    torch::nn::BatchNorm2d bn2_;
    torch::nn::Conv2d conv3_;
    torch::nn::BatchNorm2d bn3_;
    torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Bottleneck);

}  // namespace

std::array<std::int64_t, 4> ResNetSpec::channels() const {
    const std::int64_t expansion = bottleneck ? BottleneckImpl::expansion : 1;
    return {64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion};
}

ResNetSpec resNetSpec(int depth) {
    switch (depth) {
        case 18:
            return {18, false, {2, 2, 2, 2}};
        case 34:
            return {34, false, {3, 4, 6, 3}};
        case 50:
            return {50, true, {3, 4, 6, 3}};
        case 101:
            return {101, true, {3, 4, 23, 3}};
        default:
            throw Error("unsupported ResNet depth " + std::to_string(depth) + " (18, 34, 50 or 101)");
    }
}

Chain makeResNetLayer(const ResNetSpec& spec, std::int64_t& inplanes, std::int64_t planes, std::int64_t blocks,
                      std::int64_t stride, std::int64_t firstDilation, std::int64_t dilation) {
    const std::int64_t expansion = spec.bottleneck ? BottleneckImpl::expansion : 1;
    Chain layer;
    torch::nn::Sequential down{nullptr};
    if (stride != 1 || inplanes != planes * expansion) down = downsample(inplanes, planes * expansion, stride);
    for (std::int64_t i = 0; i < blocks; ++i) {
        const std::int64_t blockStride = i == 0 ? stride : 1;
        const std::int64_t blockDilation = i == 0 ? firstDilation : dilation;
        torch::nn::Sequential blockDown = i == 0 ? down : torch::nn::Sequential{nullptr};
        if (spec.bottleneck)
            layer->push_back(Bottleneck(inplanes, planes, blockStride, blockDilation, blockDown));
        else
            layer->push_back(BasicBlock(inplanes, planes, blockStride, blockDilation, blockDown));
        inplanes = planes * expansion;
    }
    return layer;
}

void initializeResNet(torch::nn::Module& module) {
    torch::NoGradGuard noGrad;
    for (auto& child : module.modules(/*include_self=*/false)) {
        if (auto* c = child->as<torch::nn::Conv2d>()) {
            torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
        } else if (auto* bn = child->as<torch::nn::BatchNorm2d>()) {
            torch::nn::init::ones_(bn->weight);
            torch::nn::init::zeros_(bn->bias);
        }
    }
}

torch::nn::Conv2d makeResNetStemConv() {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false));
}

ResNetEncoderImpl::ResNetEncoderImpl(int depth, ResNetDilation dilation) : spec_(resNetSpec(depth)) {
    conv1_ = register_module("conv1", makeResNetStemConv());
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
    // (stride, first-block dilation, dilation) per layer.
    std::array<std::array<std::int64_t, 3>, 4> plan{{{1, 1, 1}, {2, 1, 1}, {2, 1, 1}, {2, 1, 1}}};
    if (dilation == ResNetDilation::TorchvisionStride8) {
        plan[2] = {1, 1, 2};
        plan[3] = {1, 2, 4};
    } else if (dilation == ResNetDilation::SmpStride16) {
        plan[3] = {1, 2, 2};
    }
    std::int64_t inplanes = 64;
    const std::array<std::int64_t, 4> planes{64, 128, 256, 512};
    for (std::size_t i = 0; i < 4; ++i) {
        layers_[i] = register_module(
            "layer" + std::to_string(i + 1),
            makeResNetLayer(spec_, inplanes, planes[i], spec_.blocks[i], plan[i][0], plan[i][1], plan[i][2]));
    }
    initializeResNet(*this);
}

ResNetEncoderImpl::Features ResNetEncoderImpl::forward(const torch::Tensor& input) {
    Features features;
    features.stem = bn1_(conv1_(input)).relu_();
    torch::Tensor x = F::max_pool2d(features.stem, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
    for (std::size_t i = 0; i < 4; ++i) {
        x = layers_[i]->forward(x);
        features.layers[i] = x;
    }
    return features;
}

}  // namespace segscope::core::models
