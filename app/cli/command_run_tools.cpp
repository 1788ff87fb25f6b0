// segscope-cli eval, export, predict and predict-split: using a recorded run's checkpoints.
#include "commands.h"

#include "segscope/core/data/dataset.h"
#include "segscope/core/experiment.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/models/segformer_naming.h"
#include "segscope/core/output_guard.h"
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/models/weights.h"

#include <nlohmann/json.hpp>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

namespace {

// Opens an existing workspace only: a mistyped --workspace must not create an empty one.
std::unique_ptr<core::RunStore> openWorkspace(const Arguments& args) {
    const fs::path workspace = args.value("workspace").value_or(core::defaultWorkspace().string());
    if (!core::isWorkspace(workspace))
        throw core::FileError(workspace.string(), "not a SegScope workspace (no .segscope/segscope.db)");
    // These commands only read the store (the prediction cache lives in the run folder).
    return core::RunStore::open(workspace, core::StoreAccess::ReadOnly);
}

core::LoadedRun loadRunFromArguments(const Arguments& args, core::RunStore& store) {
    return core::loadRun(store, args.required("run"), args.value("checkpoint").value_or("latest"),
                         args.value("device").value_or(""));
}

std::string checkpointLabel(const core::LoadedRun& run) {
    std::string label = run.checkpoint.filename().string();
    if (run.epoch) label += " (epoch " + std::to_string(*run.epoch) + ", step " + std::to_string(*run.step) + ")";
    return label;
}

}  // namespace

int commandEval(const Arguments& args) {
    args.allowOnly({"run", "workspace", "split", "checkpoint", "device", "json"});
    const auto store = openWorkspace(args);
    const core::LoadedRun run = loadRunFromArguments(args, *store);
    const core::Experiment& experiment = run.experiment;
    const std::string split = args.value("split").value_or(experiment.dataset.valSplit);

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

    if (args.has("json")) {
        std::cout << core::metricsToJson(result.metrics) << std::endl;
    } else {
        std::cout << "run " << run.runId << ", checkpoint " << checkpointLabel(run) << ", split " << split << " ("
                  << dataset->size() << " images)\n"
                  << core::metricsToText(result.metrics);
    }
    return 0;
}

int commandExport(const Arguments& args) {
    args.allowOnly({"run", "workspace", "checkpoint", "out", "naming", "hf-folder", "force"});
    const auto outArgument = args.value("out");
    const auto hfFolder = args.value("hf-folder");
    if (!outArgument && !hfFolder) throw UsageError("export needs --out FILE.safetensors and/or --hf-folder DIR");
    std::optional<core::SegFormerNaming> naming;
    if (auto text = args.value("naming")) {
        naming = core::parseSegFormerNaming(*text);
        if (!naming) throw UsageError("--naming expects 4 or 5 (transformers 4.x or 5.x names), got '" + *text + "'");
    }
    const auto store = openWorkspace(args);
    const core::LoadedRun run =
        core::loadRun(*store, args.required("run"), args.value("checkpoint").value_or("latest"), "cpu");
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
    guard.force = args.has("force");
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
        std::cout << "wrote " << (fs::path(*hfFolder) / "config.json").string() << " and model.safetensors ("
                  << modelId << ", " << run.classes << " classes): SegformerForSemanticSegmentation.from_pretrained "
                  << "loads it under transformers 4.x and 5.x" << std::endl;
    }
    return 0;
}

int commandPredict(const Arguments& args) {
    args.allowOnly({"run", "workspace", "checkpoint", "device", "image", "out", "mask", "alpha", "force"});
    const fs::path imagePath = args.required("image");
    const fs::path overlayPath = args.required("out");
    // Never over the image, the other output, or the workspace's files; an existing file only with --force.
    core::OutputGuard guard;
    guard.inputs = {imagePath};
    guard.force = args.has("force");
    if (auto maskPath = args.value("mask")) {
        guard.inputs.push_back(overlayPath);
        core::checkOutputPath(*maskPath, guard);
        guard.inputs.pop_back();
        guard.inputs.push_back(*maskPath);
    }
    core::checkOutputPath(overlayPath, guard);
    double alpha = 0.5;
    if (auto text = args.value("alpha")) {
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
    if (auto maskPath = args.value("mask")) core::writePalettePng(*maskPath, labels, palette);

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

int commandPredictSplit(const Arguments& args) {
    args.allowOnly({"run", "workspace", "split", "checkpoint", "device", "batch-size", "force", "json"});
    const auto store = openWorkspace(args);
    const std::string runId = args.required("run");
    const std::string checkpoint = args.value("checkpoint").value_or("latest");
    const auto record = store->run(runId);
    if (!record) throw core::Error("no run '" + runId + "' in workspace " + store->workspace().string());
    const std::string split = args.value("split").value_or(
        core::parseExperiment(nlohmann::json::parse(record->experimentJson)).dataset.valSplit);
    std::size_t batchSize = 0;
    if (auto text = args.value("batch-size")) {
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
    if (!args.has("force")) {
        const core::PredictionKey key = core::predictionKey(*store, runId, checkpoint, split);
        folder = core::predictionFolder(record->folder, key.checkpoint, split);
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
        options.force = args.has("force");
        const bool terminal = isatty(STDERR_FILENO);
        if (terminal)
            options.progress = [](std::size_t done, std::size_t total) {
                std::cerr << "\rpredicting " << done << "/" << total << " images" << std::flush;
            };
        core::SplitPrediction prediction = core::predictSplit(run, record->folder, split, options);
        if (terminal) std::cerr << "\r\033[K" << std::flush;
        set = std::move(prediction.set);
        cached = prediction.fromCache;
        folder = prediction.folder;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const core::SegmentationMetrics metrics = set->metrics();
    folder = fs::absolute(folder).lexically_normal();

    if (args.has("json")) {
        const nlohmann::json document = {
            {"run", runId},
            {"checkpoint", set->key().checkpoint.string()},
            {"split", split},
            {"images", set->size()},
            {"cached", cached},
            {"folder", folder.string()},
            {"seconds", seconds},
            {"metrics", nlohmann::json::parse(core::metricsToJson(metrics))},
        };
        std::cout << document.dump(2) << std::endl;
    } else {
        std::cout << "run " << runId << ", checkpoint " << checkpointText << ", split " << split << " ("
                  << set->size() << " images): " << (cached ? "reused the cache" : "predicted") << " in " << std::fixed
                  << std::setprecision(2) << seconds << " s\n"
                  << "predictions: " << folder.string() << "\n"
                  << core::metricsToText(metrics);
    }
    return 0;
}

}  // namespace segscope::cli
