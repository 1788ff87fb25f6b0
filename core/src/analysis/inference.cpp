#include "segscope/core/analysis/inference.h"

#include "analysis/batch_prediction.h"
#include "models/eval_mode_scope.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstring>

namespace segscope::core {

Evaluation evaluate(SegmentationModel& model, BatchLoader& loader, int classes, const EvaluationOptions& options) {
    const bool original = options.resolution == EvalResolution::Original;
    const std::size_t total = loader.dataset().size();
    ConfusionMatrix matrix(classes);
    Evaluation result;
    // Summed on the device: one host transfer at the end instead of one per batch.
    torch::Tensor lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(options.device));
    std::int64_t lossBatches = 0;
    BatchPredictionOptions batches;
    batches.device = options.device;
    batches.amp = options.amp;
    batches.channelsLast = options.channelsLast;
    // Resizing logits to each original size leaves glibc holding freed pages, as in predictSplit.
    batches.trimHeapAfterBatch = original;
    const bool done = forEachPredictedBatch(
        model, loader, batches, options.cancel, [&](const Batch& batch, const torch::Tensor& logits) {
            const torch::Tensor labels = batch.labels.to(options.device);
            if (options.loss) {
                lossSum += options.loss(logits, labels).to(torch::kFloat64);
                ++lossBatches;
            }
            if (!original) {
                const torch::Tensor prediction = logits.argmax(1);
                matrix.update(prediction, labels);
                auto ious = batchImageIou(prediction, labels, classes);
                for (std::size_t i = 0; i < ious.size(); ++i) {
                    result.imageIds.push_back(batch.ids[i]);
                    result.images.push_back(std::move(ious[i]));
                }
            } else {
                for (std::size_t i = 0; i < batch.indices.size(); ++i) {
                    const cv::Mat label = originalLabel(loader.dataset(), batch.indices[i], options.voidToBackground);
                    const torch::Tensor target =
                        torch::from_blob(label.data, {1, label.rows, label.cols}, torch::kUInt8)
                            .to(torch::kInt64)
                            .to(options.device);
                    const torch::Tensor prediction = predictAtSize(logits, i, label.rows, label.cols);
                    matrix.update(prediction, target);
                    auto ious = batchImageIou(prediction, target, classes);
                    result.imageIds.push_back(batch.ids[i]);
                    result.images.push_back(std::move(ious.front()));
                }
            }
            if (options.progress) options.progress(result.imageIds.size(), total);
        });
    result.cancelled = !done;
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
        predictAtSize(logits, 0, rgb.rows, rgb.cols).squeeze(0).to(torch::kUInt8).cpu().contiguous();
    cv::Mat out(rgb.rows, rgb.cols, CV_8UC1);
    std::memcpy(out.data, labels.data_ptr<std::uint8_t>(), std::size_t(rgb.rows) * rgb.cols);
    return out;
}

}  // namespace segscope::core
