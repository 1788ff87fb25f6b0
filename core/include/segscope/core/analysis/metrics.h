#pragma once
// Segmentation metrics over a confusion matrix, with mmsegmentation's IoUMetric definitions.
//
// A ConfusionMatrix accumulates pixel counts over a whole split; metrics are computed once from
// the totals (never averaged over batches or images). Per class c, with TP = M[c][c],
// FP = column sum - TP, FN = row sum - TP:
//   IoU       = TP / (TP + FP + FN)
//   Acc       = TP / (TP + FN)          (recall; mmsegmentation's per-class "Acc")
//   Dice      = 2 TP / (2 TP + FP + FN)
//   Precision = TP / (TP + FP)
//   Recall    = TP / (TP + FN)
//   aAcc      = sum TP / all valid pixels
// Zero denominators: a per-class value whose denominator is zero is undefined (0/0 is NaN in
// mmsegmentation) and is returned as an empty std::optional, serialised as JSON null. Means
// skip undefined values (mmsegmentation's np.nanmean), so
//   mIoU, mDice average over classes with TP + FP + FN > 0 (present in ground truth or prediction),
//   mAcc averages over classes with ground-truth pixels (TP + FN > 0).
// A class only predicted counts with IoU 0 in mIoU; a class absent from both is left out. When
// no class qualifies (e.g. every pixel ignored) the mean itself is empty.
//
// Pixels whose target equals the ignore index are excluded entirely (their prediction is not
// counted either). Any other target or prediction outside [0, classes) is an error.
//
// Thread-safety: a ConfusionMatrix is a plain value; use one per thread or guard it.
#include "segscope/core/data/classes.h"
#include "segscope/core/error.h"

#include <torch/types.h>
#include <opencv2/core.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

class ConfusionMatrix {
public:
    // `classes` >= 1. `ignoreIndex` marks excluded target pixels; a negative value ignores none.
    explicit ConfusionMatrix(int classes, int ignoreIndex = kIgnoreIndex);

    int classes() const { return classes_; }
    int ignoreIndex() const { return ignoreIndex_; }

    // Adds prediction/target label tensors (integer dtype, same shape, any device). The counting
    // runs on the tensors' device; the K x K counts come back to the host in one transfer.
    // Throws Error for mismatched shapes or labels outside [0, classes) (other than ignore).
    void update(const torch::Tensor& prediction, const torch::Tensor& target);
    // Adds CV_8UC1 prediction and target masks of equal size. Same errors as above.
    void update(const cv::Mat& prediction, const cv::Mat& target);
    // Adds another matrix of the same class count.
    void merge(const ConfusionMatrix& other);
    void reset();

    // count(t, p): pixels with ground truth t predicted as p.
    std::int64_t count(int target, int prediction) const {
        return counts_[static_cast<std::size_t>(target) * classes_ + prediction];
    }
    void setCount(int target, int prediction, std::int64_t value) {
        counts_[static_cast<std::size_t>(target) * classes_ + prediction] = value;
    }
    std::int64_t totalPixels() const;             // all counted (non-ignored) pixels
    std::int64_t groundTruthPixels(int c) const;  // row sum
    std::int64_t predictedPixels(int c) const;    // column sum

private:
    int classes_;
    int ignoreIndex_;
    std::vector<std::int64_t> counts_;  // row-major, rows = ground truth, cols = prediction
};

struct ClassMetrics {
    std::string name;
    std::optional<double> iou;
    std::optional<double> acc;
    std::optional<double> dice;
    std::optional<double> precision;
    std::optional<double> recall;
    // Ground-truth pixels of the class / all counted pixels; empty when nothing was counted.
    std::optional<double> pixelShare;
    std::int64_t groundTruthPixels = 0;
    std::int64_t predictedPixels = 0;
};

struct SegmentationMetrics {
    std::optional<double> aAcc;
    std::optional<double> mIoU;
    std::optional<double> mAcc;
    std::optional<double> mDice;
    std::vector<ClassMetrics> perClass;
    std::int64_t pixels = 0;
};

// Computes the metrics of the accumulated counts. `classNames` may be empty (names become
// "class0".."classK-1") or hold exactly classes() names; otherwise throws Error.
SegmentationMetrics computeMetrics(const ConfusionMatrix& matrix, const std::vector<std::string>& classNames = {});

// {"aAcc", "mIoU", "mAcc", "mDice", "per_class": [{"name", "IoU", "Acc", "Dice", "Precision",
// "Recall", "pixel_share"}]} with null for undefined values.
std::string metricsToJson(const SegmentationMetrics& metrics, int indent = 2);
// A fraction as a percentage with two decimals ("42.00"), "-" when undefined; for tables.
std::string formatPercent(const std::optional<double>& fraction);
// A fixed-width table for terminals (values in percent, "-" for undefined).
std::string metricsToText(const SegmentationMetrics& metrics);

// IoU of a single image, stored per validation image so failures can be ranked.
struct ImageIou {
    std::vector<std::optional<double>> perClass;  // empty where the class has union 0
    std::optional<double> meanIou;                // over classes with union > 0
};
ImageIou imageIou(const ConfusionMatrix& matrix);
// Per-image IoU of a batch: prediction and target of shape (B, ...) on any device; one host
// transfer for the whole batch. Same errors as ConfusionMatrix::update.
std::vector<ImageIou> batchImageIou(const torch::Tensor& prediction, const torch::Tensor& target, int classes,
                                    int ignoreIndex = kIgnoreIndex);
// "[0.5,null,...]" for the run store's per_class_iou_json column.
std::string perClassIouJson(const ImageIou& iou);

}  // namespace segscope::core
