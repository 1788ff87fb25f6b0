#pragma once
// Private to analysis/: the one loop that runs a model over an evaluation loader, under evaluate()
// and predictSplit(), and the per-image steps both take at the original resolution.
#include "segscope/core/cancel.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/model.h"

#include <torch/types.h>
#include <opencv2/core.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace segscope::core {

struct BatchPredictionOptions {
    torch::Device device{torch::kCPU};  // the model's device; batches are moved there
    AmpMode amp = AmpMode::Off;         // CUDA autocast; ignored on the CPU
    bool channelsLast = false;          // CUDA only
    // Return the heap's freed pages to the system after each batch (per-image resizes).
    bool trimHeapAfterBatch = false;
};

// One pass over `loader` (from startEpoch(0)): the model in eval mode (restored afterwards, also
// when it throws), under c10::InferenceMode. Before each batch `cancel` is polled; then the
// images go to the device, the model runs (autocast on CUDA only) and onBatch receives the batch
// and its float32 logits (B, K, h, w) on the device. The loop itself never waits on the device:
// whatever onBatch reads back is its own sync. Returns false when cancelled.
bool forEachPredictedBatch(SegmentationModel& model, BatchLoader& loader, const BatchPredictionOptions& options,
                           const CancelToken& cancel,
                           const std::function<void(const Batch& batch, const torch::Tensor& logits)>& onBatch);

// Image `i` of a batch's logits resized bilinearly (align_corners=false) to rows x cols, then
// the argmax: (1, rows, cols) int64 on the logits' device.
torch::Tensor predictAtSize(const torch::Tensor& logits, std::size_t i, int rows, int cols);

// Sample `index`'s label as stored (CV_8UC1), void (255) mapped to 0 when voidToBackground.
cv::Mat originalLabel(const Dataset& dataset, std::size_t index, bool voidToBackground);

}  // namespace segscope::core
