#pragma once
// Small pieces shared by the transformer families (SegFormer, Segmenter, SETR). Internal to the
// core: not installed, not part of the public API.
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace segscope::core::detail {

// Stochastic depth (Huang et al. 2016) as timm and HF apply it: in training, each sample's
// residual branch is zeroed with probability `dropProbability` and the survivors are scaled by
// 1 / (1 - dropProbability). Identity in eval mode or for a zero rate.
inline torch::Tensor dropPath(const torch::Tensor& x, double dropProbability, bool training) {
    if (!training || dropProbability <= 0.0) return x;
    const double keep = 1.0 - dropProbability;
    std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
    shape[0] = x.size(0);
    auto mask = torch::empty(shape, x.options()).bernoulli_(keep);
    return x * mask.div_(keep);
}

// Rates rising linearly from 0 to `maxRate` over `count` blocks (torch.linspace(0, maxRate, count)).
inline std::vector<double> linearDropPathRates(double maxRate, std::int64_t count) {
    std::vector<double> rates;
    auto values = torch::linspace(0.0, maxRate, count, torch::kFloat64);
    for (std::int64_t i = 0; i < count; ++i) rates.push_back(values[i].item<double>());
    return rates;
}

// (B, N, C) tokens of a row-major h x w grid -> (B, C, h, w).
inline torch::Tensor tokensToGrid(const torch::Tensor& tokens, std::int64_t height, std::int64_t width) {
    return tokens.transpose(1, 2).reshape({tokens.size(0), tokens.size(2), height, width});
}

// (B, C, h, w) -> (B, h*w, C).
inline torch::Tensor gridToTokens(const torch::Tensor& grid) {
    return grid.flatten(2).transpose(1, 2);
}

// Initialisations the references use: N(0, std), or N(0, std) truncated to [-2, 2] as
// timm's trunc_normal_ does (inverse-CDF sampling, like torch.nn.init.trunc_normal_).
inline void normalInit(const torch::Tensor& weight, double std) {
    torch::NoGradGuard noGrad;
    weight.normal_(0.0, std);
}
inline void truncatedNormalInit(const torch::Tensor& weight, double std, double low = -2.0, double high = 2.0) {
    torch::NoGradGuard noGrad;
    // Bounds many standard deviations out (timm's +-2 with std 0.02 are 100 std) cut off no
    // measurable mass: sample N(0, std) directly, which is several times cheaper than erfinv.
    if (-low / std > 12.0 && high / std > 12.0) {
        weight.normal_(0.0, std).clamp_(low, high);
        return;
    }
    const auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
    const double lowCdf = cdf(low / std);
    const double highCdf = cdf(high / std);
    weight.uniform_(2.0 * lowCdf - 1.0, 2.0 * highCdf - 1.0);
    weight.erfinv_().mul_(std * std::sqrt(2.0)).clamp_(low, high);
}

inline torch::nn::LayerNorm layerNorm(std::int64_t dim, double eps) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

}  // namespace segscope::core::detail
