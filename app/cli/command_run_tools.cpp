// segscope-cli eval, export, predict and predict-split: using a recorded run's checkpoints.
#include "commands.h"

#include "segscope/core/analysis/inference.h"
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/data/overlay.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/segformer_naming.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/output_guard.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"

#include <nlohmann/json.hpp>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

namespace {

// Opens an existing workspace only: a mistyped --workspace must not create an empty one.
// The options every command on a recorded run takes.
struct RunArguments {
    std::string run;
    std::optional<std::string> workspace, checkpoint, device;
};

void addRunArguments(CLI::App& app, RunArguments& args, bool device) {
    app.add_option("--run", args.run, "the run (segscope-cli runs lists them)")->required()->type_name("ID");
    app.add_option("--workspace", args.workspace, "the workspace folder")->type_name("DIR");
    app.add_option("--checkpoint", args.checkpoint,
                   "latest, best (the best evaluation's checkpoint) or a checkpoint file (default latest)")
        ->type_name("latest|best|FILE");
    if (device)
        app.add_option("--device", args.device, "cpu, cuda, cuda:N or auto (default: the experiment's device)")
            ->type_name("NAME");
}

std::unique_ptr<core::RunStore> openWorkspace(const RunArguments& args) {
    const fs::path workspace = args.workspace.value_or(core::defaultWorkspace().string());
    if (!core::isWorkspace(workspace))
        throw core::FileError(workspace.string(), "not a SegScope workspace (no .segscope/segscope.db)");
    // These commands only read the store (the prediction cache lives in the run folder).
    return core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
}

core::LoadedRun loadRunFromArguments(const RunArguments& args, core::RunStore& store) {
    return core::loadRun(store, args.run, args.checkpoint.value_or("latest"), args.device.value_or(""));
}

std::string checkpointLabel(const core::LoadedRun& run) {
    std::string label = run.checkpoint.filename().string();
    if (run.epoch) label += " (epoch " + std::to_string(*run.epoch) + ", step " + std::to_string(*run.step) + ")";
    return label;
}

struct EvalOptions : RunArguments {
    std::optional<std::string> split;
    bool json = false;
};

int commandEval(const EvalOptions& args) {
    const auto store = openWorkspace(args);
    const core::LoadedRun run = loadRunFromArguments(args, *store);
    const core::Experiment& experiment = run.experiment;
    const std::string split = args.split.value_or(experiment.dataset.valSplit);

    core::prepareDemoDataset(experiment);
    const auto dataset = core::Dataset::open(core::datasetSpec(experiment, split));
    core::EvaluationOptions options;
    options.device = run.device;
    options.resolution = experiment.training.evalResolution;
    options.voidToBackground = experiment.dataset.voidToBackground;
    for (const auto& c : run.classInfo) options.classNames.push_back(c.name);
    options.amp = experiment.training.amp;
    options.channelsLast = experiment.training.channelsLast;
    const bool terminal = isatty(STDERR_FILENO);
    if (terminal)
        options.progress = [](std::size_t done, std::size_t total) {
            std::cerr << "\rscoring " << done << "/" << total << " images" << std::flush;
        };
    const core::Evaluation result =
        core::evaluate(*run.model, dataset, core::transformConfig(experiment), run.classes,
                       std::size_t(experiment.training.batchSize), experiment.runtime.workers, options);
    if (terminal) std::cerr << "\r\033[K" << std::flush;

    if (args.json) {
        std::cout << core::metricsToJson(result.metrics) << std::endl;
    } else {
        std::cout << "run " << run.runId << ", checkpoint " << checkpointLabel(run) << ", split " << split << " ("
                  << dataset->size() << " images)\n"
                  << core::metricsToText(result.metrics);
    }
    return 0;
}

struct ExportOptions : RunArguments {
    std::optional<std::string> out, naming, hfFolder;
    bool force = false;
};

int commandExport(const ExportOptions& args) {
    const auto outArgument = args.out;
    const auto hfFolder = args.hfFolder;
    if (!outArgument && !hfFolder) throw UsageError("export needs --out FILE.safetensors and/or --hf-folder DIR");
    std::optional<core::SegFormerNaming> naming;
    if (auto text = args.naming) {
        naming = core::parseSegFormerNaming(*text);
        if (!naming) throw UsageError("--naming expects 4 or 5 (transformers 4.x or 5.x names), got '" + *text + "'");
    }
    const auto store = openWorkspace(args);
    const core::LoadedRun run = core::loadRun(*store, args.run, args.checkpoint.value_or("latest"), "cpu");
    const std::string& modelId = run.experiment.model.id;
    const bool segformer = modelId.rfind("segformer-", 0) == 0;
    if ((naming || hfFolder) && !segformer)
        throw UsageError(std::string(naming ? "--naming" : "--hf-folder") + " applies to SegFormer models; run " +
                         run.runId + " trained " + modelId);
    // Never over the run's own files or the workspace's; an existing file only with --force.
    core::OutputGuard guard;
    guard.inputs = {run.checkpoint};
    if (run.checkpoint.extension() == ".safetensors")
        guard.inputs.push_back(fs::path(run.checkpoint).replace_extension(".state.pt"));
    guard.force = args.force;
    if (outArgument) core::checkOutputPath(*outArgument, guard);
    if (hfFolder) {
        std::error_code ec;
        if (fs::exists(*hfFolder, ec) && !fs::is_directory(*hfFolder, ec))
            throw core::FileError(*hfFolder, "exists and is not a folder");
        core::checkOutputPath(fs::path(*hfFolder) / "config.json", guard);
        core::checkOutputPath(fs::path(*hfFolder) / "model.safetensors", guard);
    }

    nlohmann::json names = nlohmann::json::array();
    std::vector<std::string> classNames;
    for (const auto& c : run.classInfo) {
        names.push_back(c.name);
        classNames.push_back(c.name);
    }
    const core::TensorMap tensors = core::stateDict(*run.model);
    if (outArgument) {
        const fs::path out = *outArgument;
        std::map<std::string, std::string> metadata = {
            {"format", "pt"},
            {"model", modelId},
            {"classes", std::to_string(run.classes)},
            {"class_names", names.dump()},
            {"run", run.runId},
            {"checkpoint", run.checkpoint.filename().string()},
        };
        if (run.epoch) metadata["epoch"] = std::to_string(*run.epoch);
        if (run.step) metadata["step"] = std::to_string(*run.step);
        const core::SegFormerNaming chosen = naming.value_or(core::SegFormerNaming::Transformers4);
        if (segformer)
            metadata["naming"] = chosen == core::SegFormerNaming::Transformers4 ? "transformers4" : "transformers5";
        core::writeSafetensors(out, segformer ? core::segFormerStateDictIn(tensors, chosen) : tensors, metadata);
        std::cout << "wrote " << tensors.size() << " tensors of " << modelId << " (" << run.classes << " classes"
                  << (segformer ? chosen == core::SegFormerNaming::Transformers4 ? ", transformers 4.x names"
                                                                                 : ", transformers 5.x names"
                                : "")
                  << ") from " << checkpointLabel(run) << " to " << out.string() << std::endl;
    }
    if (hfFolder) {
        core::writeSegFormerHfFolder(*hfFolder, tensors, classNames);
        std::cout << "wrote " << (fs::path(*hfFolder) / "config.json").string() << " and model.safetensors (" << modelId
                  << ", " << run.classes << " classes): SegformerForSemanticSegmentation.from_pretrained "
                  << "loads it under transformers 4.x and 5.x" << std::endl;
    }
    return 0;
}

struct PredictOptions : RunArguments {
    std::string image, out;
    std::optional<std::string> mask, alpha;
    bool force = false;
};

int commandPredict(const PredictOptions& args) {
    const fs::path imagePath = args.image;
    const fs::path overlayPath = args.out;
    // Never over the image, the other output, or the workspace's files; an existing file only with --force.
    core::OutputGuard guard;
    guard.inputs = {imagePath};
    guard.force = args.force;
    if (auto maskPath = args.mask) {
        guard.inputs.push_back(overlayPath);
        core::checkOutputPath(*maskPath, guard);
        guard.inputs.pop_back();
        guard.inputs.push_back(*maskPath);
    }
    core::checkOutputPath(overlayPath, guard);
    double alpha = 0.5;
    if (auto text = args.alpha) {
        try {
            std::size_t used = 0;
            alpha = std::stod(*text, &used);
            if (used != text->size()) throw std::invalid_argument(*text);
        } catch (const std::exception&) {
            throw UsageError("--alpha expects a number in [0, 1], got '" + *text + "'");
        }
        if (!(alpha >= 0.0 && alpha <= 1.0))
            throw UsageError("--alpha expects a number in [0, 1], got '" + *text + "'");
    }
    // The image is checked before the (slower) model load so a typo fails at once.
    const cv::Mat image = core::readImageRgb(imagePath);
    const auto store = openWorkspace(args);
    const core::LoadedRun run = loadRunFromArguments(args, *store);
    const cv::Mat labels = core::predictImage(*run.model, image, core::transformConfig(run.experiment), run.device);

    std::vector<core::Rgb> palette;
    for (const auto& c : run.classInfo) palette.push_back(c.color);
    core::writeImageRgb(overlayPath, core::overlayLabels(image, labels, palette, alpha));
    if (auto maskPath = args.mask) core::writePalettePng(*maskPath, labels, palette);

    std::vector<std::int64_t> pixels(std::size_t(run.classes), 0);
    for (int y = 0; y < labels.rows; ++y)
        for (int x = 0; x < labels.cols; ++x) ++pixels[labels.at<std::uint8_t>(y, x)];
    std::cout << imagePath.string() << " (" << image.cols << "x" << image.rows << ") with " << checkpointLabel(run)
              << ":\n";
    for (int c = 0; c < run.classes; ++c)
        if (pixels[std::size_t(c)] > 0)
            std::cout << "  " << run.classInfo[std::size_t(c)].name << ": " << std::fixed << std::setprecision(1)
                      << 100.0 * double(pixels[std::size_t(c)]) / double(labels.total()) << "%\n";
    return 0;
}

struct PredictSplitOptions : RunArguments {
    std::optional<std::string> split, batchSize;
    bool force = false, json = false;
};

int commandPredictSplit(const PredictSplitOptions& args) {
    const auto store = openWorkspace(args);
    const std::string runId = args.run;
    const std::string checkpoint = args.checkpoint.value_or("latest");
    // The run without its model (header of the checkpoint only): enough for the cache check.
    const core::LoadedRun inspected = core::inspectRun(*store, runId, checkpoint);
    const std::string split = args.split.value_or(inspected.experiment.dataset.valSplit);
    std::size_t batchSize = 0;
    if (auto text = args.batchSize) {
        try {
            std::size_t used = 0;
            const long value = std::stol(*text, &used);
            if (used != text->size() || value < 1) throw std::invalid_argument(*text);
            batchSize = std::size_t(value);
        } catch (const std::exception&) {
            throw UsageError("--batch-size expects an integer >= 1, got '" + *text + "'");
        }
    }

    // A valid cache answers without building the model: that is what makes reopening instant.
    std::optional<core::PredictionSet> set;
    bool cached = false;
    fs::path folder;
    std::string checkpointText;
    const auto started = std::chrono::steady_clock::now();
    if (!args.force) {
        const core::PredictionKey key = core::predictionKey(inspected, split);
        folder = core::predictionFolder(inspected.folder, key.checkpoint, split);
        core::CacheLookup lookup = core::openPredictions(folder, key);
        if (lookup.state == core::CacheState::Valid) {
            set = std::move(lookup.set);
            cached = true;
            checkpointText = key.checkpoint.filename().string();
        }
    }
    if (!set) {
        const core::LoadedRun run = loadRunFromArguments(args, *store);
        checkpointText = checkpointLabel(run);
        core::PredictionOptions options;
        options.batchSize = batchSize;
        options.force = args.force;
        const bool terminal = isatty(STDERR_FILENO);
        if (terminal)
            options.progress = [](std::size_t done, std::size_t total) {
                std::cerr << "\rpredicting " << done << "/" << total << " images" << std::flush;
            };
        core::SplitPrediction prediction = core::predictSplit(run, run.folder, split, options);
        if (terminal) std::cerr << "\r\033[K" << std::flush;
        set = std::move(prediction.set);
        cached = prediction.fromCache;
        folder = prediction.folder;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const core::SegmentationMetrics metrics = set->metrics();
    folder = fs::absolute(folder).lexically_normal();

    if (args.json) {
        const nlohmann::json document = {
            {"run", runId},       {"checkpoint", set->key().checkpoint.string()},
            {"split", split},     {"images", set->size()},
            {"cached", cached},   {"folder", folder.string()},
            {"seconds", seconds}, {"metrics", nlohmann::json::parse(core::metricsToJson(metrics))},
        };
        std::cout << document.dump(2) << std::endl;
    } else {
        std::cout << "run " << runId << ", checkpoint " << checkpointText << ", split " << split << " (" << set->size()
                  << " images): " << (cached ? "reused the cache" : "predicted") << " in " << std::fixed
                  << std::setprecision(2) << seconds << " s\n"
                  << "predictions: " << folder.string() << "\n"
                  << core::metricsToText(metrics);
    }
    return 0;
}

}  // namespace

Command addEvalCommand(CLI::App& cli) {
    const auto options = std::make_shared<EvalOptions>();
    CLI::App* app = cli.add_subcommand("eval", "score a run's checkpoint on a split");
    addRunArguments(*app, *options, true);
    app->add_option("--split", options->split, "the split to score (default: the run's val split)")->type_name("NAME");
    app->add_flag("--json", options->json, "the metrics as JSON");
    return {app, [options] { return commandEval(*options); }, true};
}

Command addExportCommand(CLI::App& cli) {
    const auto options = std::make_shared<ExportOptions>();
    CLI::App* app = cli.add_subcommand("export", "write a checkpoint's weights with reference (Python) names");
    app->footer(
        "The file carries the model, classes and class names as metadata. SegFormer: --naming 4 (default) "
        "writes transformers 4.x names, which transformers 4.x load_state_dict and from_pretrained of 4.x "
        "and 5.x load; --naming 5 writes the names transformers 5.x state_dict()/load_state_dict use. "
        "--hf-folder DIR writes config.json + model.safetensors, which "
        "SegformerForSemanticSegmentation.from_pretrained(DIR) loads under transformers 4.56 and 5.x. "
        "Never writes over the run's files or the workspace's; an existing file needs --force.");
    addRunArguments(*app, *options, false);
    app->add_option("--out", options->out, "the weights file to write")->type_name("FILE.safetensors");
    app->add_option("--naming", options->naming, "SegFormer: transformers 4.x or 5.x parameter names (default 4)")
        ->type_name("4|5");
    app->add_option("--hf-folder", options->hfFolder, "SegFormer: a from_pretrained folder to write")->type_name("DIR");
    app->add_flag("--force", options->force, "write over existing files");
    return {app, [options] { return commandExport(*options); }, true};
}

Command addPredictCommand(CLI::App& cli) {
    const auto options = std::make_shared<PredictOptions>();
    CLI::App* app = cli.add_subcommand("predict", "segment one image with a run's checkpoint");
    app->footer(
        "Writes an overlay in class colours and, with --mask, a palette PNG of class indices at the "
        "image's size; prints the share of each class. Never writes over its input; an existing file "
        "needs --force.");
    addRunArguments(*app, *options, true);
    app->add_option("--image", options->image, "the image to segment")->required()->type_name("FILE");
    app->add_option("--out", options->out, "the overlay to write")->required()->type_name("OVERLAY.png");
    app->add_option("--mask", options->mask, "also write the class indices")->type_name("MASK.png");
    app->add_option("--alpha", options->alpha, "opacity of the class colours, 0 to 1 (default 0.5)")->type_name("A");
    app->add_flag("--force", options->force, "write over existing files");
    return {app, [options] { return commandPredict(*options); }, true};
}

Command addPredictSplitCommand(CLI::App& cli) {
    const auto options = std::make_shared<PredictSplitOptions>();
    CLI::App* app = cli.add_subcommand("predict-split", "predict every image of a split into the prediction cache");
    app->footer(
        "The cache lives in the run folder, per checkpoint and split; a valid one is reused without "
        "building the model. Prints the metrics and the cache folder.");
    addRunArguments(*app, *options, true);
    app->add_option("--split", options->split, "the split (default: the run's val split)")->type_name("NAME");
    app->add_option("--batch-size", options->batchSize, "images per forward pass, >= 1 (default: the experiment's)")
        ->type_name("B");
    app->add_flag("--force", options->force, "predict again even when the cache is valid");
    app->add_flag("--json", options->json, "the result as JSON");
    return {app, [options] { return commandPredictSplit(*options); }, true};
}

}  // namespace segscope::cli
