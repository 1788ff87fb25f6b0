#include "segscope/core/analysis/inference.h"

#include "models/eval_mode_scope.h"

#include "training/autocast_scope.h"

#include "segscope/core/data/dataset.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/training_parts.h"
#include "segscope/core/models/weights.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstring>
#include <map>

namespace segscope::core {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {


torch::Tensor resizeLogits(const torch::Tensor& logits, std::int64_t rows, std::int64_t cols) {
    return F::interpolate(logits, F::InterpolateFuncOptions()
                                      .size(std::vector<std::int64_t>{rows, cols})
                                      .mode(torch::kBilinear)
                                      .align_corners(false));
}

fs::path weightsOf(const fs::path& path) {
    const std::string name = path.string();
    const std::string stateSuffix = ".state.pt";
    if (name.size() > stateSuffix.size() &&
        name.compare(name.size() - stateSuffix.size(), stateSuffix.size(), stateSuffix) == 0)
        return name.substr(0, name.size() - stateSuffix.size()) + ".safetensors";
    return path;
}

bool isFile(const fs::path& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

}  // namespace

Evaluation evaluate(SegmentationModel& model, BatchLoader& loader, int classes, const EvaluationOptions& options) {
    EvalModeScope evalMode(model);
    // Not just NoGradGuard: InferenceMode also skips version counters and view tracking
    // (measured 5-15 % on small-op models, docs/benchmarks.md).
    c10::InferenceMode inferenceMode;
    const bool cuda = options.device.is_cuda();
    const bool original = options.resolution == EvalResolution::Original;
    const std::size_t total = loader.dataset().size();
    ConfusionMatrix matrix(classes);
    Evaluation result;
    // Summed on the device: one host transfer at the end instead of one per batch.
    torch::Tensor lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(options.device));
    std::int64_t lossBatches = 0;
    loader.startEpoch(0);
    while (auto batch = loader.next()) {
        if (options.shouldStop && options.shouldStop()) {
            result.cancelled = true;
            break;
        }
        torch::Tensor images = batch->images.to(options.device);
        if (cuda && options.channelsLast) images = images.contiguous(at::MemoryFormat::ChannelsLast);
        torch::Tensor logits;
        {
            AutocastScope autocast(cuda && options.amp != AmpMode::Off,
                                   options.amp == AmpMode::Fp16 ? at::kHalf : at::kBFloat16);
            logits = model.forward(images).to(torch::kFloat32);
        }
        const torch::Tensor labels = batch->labels.to(options.device);
        if (options.loss) {
            lossSum += (*options.loss)(logits, labels).to(torch::kFloat64);
            ++lossBatches;
        }
        if (!original) {
            const torch::Tensor prediction = logits.argmax(1);
            matrix.update(prediction, labels);
            auto ious = batchImageIou(prediction, labels, classes);
            for (std::size_t i = 0; i < ious.size(); ++i) {
                result.imageIds.push_back(batch->ids[i]);
                result.images.push_back(std::move(ious[i]));
            }
        } else {
            for (std::size_t i = 0; i < batch->indices.size(); ++i) {
                const LabeledImage sample = loader.dataset().load(batch->indices[i]);
                cv::Mat label = sample.label;
                if (options.voidToBackground) label.setTo(0, label == kIgnoreIndex);
                const torch::Tensor target = torch::from_blob(label.data, {1, label.rows, label.cols}, torch::kUInt8)
                                                 .to(torch::kInt64)
                                                 .to(options.device);
                const torch::Tensor prediction =
                    resizeLogits(logits.slice(0, std::int64_t(i), std::int64_t(i) + 1), label.rows, label.cols)
                        .argmax(1);
                matrix.update(prediction, target);
                auto ious = batchImageIou(prediction, target, classes);
                result.imageIds.push_back(batch->ids[i]);
                result.images.push_back(std::move(ious.front()));
            }
        }
#if defined(__GLIBC__)
        // Resizing logits to each original size leaves glibc holding freed pages (RSS grew
        // ~1.5 MB per image in predictSplit, which runs the same resize); trim per batch.
        if (original) malloc_trim(0);
#endif
        if (options.progress) options.progress(result.imageIds.size(), total);
    }
    result.metrics = computeMetrics(matrix, options.classNames);
    if (lossBatches) result.meanLoss = lossSum.item<double>() / double(lossBatches);
    return result;
}

Evaluation evaluate(SegmentationModel& model, std::shared_ptr<const Dataset> dataset, const TransformConfig& transform,
                    int classes, std::size_t batchSize, int workers, const EvaluationOptions& options) {
    LoaderOptions loaderOptions;
    loaderOptions.batchSize = std::max<std::size_t>(1, batchSize);
    loaderOptions.shuffle = false;
    loaderOptions.dropLast = false;
    loaderOptions.training = false;
    loaderOptions.workers = workers;
    BatchLoader loader(std::move(dataset), transform, loaderOptions);
    return evaluate(model, loader, classes, options);
}

cv::Mat predictImage(SegmentationModel& model, const cv::Mat& rgb, const TransformConfig& transform,
                     const torch::Device& device) {
    if (rgb.empty() || rgb.type() != CV_8UC3) throw Error("predictImage needs a non-empty 8-bit RGB image");
    if (model.numClasses() > 256)
        throw Error("a label image holds at most 256 classes; the model has " + std::to_string(model.numClasses()));
    EvalModeScope evalMode(model);
    // Not just NoGradGuard: InferenceMode also skips version counters and view tracking
    // (measured 5-15 % on small-op models, docs/benchmarks.md).
    c10::InferenceMode inferenceMode;
    // The same resize as applyEvalTransform, so a prediction sees what validation saw.
    cv::Mat resized;
    cv::resize(rgb, resized, cv::Size(transform.width, transform.height), 0, 0, cv::INTER_LINEAR);
    torch::Tensor input = torch::empty({1, 3, resized.rows, resized.cols}, torch::kFloat32);
    normalizeToChw(resized, transform.normalization, input.data_ptr<float>());
    const torch::Tensor logits = model.forward(input.to(device)).to(torch::kFloat32);
    const torch::Tensor labels =
        resizeLogits(logits, rgb.rows, rgb.cols).argmax(1).squeeze(0).to(torch::kUInt8).cpu().contiguous();
    cv::Mat out(rgb.rows, rgb.cols, CV_8UC1);
    std::memcpy(out.data, labels.data_ptr<std::uint8_t>(), std::size_t(rgb.rows) * rgb.cols);
    return out;
}

cv::Mat overlayLabels(const cv::Mat& rgb, const cv::Mat& labels, const std::vector<Rgb>& palette, double alpha) {
    if (rgb.type() != CV_8UC3 || labels.type() != CV_8UC1 || rgb.size() != labels.size())
        throw Error("overlayLabels needs an RGB image and a label image of the same size");
    Rgb colors[256];
    for (int i = 0; i < 256; ++i) colors[i] = i < int(palette.size()) ? palette[std::size_t(i)] : vocColor(i);
    cv::Mat out(rgb.size(), CV_8UC3);
    for (int y = 0; y < rgb.rows; ++y) {
        const auto* src = rgb.ptr<std::uint8_t>(y);
        const auto* label = labels.ptr<std::uint8_t>(y);
        auto* dst = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < rgb.cols; ++x) {
            const Rgb c = colors[label[x]];
            const std::uint8_t channel[3] = {c.r, c.g, c.b};
            for (int k = 0; k < 3; ++k)
                dst[3 * x + k] =
                    std::uint8_t(std::min(255.0, (1.0 - alpha) * src[3 * x + k] + alpha * channel[k] + 0.5));
        }
    }
    return out;
}

fs::path resolveCheckpoint(RunStore& store, const std::string& runId, const std::string& choice) {
    if (!store.run(runId)) throw Error("no run '" + runId + "' in workspace " + store.workspace().string());
    if (choice.empty() || choice == "latest") {
        const auto checkpoints = store.checkpoints(runId);
        // Newest first; the trainer deletes older checkpoints beyond its keep count, their rows stay.
        std::vector<CheckpointRecord> sorted(checkpoints.begin(), checkpoints.end());
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const CheckpointRecord& a, const CheckpointRecord& b) { return a.step > b.step; });
        for (const auto& c : sorted)
            if (isFile(weightsOf(c.path))) return weightsOf(c.path);
        throw Error("run " + runId + " has no checkpoint" +
                    (checkpoints.empty() ? std::string() : " whose files still exist") +
                    (checkpoints.empty() ? " (it was stopped before the first one was written)" : ""));
    }
    if (choice == "best") {
        const auto epochs = store.epochs(runId);
        const EpochRecord* best = nullptr;
        for (const auto& e : epochs)
            if (e.mIoU && (!best || *e.mIoU > *best->mIoU)) best = &e;
        if (!best) throw Error("run " + runId + " has no evaluation with an mIoU, so no best checkpoint");
        // Match by step: per-iteration validation numbers evaluations, not epochs.
        for (const auto& c : store.checkpoints(runId))
            if (c.step == best->step) {
                const fs::path weights = weightsOf(c.path);
                if (!isFile(weights))
                    throw FileError(weights.string(), "the best checkpoint's weights file is missing");
                return weights;
            }
        throw Error("run " + runId + " recorded no checkpoint at its best evaluation (step " +
                    std::to_string(best->step) + ")");
    }
    const fs::path weights = weightsOf(choice);
    if (!isFile(weights)) throw FileError(weights.string(), "no such checkpoint file");
    return weights;
}

LoadedRun loadRun(RunStore& store, const std::string& runId, const std::string& checkpoint, const std::string& device) {
    const auto record = store.run(runId);
    if (!record) throw Error("no run '" + runId + "' in workspace " + store.workspace().string());
    LoadedRun run;
    run.runId = runId;
    run.experiment = parseExperiment(nlohmann::json::parse(record->experimentJson));
    run.checkpoint = resolveCheckpoint(store, runId, checkpoint);
    for (const auto& c : store.checkpoints(runId))
        if (weightsOf(c.path) == run.checkpoint) {
            run.epoch = c.epoch;
            run.step = c.step;
        }

    std::map<std::string, std::string> metadata;
    const TensorMap weights = readSafetensors(run.checkpoint, &metadata);

    // The class table: the dataset's when it can be opened, else what the run's metrics recorded.
    std::vector<ClassInfo> datasetClasses;
    try {
        datasetClasses = Dataset::open(datasetSpec(run.experiment, run.experiment.dataset.valSplit))->classes();
    } catch (const std::exception&) {
        const auto epochs = store.epochs(runId);
        if (!epochs.empty())
            for (const auto& c : store.classMetrics(runId, epochs.back().epoch))
                datasetClasses.push_back({c.className, vocColor(c.classIndex)});
    }
    int classes = 0;
    if (auto it = metadata.find("classes"); it != metadata.end()) {
        try {
            classes = std::stoi(it->second);
        } catch (const std::exception&) {
            throw FileError(run.checkpoint.string(), "metadata 'classes' is not a number: " + it->second);
        }
    } else if (run.experiment.model.classes) {
        classes = *run.experiment.model.classes;
    } else {
        classes = int(datasetClasses.size());
    }
    if (classes < 1) throw FileError(run.checkpoint.string(), "cannot tell the model's number of classes");
    run.classes = classes;
    for (int c = 0; c < classes; ++c)
        run.classInfo.push_back(c < int(datasetClasses.size()) ? datasetClasses[std::size_t(c)]
                                                               : ClassInfo{"class" + std::to_string(c), vocColor(c)});

    run.model = createModel(run.experiment.model.id, classes);
    LoadOptions strict;
    strict.strict = true;
    try {
        loadStateDict(*run.model, weights, strict);
    } catch (const Error& e) {
        throw FileError(run.checkpoint.string(), e.what());
    }
    run.device = resolveDevice(device.empty() ? run.experiment.runtime.device : device);
    run.model->to(run.device);
    run.model->eval();
    return run;
}

}  // namespace segscope::core
