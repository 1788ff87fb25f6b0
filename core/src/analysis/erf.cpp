#include "segscope/core/analysis/erf.h"

#include "segscope/core/data/loader.h"
#include "segscope/core/error.h"
#include "segscope/core/file_output.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runtime.h"

#include <torch/autograd.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace segscope::core {

namespace {

constexpr double kHeatmapLogScale = 100.0;

// Eval mode and frozen parameters for the duration of an ERF computation; the previous state
// comes back even when an exception leaves.
class ModelStateGuard {
public:
    explicit ModelStateGuard(SegmentationModel& model) : model_(model), wasTraining_(model.is_training()) {
        for (auto& p : model_.parameters(true)) {
            parameters_.push_back(p);
            requiresGrad_.push_back(p.requires_grad());
            p.set_requires_grad(false);
        }
        model_.eval();
    }
    ~ModelStateGuard() {
        for (std::size_t i = 0; i < parameters_.size(); ++i) parameters_[i].set_requires_grad(requiresGrad_[i]);
        model_.train(wasTraining_);
    }
    ModelStateGuard(const ModelStateGuard&) = delete;
    ModelStateGuard& operator=(const ModelStateGuard&) = delete;

private:
    SegmentationModel& model_;
    bool wasTraining_;
    std::vector<torch::Tensor> parameters_;
    std::vector<bool> requiresGrad_;
};

torch::Device modelDevice(SegmentationModel& model) {
    for (const auto& p : model.parameters(true)) return p.device();
    for (const auto& b : model.buffers(true)) return b.device();
    return torch::kCPU;
}

// Inputs follow the parameters' floating type (float32 normally, float64 for a model moved to
// double), so the caller's tensor never has to match it.
torch::Dtype modelDtype(SegmentationModel& model) {
    for (const auto& p : model.parameters(true))
        if (p.is_floating_point()) return p.scalar_type();
    return torch::kFloat32;
}

std::vector<std::string> resolveStages(const SegmentationModel& model, const ErfOptions& options) {
    const std::vector<std::string> offered = model.stageNames();
    if (options.stages.empty()) return offered;
    for (const auto& s : options.stages)
        if (std::find(offered.begin(), offered.end(), s) == offered.end()) {
            std::string list;
            for (const auto& o : offered) list += (list.empty() ? "" : ", ") + o;
            throw Error("unknown stage '" + s + "' (the model offers " + list + ")");
        }
    return options.stages;
}

void checkInputs(const torch::Tensor& inputs) {
    if (!inputs.defined() || inputs.dim() != 4 || inputs.size(1) != 3 || inputs.size(0) < 1)
        throw Error("ERF input must be a (B, 3, H, W) tensor with B >= 1, got " +
                    (inputs.defined() ? std::string(c10::str(inputs.sizes())) : std::string("none")));
}

// Per-stage sums of the reduced gradient maps over images, float64 on the CPU.
struct Accumulator {
    std::vector<std::string> stages;
    std::vector<torch::Tensor> sums;
    std::int64_t images = 0;
    int height = 0;
    int width = 0;
};

// One forward of `inputs`, then one gradient per stage over the retained graph. Returns false
// (adding nothing) when cancelled between stages.
bool accumulateBatch(SegmentationModel& model, const torch::Tensor& inputs, const ErfOptions& options, Accumulator& acc,
                     const CancelToken& cancel) {
    checkInputs(inputs);
    const int height = int(inputs.size(2)), width = int(inputs.size(3));
    if (acc.sums.empty()) {
        acc.height = height;
        acc.width = width;
        for (std::size_t i = 0; i < acc.stages.size(); ++i)
            acc.sums.push_back(torch::zeros({height, width}, torch::kFloat64));
    } else if (height != acc.height || width != acc.width) {
        throw Error("ERF inputs change size within one computation");
    }
    const torch::Device device = modelDevice(model);
    torch::Tensor input = inputs.detach().to(device, modelDtype(model)).clone().set_requires_grad(true);

    StageMap stageMap;
    model.forwardStages(input, &stageMap);

    std::vector<torch::Tensor> maps;
    for (std::size_t i = 0; i < acc.stages.size(); ++i) {
        if (cancel.cancelled()) return false;
        const auto it = stageMap.find(acc.stages[i]);
        if (it == stageMap.end() || !it->second.defined() || it->second.dim() != 4)
            throw Error("the model did not report stage '" + acc.stages[i] + "' as a (B, C, h, w) tensor");
        const torch::Tensor& feature = it->second;
        const torch::Tensor centre = feature.select(2, feature.size(2) / 2).select(2, feature.size(3) / 2);
        const torch::Tensor scalar =
            options.objective == ErfObjective::ReluSum ? torch::relu(centre).sum() : centre.sum();
        torch::Tensor grad;
        if (scalar.requires_grad()) {
            // Keep the graph until the last stage has used it.
            const bool retain = i + 1 < acc.stages.size();
            grad = torch::autograd::grad({scalar}, {input}, {}, retain, false, true)[0];
        }
        if (!grad.defined()) grad = torch::zeros_like(input);
        const torch::Tensor reduced =
            options.reduction == ErfReduction::AbsSum ? grad.abs().sum(1) : torch::relu(grad).sum(1);
        maps.push_back(reduced.sum(0).to(torch::kCPU, torch::kFloat64));
    }
    for (std::size_t i = 0; i < maps.size(); ++i) acc.sums[i] += maps[i];
    acc.images += inputs.size(0);
    return true;
}

ErfResult finish(const Accumulator& acc, const ErfOptions& options, bool cancelled) {
    ErfResult result;
    result.images = acc.images;
    result.height = acc.height;
    result.width = acc.width;
    result.objective = options.objective;
    result.reduction = options.reduction;
    result.cancelled = cancelled;
    for (std::size_t i = 0; i < acc.stages.size(); ++i) {
        StageErf stage;
        stage.stage = acc.stages[i];
        if (acc.images > 0 && i < acc.sums.size())
            stage.map = (acc.sums[i] / double(acc.images)).to(torch::kFloat32).contiguous();
        else
            stage.map = torch::zeros({acc.height, acc.width}, torch::kFloat32);
        computeErfStatistics(stage);
        result.stages.push_back(std::move(stage));
    }
    return result;
}

std::string fractionKey(double fraction) {
    std::ostringstream out;
    out << fraction;
    return out.str();
}

}  // namespace

const char* erfObjectiveName(ErfObjective objective) {
    return objective == ErfObjective::ReluSum ? "relu-sum" : "sum";
}

const char* erfReductionName(ErfReduction reduction) {
    return reduction == ErfReduction::AbsSum ? "abs-sum" : "relu-sum";
}

const StageErf* ErfResult::find(const std::string& stage) const {
    for (const auto& s : stages)
        if (s.stage == stage) return &s;
    return nullptr;
}

LoadedRun untrainedRun(const Experiment& experiment, const std::string& modelId) {
    prepareDemoDataset(experiment);
    LoadedRun run;
    run.experiment = experiment;
    run.classes = experiment.model.classes
                      ? *experiment.model.classes
                      : Dataset::open(datasetSpec(experiment, experiment.dataset.valSplit))->numClasses();
    run.device = resolveDevice(experiment.runtime.device);
    torch::manual_seed(experiment.runtime.seed);
    run.model = createModel(modelId, run.classes);
    run.model->to(run.device);
    return run;
}

RunErf computeRunErf(const LoadedRun& run, std::int64_t images, const ErfOptions& options, const std::string& split,
                     const ErfProgress& progress, CancelToken cancel) {
    if (!run.model) throw Error("computeRunErf needs a run with a model");
    prepareDemoDataset(run.experiment);
    const auto dataset =
        Dataset::open(datasetSpec(run.experiment, split.empty() ? run.experiment.dataset.valSplit : split));
    const TransformConfig transform = transformConfig(run.experiment);
    RunErf erf;
    if (dataset->size() > 0) erf.sample = applyEvalTransform(dataset->load(0), transform).image;
    erf.result = computeErf(*run.model, dataset, transform, images, options, progress, cancel);
    return erf;
}

ErfResult computeErf(SegmentationModel& model, const torch::Tensor& inputs, const ErfOptions& options,
                     const ErfProgress& progress, CancelToken cancel) {
    checkInputs(inputs);
    Accumulator acc;
    acc.stages = resolveStages(model, options);
    acc.height = int(inputs.size(2));
    acc.width = int(inputs.size(3));
    ModelStateGuard guard(model);
    const bool done = accumulateBatch(model, inputs, options, acc, cancel);
    if (done && progress) progress(acc.images, inputs.size(0));
    return finish(acc, options, !done);
}

ErfResult computeErf(SegmentationModel& model, std::shared_ptr<const Dataset> dataset, const TransformConfig& transform,
                     std::int64_t images, const ErfOptions& options, const ErfProgress& progress, CancelToken cancel) {
    if (images < 1) throw Error("ERF needs at least one image, got " + std::to_string(images));
    if (options.batchSize < 1) throw Error("ERF batch size must be >= 1, got " + std::to_string(options.batchSize));
    if (!dataset || dataset->size() == 0) throw Error("ERF needs a dataset with at least one image");
    const std::int64_t total = std::min<std::int64_t>(images, std::int64_t(dataset->size()));

    LoaderOptions loaderOptions;
    loaderOptions.batchSize = std::size_t(options.batchSize);
    loaderOptions.shuffle = false;
    loaderOptions.dropLast = false;
    loaderOptions.training = false;
    loaderOptions.workers = 0;
    const BatchLoader loader(std::move(dataset), transform, loaderOptions);

    Accumulator acc;
    acc.stages = resolveStages(model, options);
    acc.height = transform.height;
    acc.width = transform.width;
    ModelStateGuard guard(model);
    bool cancelled = false;
    std::size_t batchIndex = 0;
    for (std::int64_t begin = 0; begin < total; begin += options.batchSize, ++batchIndex) {
        if (cancel.cancelled()) {
            cancelled = true;
            break;
        }
        std::vector<std::size_t> indices;
        for (std::int64_t i = begin; i < std::min<std::int64_t>(total, begin + options.batchSize); ++i)
            indices.push_back(std::size_t(i));
        const Batch batch = loader.buildBatch(indices, 0, batchIndex);
        if (!accumulateBatch(model, batch.images, options, acc, cancel)) {
            cancelled = true;
            break;
        }
        if (progress) progress(acc.images, total);
    }
    return finish(acc, options, cancelled);
}

ErfAreaRatio erfAreaRatio(const torch::Tensor& map, double fraction) {
    if (!map.defined() || map.dim() != 2) throw Error("ERF map must be 2-D");
    const torch::Tensor m = map.to(torch::kCPU, torch::kFloat64).contiguous();
    const int h = int(m.size(0)), w = int(m.size(1));
    ErfAreaRatio out;
    out.fraction = fraction;
    if (h == 0 || w == 0) return out;
    // Integral image: the mass of any clipped square in O(1).
    std::vector<double> integral(std::size_t(h + 1) * (w + 1), 0.0);
    const double* data = m.data_ptr<double>();
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            integral[std::size_t(y + 1) * (w + 1) + x + 1] =
                data[std::size_t(y) * w + x] + integral[std::size_t(y) * (w + 1) + x + 1] +
                integral[std::size_t(y + 1) * (w + 1) + x] - integral[std::size_t(y) * (w + 1) + x];
    const double total = integral.back();
    if (!(total > 0)) return out;
    const int cy = h / 2, cx = w / 2;
    const int maxRadius = std::max({cy, h - 1 - cy, cx, w - 1 - cx});
    // Summation order differs between the integral and the total; a relative slack of 1e-9
    // keeps "all of the mass" reachable.
    const double target = fraction * total * (1.0 - 1e-9);
    for (int r = 0; r <= maxRadius; ++r) {
        const int y0 = std::max(0, cy - r), y1 = std::min(h - 1, cy + r);
        const int x0 = std::max(0, cx - r), x1 = std::min(w - 1, cx + r);
        const double mass = integral[std::size_t(y1 + 1) * (w + 1) + x1 + 1] -
                            integral[std::size_t(y0) * (w + 1) + x1 + 1] -
                            integral[std::size_t(y1 + 1) * (w + 1) + x0] + integral[std::size_t(y0) * (w + 1) + x0];
        if (mass >= target || r == maxRadius) {
            out.sidePixels = 2 * r + 1;
            out.areaRatio = double(y1 - y0 + 1) * double(x1 - x0 + 1) / (double(h) * double(w));
            return out;
        }
    }
    return out;
}

double erfEffectiveRadius(const torch::Tensor& map) {
    if (!map.defined() || map.dim() != 2) throw Error("ERF map must be 2-D");
    const torch::Tensor m = map.to(torch::kCPU, torch::kFloat64);
    const std::int64_t h = m.size(0), w = m.size(1);
    const double total = m.sum().item<double>();
    if (!(total > 0)) return 0.0;
    const torch::Tensor dy = torch::arange(h, torch::kFloat64).sub(double(h / 2)).pow(2).unsqueeze(1);
    const torch::Tensor dx = torch::arange(w, torch::kFloat64).sub(double(w / 2)).pow(2).unsqueeze(0);
    return std::sqrt((m * (dy + dx)).sum().item<double>() / total);
}

void computeErfStatistics(StageErf& stage) {
    stage.areaRatios.clear();
    for (double t : erfAreaFractions()) stage.areaRatios.push_back(erfAreaRatio(stage.map, t));
    stage.effectiveRadiusPixels = erfEffectiveRadius(stage.map);
    stage.maxValue = stage.map.numel() ? stage.map.max().item<double>() : 0.0;
    stage.sum = stage.map.to(torch::kFloat64).sum().item<double>();
}

torch::Tensor erfHeatmap(const torch::Tensor& map, double logScale) {
    if (!map.defined() || map.dim() != 2) throw Error("ERF map must be 2-D");
    const torch::Tensor m = map.to(torch::kCPU, torch::kFloat64).clamp_min(0.0);
    const double maximum = m.numel() ? m.max().item<double>() : 0.0;
    if (!(maximum > 0) || !(logScale > 0)) return torch::zeros_like(m, torch::kFloat32);
    return (torch::log1p(m * (logScale / maximum)) / std::log1p(logScale)).clamp(0.0, 1.0).to(torch::kFloat32);
}

void writeErfPng(const std::filesystem::path& path, const torch::Tensor& map, double logScale) {
    const torch::Tensor heat = erfHeatmap(map, logScale).mul(255.0).round().to(torch::kUInt8).contiguous();
    const cv::Mat gray(int(heat.size(0)), int(heat.size(1)), CV_8UC1, heat.data_ptr<std::uint8_t>());
    cv::Mat colour;
    cv::applyColorMap(gray, colour, cv::COLORMAP_VIRIDIS);
    std::vector<std::uint8_t> png;
    bool encoded = false;
    try {
        encoded = cv::imencode(".png", colour, png);
    } catch (const cv::Exception& e) {
        throw FileError(path.string(), std::string("cannot encode PNG: ") + e.what());
    }
    if (!encoded) throw FileError(path.string(), "cannot encode PNG");
    // Written and checked by us (cv::imwrite reports a full disk as a bare false).
    writeFileAtomically(path, png.data(), png.size(), /*sync=*/false);
}

nlohmann::json erfSummaryJson(const ErfResult& result, const std::string& modelId) {
    nlohmann::json doc;
    doc["model"] = modelId;
    doc["images"] = result.images;
    doc["height"] = result.height;
    doc["width"] = result.width;
    doc["objective"] = erfObjectiveName(result.objective);
    doc["reduction"] = erfReductionName(result.reduction);
    doc["cancelled"] = result.cancelled;
    doc["heatmap_log_scale"] = kHeatmapLogScale;
    nlohmann::json stages = nlohmann::json::object();
    for (const auto& s : result.stages) {
        nlohmann::json ratios = nlohmann::json::object(), sides = nlohmann::json::object();
        for (const auto& a : s.areaRatios) {
            ratios[fractionKey(a.fraction)] = a.areaRatio;
            sides[fractionKey(a.fraction)] = a.sidePixels;
        }
        stages[s.stage] = {{"area_ratios", ratios},
                           {"square_sides", sides},
                           {"effective_radius_pixels", s.effectiveRadiusPixels},
                           {"max", s.maxValue},
                           {"sum", s.sum}};
    }
    doc["stages"] = stages;
    doc["stage_order"] = nlohmann::json::array();
    for (const auto& s : result.stages) doc["stage_order"].push_back(s.stage);
    return doc;
}

void saveErf(const std::filesystem::path& directory, const ErfResult& result, const std::string& modelId,
             const std::string& source) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const bool created = !fs::exists(directory, ec);
    fs::create_directories(directory, ec);
    if (ec) throw FileError(directory.string(), "cannot create folder: " + ec.message());
    const fs::path summaryPath = directory / "erf.json";
    // erf.json marks a complete folder: an earlier one goes first, so a failure below never
    // leaves it describing maps that were not written.
    fs::remove(summaryPath, ec);
    std::vector<fs::path> written;
    try {
        TensorMap maps;
        std::uint64_t mapBytes = 64 * 1024;
        for (const auto& s : result.stages) {
            maps[s.stage] = s.map.to(torch::kFloat32).contiguous();
            mapBytes += std::uint64_t(s.map.numel()) * 4;
        }
        const fs::path mapsPath = directory / "erf.safetensors";
        written.push_back(mapsPath);
        try {
            writeSafetensors(mapsPath, maps,
                             {{"model", modelId}, {"images", std::to_string(result.images)}, {"format", "erf"}});
        } catch (const FileError&) {
            rethrowAsDiskFullIfShort(mapsPath, mapBytes);
        }
        for (const auto& s : result.stages) {
            written.push_back(directory / (s.stage + ".png"));
            writeErfPng(written.back(), s.map, kHeatmapLogScale);
        }
        nlohmann::json doc = erfSummaryJson(result, modelId);
        if (!source.empty()) doc["source"] = source;
        const std::string text = doc.dump(2) + "\n";
        written.push_back(summaryPath);
        writeFileAtomically(summaryPath, text.data(), text.size(), /*sync=*/false);
    } catch (...) {
        for (const auto& path : written) fs::remove(path, ec);
        if (created) fs::remove_all(directory, ec);
        throw;
    }
}

ErfResult loadErf(const std::filesystem::path& directory) {
    const std::filesystem::path mapsPath = directory / "erf.safetensors";
    if (!std::filesystem::exists(mapsPath)) throw FileError(mapsPath.string(), "no ERF maps (erf.safetensors) here");
    TensorMap maps = readSafetensors(mapsPath);
    nlohmann::json doc;
    const std::filesystem::path summaryPath = directory / "erf.json";
    if (std::filesystem::exists(summaryPath)) {
        std::ifstream in(summaryPath, std::ios::binary);
        try {
            doc = nlohmann::json::parse(in);
        } catch (const std::exception& e) {
            throw FileError(summaryPath.string(), std::string("unreadable ERF summary: ") + e.what());
        }
    }
    std::vector<std::string> order;
    if (doc.contains("stage_order") && doc["stage_order"].is_array())
        for (const auto& name : doc["stage_order"])
            if (name.is_string() && maps.count(name.get<std::string>())) order.push_back(name.get<std::string>());
    if (order.empty())
        for (const auto& entry : maps) order.push_back(entry.first);
    ErfResult result;
    for (const auto& name : order) {
        StageErf stage;
        stage.stage = name;
        stage.map = maps.at(name).to(torch::kCPU, torch::kFloat32).contiguous();
        if (stage.map.dim() != 2) throw FileError(mapsPath.string(), "ERF map '" + name + "' is not 2-D");
        computeErfStatistics(stage);
        result.height = int(stage.map.size(0));
        result.width = int(stage.map.size(1));
        result.stages.push_back(std::move(stage));
    }
    result.images = doc.value("images", std::int64_t(0));
    result.cancelled = doc.value("cancelled", false);
    if (doc.value("objective", std::string()) == erfObjectiveName(ErfObjective::Sum))
        result.objective = ErfObjective::Sum;
    if (doc.value("reduction", std::string()) == erfReductionName(ErfReduction::ReluSum))
        result.reduction = ErfReduction::ReluSum;
    return result;
}

std::string erfSnapshotName(int epoch, std::int64_t step) {
    char name[64];
    std::snprintf(name, sizeof name, "epoch-%04d-step-%08lld", epoch, static_cast<long long>(step));
    return name;
}

std::vector<ErfSnapshot> listErfSnapshots(const std::filesystem::path& runFolder) {
    std::vector<ErfSnapshot> snapshots;
    std::error_code ec;
    const std::filesystem::path root = runFolder / "erf";
    if (!std::filesystem::is_directory(root, ec)) return snapshots;
    for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
        int epoch = 0;
        long long step = 0;
        char tail = 0;
        const std::string name = entry.path().filename().string();
        if (std::sscanf(name.c_str(), "epoch-%d-step-%lld%c", &epoch, &step, &tail) != 2) continue;
        // erf.json is written last: a snapshot without it was cut off.
        if (!std::filesystem::exists(entry.path() / "erf.json", ec)) continue;
        snapshots.push_back({epoch, step, entry.path()});
    }
    std::sort(snapshots.begin(), snapshots.end(), [](const ErfSnapshot& a, const ErfSnapshot& b) {
        return a.step != b.step ? a.step < b.step : a.epoch < b.epoch;
    });
    return snapshots;
}

}  // namespace segscope::core
