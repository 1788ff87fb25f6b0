#include "segscope/core/models/pretrained.h"

#include "segscope/core/error.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/segformer_naming.h"

#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <sstream>

namespace segscope::core {

namespace {

bool startsWith(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

std::string shapeString(const torch::Tensor& t) {
    return c10::str(t.sizes());
}

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
        throw Error("timm ViT checkpoint does not fit '" + modelId + "': patch embedding " + shapeString(proj->second) +
                    " (dim, 3, patch, patch), the model's is " + shapeString(targetProj));
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
    if (family == "segformer") return toSegScopeSegFormerNames(checkpoint);
    return checkpoint;
}

namespace {

std::string firstNames(const std::vector<std::string>& names, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < count; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > count) out += ", ... (" + std::to_string(names.size() - count) + " more)";
    return out;
}

// "name: file [a] vs model [b]" -> "name"
std::string skippedName(const std::string& entry) {
    return entry.substr(0, entry.find(": "));
}

std::string expectedCheckpoints(const std::string& modelId) {
    const ModelEntry* entry = findModel(modelId);
    const std::string family = entry ? entry->info.family : "";
    if (family == "segformer")
        return "an HF SegFormer or MiT checkpoint of the same size (transformers 4.x or 5.x names, e.g. nvidia/mit-" +
               modelId.substr(modelId.size() - 2) + "), or a SegScope export of " + modelId;
    if (family == "segmenter" || family == "setr")
        return "a timm ViT checkpoint of the same width and patch size, or a SegScope export of " + modelId;
    return "a torchvision ResNet ImageNet checkpoint of the same depth, or a full checkpoint of " + modelId +
           " in its reference names (a SegScope export)";
}

template <typename F>
auto namingTheFile(const std::filesystem::path& path, F&& f) {
    try {
        return f();
    } catch (const FileError&) {
        throw;
    } catch (const Error& e) {
        throw FileError(path.string(), e.what());
    }
}

}  // namespace

std::string describeCheckpoint(const TensorMap& checkpoint) {
    if (checkpoint.empty()) return "no tensors";
    if (checkpoint.count("conv1.weight") && checkpoint.count("layer1.0.conv1.weight"))
        return "torchvision ResNet names (an ImageNet backbone: conv1, layer1-4, fc)";
    if (checkpoint.count("patch_embed.proj.weight") && checkpoint.count("pos_embed"))
        return "timm ViT names (patch_embed, pos_embed, blocks)";
    const SegFormerLayout layout = detectSegFormerLayout(checkpoint);
    if (layout.naming) return layout.describe();
    std::set<std::string> top;
    std::vector<std::string> keys;
    for (const auto& [key, value] : checkpoint) {
        top.insert(key.substr(0, key.find('.')));
        keys.push_back(key);
    }
    std::string prefixes;
    std::size_t n = 0;
    for (const auto& p : top) {
        if (n++ == 6) {
            prefixes += ", ...";
            break;
        }
        prefixes += (prefixes.empty() ? "" : ", ") + p;
    }
    return std::to_string(checkpoint.size()) + " tensors under " + prefixes + " (first: " + firstNames(keys, 3) + ")";
}

LoadReport loadWeightsForModel(SegmentationModel& model, const std::string& modelId, const std::filesystem::path& path,
                               bool allowPartial) {
    const TensorMap checkpoint = readWeightsFile(path);
    const LoadReport report =
        namingTheFile(path, [&] { return loadStateDict(model, mapPretrained(modelId, checkpoint)); });
    if (!allowPartial && !report.complete())
        throw FileError(path.string(), "does not fit " + modelId + " with " + std::to_string(model.numClasses()) +
                                           " classes: " + report.summary() + "\n  the file has " +
                                           describeCheckpoint(checkpoint) +
                                           "\n  give weights of this model (e.g. segscope-cli export of a run of it), "
                                           "or --allow-partial to load only what matches");
    return report;
}

std::string loadPretrainedStart(SegmentationModel& model, const std::string& modelId, const std::filesystem::path& path,
                                bool strict) {
    const TensorMap checkpoint = readWeightsFile(path);
    const LoadReport report =
        namingTheFile(path, [&] { return loadStateDict(model, mapPretrained(modelId, checkpoint)); });
    std::vector<std::string> encoderMissing, encoderShape, headMissing, headShape;
    for (const auto& name : report.missing)
        (model.isHeadParameter(name) ? headMissing : encoderMissing).push_back(name);
    for (const auto& entry : report.skippedShape)
        (model.isHeadParameter(skippedName(entry)) ? headShape : encoderShape).push_back(entry);
    std::size_t encoderTotal = 0;
    for (const auto& [name, value] : stateDict(model)) encoderTotal += model.isHeadParameter(name) ? 0 : 1;
    if (report.loaded.empty() || !encoderMissing.empty() || !encoderShape.empty()) {
        std::ostringstream message;
        const std::size_t unloaded = report.loaded.empty() ? encoderTotal : encoderMissing.size() + encoderShape.size();
        message << "refusing a pretrained start that leaves " << unloaded << " of " << encoderTotal
                << " encoder tensors of " << modelId << " unloaded (" << report.loaded.size() << " of the file's "
                << checkpoint.size() << " tensors fit)";
        if (!encoderMissing.empty()) message << "\n  not in the file: " << firstNames(encoderMissing, 5);
        if (!encoderShape.empty()) message << "\n  other shape: " << firstNames(encoderShape, 3);
        if (!report.unexpected.empty())
            message << "\n  file tensors the model lacks: " << firstNames(report.unexpected, 5);
        message << "\n  the file has " << describeCheckpoint(checkpoint) << "\n  give " << expectedCheckpoints(modelId)
                << ", or remove model.pretrained to train from scratch";
        throw FileError(path.string(), message.str());
    }
    if (strict && !report.unexpected.empty())
        throw FileError(path.string(), "pretrained_strict: the file has " + std::to_string(report.unexpected.size()) +
                                           " tensors " + modelId + " does not: " + firstNames(report.unexpected, 8) +
                                           "; set model.pretrained_strict to false to ignore them");
    std::ostringstream log;
    log << "pretrained weights " << path.string() << " (" << describeCheckpoint(checkpoint)
        << "): " << report.loaded.size() << " loaded; all " << encoderTotal << " encoder tensors loaded";
    if (!headMissing.empty())
        log << "\n  outside the encoder, not in the file (left at their initialisation): "
            << firstNames(headMissing, 8);
    if (!headShape.empty())
        log << "\n  outside the encoder, other shape (the class count differs?), left at their initialisation: "
            << firstNames(headShape, 4);
    if (!report.unexpected.empty())
        log << "\n  in the file but not in the model, ignored: " << firstNames(report.unexpected, 8);
    return log.str();
}

}  // namespace segscope::core
