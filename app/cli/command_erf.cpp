// segscope-cli erf: effective receptive fields of a model's stages (docs/erf.md).
#include "commands.h"

#include "segscope/core/analysis/erf.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/runtime.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

std::atomic<bool> interrupted{false};
extern "C" void onErfInterrupt(int) {
    interrupted = true;
}

int positiveInteger(const std::string& name, const std::optional<std::string>& text, long fallback) {
    const long value = integerValue(name, text, fallback);
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
    for (double t : core::erfAreaFractions())
        std::cout << std::right << std::setw(10) << ("area@" + std::to_string(int(t * 100 + 0.5)) + "%");
    std::cout << std::setw(12) << "radius_px" << std::setw(14) << "max" << std::setw(14) << "sum"
              << "\n";
    for (const auto& s : result.stages) {
        std::cout << std::left << std::setw(10) << s.stage << std::right << std::fixed << std::setprecision(4);
        for (const auto& a : s.areaRatios) std::cout << std::setw(10) << a.areaRatio;
        std::cout << std::setw(12) << std::setprecision(2) << s.effectiveRadiusPixels << std::scientific
                  << std::setprecision(3) << std::setw(14) << s.maxValue << std::setw(14) << s.sum << std::fixed
                  << "\n";
    }
}

struct ErfArguments {
    std::optional<std::string> run, workspace, checkpoint, model, classes, weights, seed, config, images, input, split,
        batchSize, stages, objective, reduction, device;
    std::vector<std::string> size;
    std::string out;
    bool json = false, allowPartial = false;
};

int commandErf(const ErfArguments& args) {
    const bool fromRun = args.run.has_value();
    if (fromRun == args.model.has_value()) throw UsageError("erf needs exactly one of --run and --model");
    if (args.input.has_value() && args.images.has_value()) throw UsageError("--input and --images exclude each other");
    if (fromRun && (args.classes.has_value() || args.weights.has_value() || args.config.has_value()))
        throw UsageError("--classes, --weights and --config go with --model, not --run");
    if (!fromRun && (args.workspace.has_value() || args.checkpoint.has_value()))
        throw UsageError("--workspace and --checkpoint go with --run");
    const std::filesystem::path outDir = args.out;
    const bool json = args.json;

    core::ErfOptions options;
    options.batchSize = positiveInteger("batch-size", args.batchSize, 4);
    if (auto objective = args.objective) {
        if (*objective == "relu-sum")
            options.objective = core::ErfObjective::ReluSum;
        else if (*objective == "sum")
            options.objective = core::ErfObjective::Sum;
        else
            throw UsageError("--objective is relu-sum or sum, got '" + *objective + "'");
    }
    if (auto reduction = args.reduction) {
        if (*reduction == "abs-sum")
            options.reduction = core::ErfReduction::AbsSum;
        else if (*reduction == "relu-sum")
            options.reduction = core::ErfReduction::ReluSum;
        else
            throw UsageError("--reduction is abs-sum or relu-sum, got '" + *reduction + "'");
    }
    if (auto stages = args.stages) {
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
    if (!args.size.empty()) {
        const auto& values = args.size;
        size = {parseSize(values[values.size() - 2], "H"), parseSize(values.back(), "W")};
    }

    // The model, its weights, and the experiment that names the dataset (when there is one).
    std::string modelId;
    std::shared_ptr<core::SegmentationModel> model;
    std::optional<core::Experiment> experiment;
    std::string source;
    std::optional<torch::Device> device;  // the run's device, chosen by the loader
    if (fromRun) {
        const std::string runId = *args.run;
        const std::filesystem::path workspace = args.workspace.value_or(core::defaultWorkspace().string());
        const auto store = core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
        // The core's loader: "best" is the checkpoint of the best evaluation's step (evaluations
        // may run per iteration, so epochs do not identify them). Without --device, the run's own.
        const core::LoadedRun run =
            core::loadRun(*store, runId, args.checkpoint.value_or("best"), args.device.value_or(std::string()));
        experiment = run.experiment;
        modelId = run.experiment.model.id;
        model = run.model;
        device = run.device;
        source = "run " + runId + ", " + run.checkpoint.string();
    } else {
        modelId = *args.model;
        if (!args.classes.has_value()) throw UsageError("--model needs --classes K");
        const int classes = positiveInteger("classes", args.classes, 1);
        torch::manual_seed(std::uint64_t(integerValue("seed", args.seed, 0)));
        model = core::createModel(modelId, classes);
        if (auto weightsFile = args.weights) {
            const core::LoadReport report = core::loadWeightsForModel(*model, modelId, *weightsFile, args.allowPartial);
            if (!json) std::cerr << "weights " << *weightsFile << ": " << report.summary() << std::endl;
            source = *weightsFile;
        } else {
            source = "untrained (seed " + std::to_string(integerValue("seed", args.seed, 0)) + ")";
        }
        if (auto config = args.config) experiment = core::loadExperiment(*config);
    }
    if (!device) {
        device = core::resolveDevice(args.device.value_or("auto"));
        model->to(*device);
    }

    interrupted = false;
    std::signal(SIGINT, onErfInterrupt);
    std::signal(SIGTERM, onErfInterrupt);
    const auto progress = [json](std::int64_t done, std::int64_t total) {
        if (!json) std::cerr << "erf: " << done << "/" << total << " images" << std::endl;
    };
    core::ErfResult result;
    if (auto inputPath = args.input) {
        const core::TensorMap tensors = core::readSafetensors(*inputPath);
        const auto it = tensors.find("input");
        if (it == tensors.end()) throw core::FileError(*inputPath, "no tensor named 'input'");
        if (it->second.dim() != 4 || it->second.size(1) != 3)
            throw core::FileError(*inputPath, "'input' must be (B, 3, H, W)");
        torch::Tensor input = it->second.to(torch::kFloat32);
        if (size)
            input = torch::nn::functional::interpolate(input,
                                                       torch::nn::functional::InterpolateFuncOptions()
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
        const std::string split = args.split.value_or(experiment->dataset.valSplit);
        const auto dataset = core::Dataset::open(core::datasetSpec(*experiment, split));
        core::TransformConfig transform = core::transformConfig(*experiment);
        if (size) {
            transform.height = size->first;
            transform.width = size->second;
        }
        const int images = positiveInteger("images", args.images, 100);
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

}  // namespace

Command addErfCommand(CLI::App& cli) {
    const auto options = std::make_shared<ErfArguments>();
    CLI::App* app = cli.add_subcommand("erf", "effective receptive field of every stage of a run or a zoo model");
    app->footer(
        "The ERF is the mean input gradient of the centre activation (docs/erf.md). Takes --run, or "
        "--model with --classes; images come from the run's (or --config's) dataset, else the built-in "
        "demo, or from --input. Writes erf.safetensors, one PNG per stage and erf.json into --out; exits 1 "
        "when cancelled (Ctrl-C).");
    app->add_option("--run", options->run, "a recorded run")->type_name("ID")->group("Source");
    app->add_option("--workspace", options->workspace, "--run: the workspace folder")
        ->type_name("DIR")
        ->group("Source");
    app->add_option("--checkpoint", options->checkpoint, "--run: best (default), latest or a checkpoint file")
        ->type_name("best|latest|FILE")
        ->group("Source");
    app->add_option("--model", options->model, "a zoo id")->type_name("ID")->group("Source");
    addIntegerOption(*app, "--classes", options->classes, "--model: output classes, >= 1")
        ->type_name("K")
        ->group("Source");
    app->add_option("--weights", options->weights, "--model: weights to load (else untrained)")
        ->type_name("FILE")
        ->group("Source");
    app->add_flag("--allow-partial", options->allowPartial, "--weights: load what fits, report the rest")
        ->group("Source");
    addIntegerOption(*app, "--seed", options->seed, "--model: seed of the untrained initialisation", 0)
        ->type_name("S")
        ->group("Source");
    app->add_option("--config", options->config, "--model: the experiment whose dataset to use")
        ->type_name("EXPERIMENT.json")
        ->group("Source");
    addIntegerOption(*app, "--images", options->images, "images from the dataset, >= 1", 100)->type_name("N");
    app->add_option("--input", options->input, "images from tensor `input` (B,3,H,W) instead")
        ->type_name("IN.safetensors");
    app->add_option("--split", options->split, "the dataset split (default: its val split)")->type_name("NAME");
    app->add_option("--size", options->size, "input height and width (default: the experiment's)")
        ->expected(2)
        ->type_name("H W");
    addIntegerOption(*app, "--batch-size", options->batchSize, "images per backward pass, >= 1", 4)->type_name("B");
    app->add_option("--stages", options->stages, "only these stages (default: all)")->type_name("stage1,...");
    app->add_option("--objective", options->objective, "what the centre activation is reduced to (default relu-sum)")
        ->type_name("relu-sum|sum");
    app->add_option("--reduction", options->reduction, "how gradients become a map (default abs-sum)")
        ->type_name("abs-sum|relu-sum");
    app->add_option("--device", options->device, "default: the run's device, else auto")->type_name("auto|cpu|cuda:N");
    app->add_option("--out", options->out, "the output folder")->required()->type_name("DIR");
    app->add_flag("--json", options->json, "the summary as JSON");
    return {app, [options] { return commandErf(*options); }, true};
}

}  // namespace segscope::cli
