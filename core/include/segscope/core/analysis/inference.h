#pragma once
// Using models: scoring one on a dataset split (the trainer's validation and `segscope-cli eval`
// share evaluate()) and predicting single images. Loading a recorded run is runs/run_loader.h.
//
// Threads: every function runs on the calling thread (evaluate() also uses the loader's worker
// threads) and may be called from any thread, one call per model at a time: a model is not
// safe to run from two threads at once.
#include "segscope/core/analysis/metrics.h"
#include "segscope/core/cancel.h"
#include "segscope/core/data/classes.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/model.h"

#include <torch/types.h>
#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

struct EvaluationOptions {
    torch::Device device{torch::kCPU};  // the model's device; batches are moved there
    // Train: score at the loader's (resized) label size. Original: logits resized bilinearly
    // (align_corners=false) to each image's original size and scored against its label as
    // stored, loaded again from the loader's dataset.
    EvalResolution resolution = EvalResolution::Train;
    // Original resolution only: map void (255) to class 0 in the reloaded labels, as the
    // transform does for the resized ones (TransformConfig::voidToBackground).
    bool voidToBackground = false;
    // Class names of the metrics; empty: "class0".."classK-1".
    std::vector<std::string> classNames;
    // When set, the loss of each batch (logits, labels at the loader's label size) is averaged
    // into meanLoss. The trainer passes its SegmentationLoss (analysis/ does not include training/).
    std::function<torch::Tensor(const torch::Tensor& logits, const torch::Tensor& labels)> loss;
    AmpMode amp = AmpMode::Off;  // CUDA autocast; ignored on the CPU
    bool channelsLast = false;   // CUDA only
    // Called after each batch with the images scored so far and the split's size.
    std::function<void(std::size_t done, std::size_t total)> progress;
    // Polled before each batch; once cancelled the evaluation stops (Evaluation::cancelled).
    // It may block (the trainer waits here while paused).
    CancelToken cancel;
};

struct Evaluation {
    SegmentationMetrics metrics;  // over the whole split (one confusion matrix)
    std::optional<double> meanLoss;
    std::vector<std::string> imageIds;  // in the loader's order
    std::vector<ImageIou> images;       // per image, same order as imageIds
    bool cancelled = false;             // metrics then cover only the batches scored
};

// Scores `model` (of `classes` outputs) on one pass over `loader`, which must be an evaluation
// loader (LoaderOptions::training false; the order is kept). Runs under c10::InferenceMode with the
// model in eval mode and restores the model's previous mode, also when it throws. Labels outside
// [0, classes) other than 255 throw Error; the loader's FileErrors pass through.
Evaluation evaluate(SegmentationModel& model, BatchLoader& loader, int classes, const EvaluationOptions& options);

// The same on a dataset: builds an evaluation loader with `transform`'s eval transform.
Evaluation evaluate(SegmentationModel& model, std::shared_ptr<const Dataset> dataset, const TransformConfig& transform,
                    int classes, std::size_t batchSize, int workers, const EvaluationOptions& options);

// Labels (CV_8UC1, the image's own size) for one RGB image (CV_8UC3): the image is resized to
// transform.height x transform.width as in validation (bilinear), normalised, run through the
// model (in eval mode, restored afterwards) on `device`, and the logits are resized bilinearly
// (align_corners=false) back to the image's size before the argmax. Throws Error for an empty
// or non-RGB image or a model with more than 256 classes.
cv::Mat predictImage(SegmentationModel& model, const cv::Mat& rgb, const TransformConfig& transform,
                     const torch::Device& device);

// overlayLabels() lives in segscope/core/data/overlay.h.

}  // namespace segscope::core
