#include "segscope/core/models/pretrained.h"

#include "segscope/core/error.h"
#include "segscope/core/models/registry.h"

#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <cmath>

namespace segscope::core {

namespace {

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string shapeString(const torch::Tensor& t) { return c10::str(t.sizes()); }

// A square grid side from a token count, or -1.
std::int64_t squareSide(std::int64_t tokens) {
    const auto side = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
    return side * side == tokens ? side : -1;
}

}  // namespace

TensorMap mapPretrainedVit(const std::string& modelId, const TensorMap& timm) {
    const ModelEntry* entry = findModel(modelId);
    if (!entry) throw Error("unknown model '" + modelId + "'");
    const std::string& family = entry->info.family;
    if (family != "segmenter" && family != "setr")
        throw Error("a timm ViT checkpoint fits Segmenter and SETR models, not '" + modelId + "'");
    const std::string prefix = family == "segmenter" ? "encoder." : "backbone.";
    const bool keepNorm = family == "segmenter";  // mmseg's SETR backbone has no final norm

    // The target shapes come from the model itself (one class is enough: the encoder does not
    // depend on the class count), so the ViT sizes live in one place.
    torch::NoGradGuard noGrad;
    const TensorMap target = stateDict(*entry->create(1));
    const auto& targetProj = target.at(prefix + "patch_embed.proj.weight");
    const auto& targetPos = target.at(prefix + "pos_embed");

    const auto proj = timm.find("patch_embed.proj.weight");
    const auto pos = timm.find("pos_embed");
    if (proj == timm.end() || pos == timm.end())
        throw Error("not a timm ViT checkpoint: it lacks patch_embed.proj.weight or pos_embed");
    if (proj->second.sizes() != targetProj.sizes())
        throw Error("timm ViT checkpoint does not fit '" + modelId + "': patch embedding " +
                    shapeString(proj->second) + " (dim, 3, patch, patch), the model's is " + shapeString(targetProj));
    const auto dim = targetPos.size(2);
    const torch::Tensor& source = pos->second;
    const std::int64_t sourceSide = source.dim() == 3 ? squareSide(source.size(1) - 1) : -1;
    if (source.dim() != 3 || source.size(0) != 1 || source.size(2) != dim || sourceSide < 1)
        throw Error("timm ViT checkpoint does not fit '" + modelId + "': pos_embed " + shapeString(source) +
                    " is not (1, 1 + n*n, " + std::to_string(dim) + ") with a cls position");
    const std::int64_t targetSide = squareSide(targetPos.size(1) - 1);

    TensorMap mapped;
    for (const auto& [key, value] : timm) {
        if (startsWith(key, "head.") || startsWith(key, "fc_norm.")) continue;  // the classifier
        if (!keepNorm && startsWith(key, "norm.")) continue;
        if (key == "pos_embed") continue;
        mapped.emplace(prefix + key, value);
    }
    // Same resize as the model's own forward at other input sizes:
    // bilinear, align_corners=false, on the grid positions only; the cls position is kept.
    torch::Tensor resized = source;
    if (sourceSide != targetSide) {
        namespace F = torch::nn::functional;
        const auto cls = source.narrow(1, 0, 1);
        auto grid = source.narrow(1, 1, sourceSide * sourceSide)
                        .reshape({1, sourceSide, sourceSide, dim})
                        .permute({0, 3, 1, 2})
                        .to(torch::kFloat32);
        grid = F::interpolate(grid, F::InterpolateFuncOptions()
                                        .size(std::vector<std::int64_t>{targetSide, targetSide})
                                        .mode(torch::kBilinear)
                                        .align_corners(false));
        grid = grid.permute({0, 2, 3, 1}).reshape({1, targetSide * targetSide, dim}).to(source.scalar_type());
        resized = torch::cat({cls, grid}, 1);
    }
    mapped.emplace(prefix + "pos_embed", resized);
    return mapped;
}

TensorMap mapPretrained(const std::string& modelId, const TensorMap& checkpoint) {
    const ModelEntry* entry = findModel(modelId);
    if (!entry) throw Error("unknown model '" + modelId + "'");
    const std::string& family = entry->info.family;
    const bool resnetBased = family == "unet" || family == "fpn" || family == "deeplabv3plus" || family == "fcn";
    if (resnetBased && checkpoint.count("layer1.0.conv1.weight") && checkpoint.count("conv1.weight"))
        return mapPretrainedResNet(modelId, checkpoint);
    if ((family == "segmenter" || family == "setr") && checkpoint.count("patch_embed.proj.weight") &&
        checkpoint.count("pos_embed"))
        return mapPretrainedVit(modelId, checkpoint);
    if (family == "segformer") {
        TensorMap mapped;
        for (const auto& [key, value] : checkpoint)
            if (key.rfind("classifier.", 0) != 0) mapped.emplace(key, value);
        return mapped;
    }
    return checkpoint;
}

} // namespace segscope::core
