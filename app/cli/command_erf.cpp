// segscope-cli erf: effective receptive fields of a model's stages (docs/erf.md).
#include "commands.h"

#include "segscope/core/analysis/erf.h"
#include "segscope/core/experiment.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/training_parts.h"
#include "segscope/core/models/weights.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <atomic>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <optional>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

std::atomic<bool> interrupted{false};
extern "C" void onErfInterrupt(int) { interrupted = true; }

int positiveInteger(const Arguments& args, const std::string& name, long fallback) {
    const long value = args.integer(name, fallback);
    if (value < 1) throw UsageError("--" + name + " must be >= 1, got " + std::to_string(value));
    return int(value);
}

int parseSize(const std::string& text, const char* what) {
    try {
        std::size_t used = 0;
        const int value = std::stoi(text, &used);
        if (used == text.size() && value >= 1) return value;
    } catch (const std::exception&) {
    }
    throw UsageError(std::string("--size expects two positive integers (H W), got ") + what + " '" + text + "'");
}

void printTable(const core::ErfResult& result) {
    std::cout << std::left << std::setw(10) << "stage";
    for (double t : core::erfAreaFractions()) std::cout << std::right << std::setw(10) << ("area@" + std::to_string(int(t * 100 + 0.5)) + "%");
    std::cout << std::setw(12) << "radius_px" << std::setw(14) << "max" << std::setw(14) << "sum" << "\n";
    for (const auto& s : result.stages) {
        std::cout << std::left << std::setw(10) << s.stage << std::right << std::fixed << std::setprecision(4);
        for (const auto& a : s.areaRatios) std::cout << std::setw(10) << a.areaRatio;
        std::cout << std::setw(12) << std::setprecision(2) << s.effectiveRadiusPixels << std::scientific
                  << std::setprecision(3) << std::setw(14) << s.maxValue << std::setw(14) << s.sum << std::fixed
                  << "\n";
    }
}

} // namespace

int commandErf(const Arguments& args) {
    args.allowOnly({"run", "workspace", "checkpoint", "model", "classes", "weights", "seed", "config", "images",
                    "input", "split", "size", "out", "json", "batch-size", "stages", "objective", "reduction",
                    "device", "allow-partial"});
    const bool fromRun = args.has("run");
    if (fromRun == args.has("model")) throw UsageError("erf needs exactly one of --run and --model");
    if (args.has("input") && args.has("images")) throw UsageError("--input and --images exclude each other");
    if (fromRun && (args.has("classes") || args.has("weights") || args.has("config")))
        throw UsageError("--classes, --weights and --config go with --model, not --run");
    if (!fromRun && (args.has("workspace") || args.has("checkpoint")))
        throw UsageError("--workspace and --checkpoint go with --run");
    const std::filesystem::path outDir = args.required("out");
    const bool json = args.has("json");

    core::ErfOptions options;
    options.batchSize = positiveInteger(args, "batch-size", 4);
    if (auto objective = args.value("objective")) {
        if (*objective == "relu-sum") options.objective = core::ErfObjective::ReluSum;
        else if (*objective == "sum") options.objective = core::ErfObjective::Sum;
        else throw UsageError("--objective is relu-sum or sum, got '" + *objective + "'");
    }
    if (auto reduction = args.value("reduction")) {
        if (*reduction == "abs-sum") options.reduction = core::ErfReduction::AbsSum;
        else if (*reduction == "relu-sum") options.reduction = core::ErfReduction::ReluSum;
        else throw UsageError("--reduction is abs-sum or relu-sum, got '" + *reduction + "'");
    }
    if (auto stages = args.value("stages")) {
        std::string item;
        for (char c : *stages + ",") {
            if (c == ',') {
                if (!item.empty()) options.stages.push_back(item);
                item.clear();
            } else {
                item += c;
            }
        }
    }
    std::optional<std::pair<int, int>> size;
    if (args.has("size")) {
        const auto& values = args.all("size");
        size = {parseSize(values[values.size() - 2], "H"), parseSize(values.back(), "W")};
    }

    // The model, its weights, and the experiment that names the dataset (when there is one).
    std::string modelId;
    std::shared_ptr<core::SegmentationModel> model;
    std::optional<core::Experiment> experiment;
    std::string source;
    std::string deviceName = args.value("device").value_or("auto");
    if (fromRun) {
        const std::string runId = *args.value("run");
        const std::filesystem::path workspace = args.value("workspace").value_or(core::defaultWorkspace().string());
        const auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
        const auto run = store->run(runId);
        if (!run) throw core::Error("no run '" + runId + "' in workspace " + workspace.string());
        experiment = core::parseExperiment(nlohmann::json::parse(run->experimentJson));
        modelId = experiment->model.id;
        // The core's resolver: "best" is the checkpoint of the best evaluation's step (evaluations
        // may run per iteration, so epochs do not identify them).
        const std::filesystem::path weightsPath =
            core::resolveCheckpoint(*store, runId, args.value("checkpoint").value_or("best"));
        std::map<std::string, std::string> metadata;
        const core::TensorMap weights = core::readSafetensors(weightsPath, &metadata);
        int classes = 0;
        if (auto it = metadata.find("classes"); it != metadata.end()) classes = std::stoi(it->second);
        else if (experiment->model.classes) classes = *experiment->model.classes;
        else {
            core::prepareDemoDataset(*experiment);
            classes = core::Dataset::open(core::datasetSpec(*experiment, experiment->dataset.trainSplit))->numClasses();
        }
        model = core::createModel(modelId, classes);
        core::LoadOptions load;
        load.strict = true;
        core::loadStateDict(*model, weights, load);
        source = "run " + runId + ", " + weightsPath.string();
        if (!args.has("device")) deviceName = experiment->runtime.device;
    } else {
        modelId = *args.value("model");
        if (!args.has("classes")) throw UsageError("--model needs --classes K");
        const int classes = positiveInteger(args, "classes", 1);
        torch::manual_seed(std::uint64_t(args.integer("seed", 0)));
        model = core::createModel(modelId, classes);
        if (auto weightsFile = args.value("weights")) {
            const core::LoadReport report =
                core::loadWeightsForModel(*model, modelId, *weightsFile, args.has("allow-partial"));
            if (!json) std::cerr << "weights " << *weightsFile << ": " << report.summary() << std::endl;
            source = *weightsFile;
        } else {
            source = "untrained (seed " + std::to_string(args.integer("seed", 0)) + ")";
        }
        if (auto config = args.value("config")) experiment = core::loadExperiment(*config);
    }
    const torch::Device device = core::resolveDevice(deviceName);
    model->to(device);

    interrupted = false;
    std::signal(SIGINT, onErfInterrupt);
    std::signal(SIGTERM, onErfInterrupt);
    const auto progress = [json](std::int64_t done, std::int64_t total) {
        if (!json) std::cerr << "erf: " << done << "/" << total << " images" << std::endl;
    };
    core::ErfResult result;
    if (auto inputPath = args.value("input")) {
        const core::TensorMap tensors = core::readSafetensors(*inputPath);
        const auto it = tensors.find("input");
        if (it == tensors.end()) throw core::FileError(*inputPath, "no tensor named 'input'");
        if (it->second.dim() != 4 || it->second.size(1) != 3)
            throw core::FileError(*inputPath, "'input' must be (B, 3, H, W)");
        torch::Tensor input = it->second.to(torch::kFloat32);
        if (size) input = torch::nn::functional::interpolate(
                      input, torch::nn::functional::InterpolateFuncOptions()
                                  .size(std::vector<std::int64_t>{size->first, size->second})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
        result = core::computeErf(*model, input, options, progress, &interrupted);
        source += "; input " + *inputPath;
    } else {
        if (!experiment) {
            // No dataset named: the built-in demo, as a demo experiment would use it.
            core::Experiment demo;
            demo.dataset.kind = core::DataSource::Demo;
            demo.model.id = modelId;
            experiment = demo;
        }
        core::prepareDemoDataset(*experiment);
        const std::string split = args.value("split").value_or(experiment->dataset.valSplit);
        const auto dataset = core::Dataset::open(core::datasetSpec(*experiment, split));
        core::TransformConfig transform = core::transformConfig(*experiment);
        if (size) {
            transform.height = size->first;
            transform.width = size->second;
        }
        const int images = positiveInteger(args, "images", 100);
        result = core::computeErf(*model, dataset, transform, images, options, progress, &interrupted);
        source += "; " + std::string(core::dataSourceName(experiment->dataset.kind)) + ":" +
                  core::datasetRoot(*experiment).string() + " split " + split;
    }
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);

    core::saveErf(outDir, result, modelId, source);
    if (json) {
        nlohmann::json doc = core::erfSummaryJson(result, modelId);
        doc["source"] = source;
        doc["out"] = outDir.string();
        std::cout << doc.dump(2) << std::endl;
    } else {
        std::cout << "ERF of " << modelId << " over " << result.images << " images at " << result.height << "x"
                  << result.width << " (" << source << ")\n";
        printTable(result);
        std::cout << "wrote " << (outDir / "erf.safetensors").string() << ", erf.json and one PNG per stage"
                  << std::endl;
    }
    if (result.cancelled) {
        std::cerr << "segscope-cli: erf cancelled after " << result.images << " images" << std::endl;
        return 1;
    }
    return 0;
}

} // namespace segscope::cli
