#pragma once
// Effective receptive fields (ERF) of a model's named stages (Luo et al., "Understanding the
// Effective Receptive Field in Deep Convolutional Neural Networks", NeurIPS 2016), as in the
// SegFormer paper's CNN-vs-transformer figure. docs/erf.md describes the method and outputs.
//
// For every image and every stage S (a (B, C, h, w) feature map from forwardStages(), or the
// logits (B, K, H, W) for "decoder"), the objective is a scalar at the centre of S:
//     ReluSum (default):  sum_c ReLU(S[c, h / 2, w / 2])      Sum:  sum_c S[c, h / 2, w / 2]
// (integer division), and its gradient g (3, H, W) with respect to the input image is reduced to
// an H x W map:
//     AbsSum (default):   sum over colour channels of |g|     ReluSum: sum of ReLU(g)
// The stage's ERF is the mean of these maps over the images.
//
// The model runs in eval mode with parameter gradients off; both are restored on return, also
// when an exception leaves. One forward per batch serves every stage (one autograd::grad call per
// stage over the retained graph). In eval mode the images of a batch are independent, so one
// gradient of the batch-summed objective gives each image's gradient.
//
// Thread-safety: the functions run on the calling thread and use the model exclusively for their
// duration; do not use the same model from another thread meanwhile. Errors: Error for bad
// arguments (unknown stage, wrong input shape), c10::Error from LibTorch, FileError from the
// dataset or from saving.
#include "segscope/core/cancel.h"
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/transforms.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/model.h"
#include "segscope/core/runs/loaded_run.h"

#include <opencv2/core.hpp>

#include <torch/types.h>
#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace segscope::core {

enum class ErfObjective { ReluSum, Sum };
enum class ErfReduction { AbsSum, ReluSum };

const char* erfObjectiveName(ErfObjective objective);  // "relu-sum", "sum"
const char* erfReductionName(ErfReduction reduction);  // "abs-sum", "relu-sum"

// The mass fractions whose centred-square area ratios are reported.
inline const std::vector<double>& erfAreaFractions() {
    static const std::vector<double> fractions{0.2, 0.3, 0.5, 0.99};
    return fractions;
}

struct ErfOptions {
    std::vector<std::string> stages;  // empty: every name of model.stageNames()
    ErfObjective objective = ErfObjective::ReluSum;
    ErfReduction reduction = ErfReduction::AbsSum;
    int batchSize = 4;  // images per forward pass (dataset input; >= 1)
};

// Progress after each batch: images done so far, and the total.
using ErfProgress = std::function<void(std::int64_t imagesDone, std::int64_t imagesTotal)>;

// The centred square holding a mass fraction (see erfAreaRatio()).
struct ErfAreaRatio {
    double fraction = 0;   // t
    int sidePixels = 0;    // odd side 2r + 1 of the square before clipping to the image
    double areaRatio = 0;  // the square's area inside the image / (H * W)
};

struct StageErf {
    std::string stage;
    torch::Tensor map;                     // (H, W) float32 on the CPU: the mean gradient map over the images
    std::vector<ErfAreaRatio> areaRatios;  // one per erfAreaFractions() entry, in that order
    double effectiveRadiusPixels = 0;      // erfEffectiveRadius(map)
    double maxValue = 0;
    double sum = 0;
};

struct ErfResult {
    std::vector<StageErf> stages;  // in the order of ErfOptions::stages / model.stageNames()
    std::int64_t images = 0;       // images averaged (fewer than asked when cancelled)
    int height = 0;
    int width = 0;
    ErfObjective objective = ErfObjective::ReluSum;
    ErfReduction reduction = ErfReduction::AbsSum;
    bool cancelled = false;
    const StageErf* find(const std::string& stage) const;
};

// ERF of explicit inputs (B, 3, H, W), normalised as the model expects, moved to the model's
// device; all B images go through one forward pass. `cancel` is checked between stages; a
// cancelled call returns cancelled = true and images = 0 with all-zero maps.
ErfResult computeErf(SegmentationModel& model, const torch::Tensor& inputs, const ErfOptions& options = {},
                     const ErfProgress& progress = {}, CancelToken cancel = {});

// ERF of the first min(images, dataset.size()) samples of `dataset`, preprocessed as validation
// (applyEvalTransform + normalizeToChw, i.e. a BatchLoader with training = false), in batches of
// options.batchSize. `cancel` is checked between batches; a cancelled call returns the mean over
// the batches done so far with cancelled = true. Throws Error for images < 1 or an empty dataset.
ErfResult computeErf(SegmentationModel& model, std::shared_ptr<const Dataset> dataset, const TransformConfig& transform,
                     std::int64_t images, const ErfOptions& options = {}, const ErfProgress& progress = {},
                     CancelToken cancel = {});

// The ERF of a run, as the GUI's ERF panel computes it for each of its sources.
struct RunErf {
    ErfResult result;
    // The split's first image after the eval transform (RGB CV_8UC3, the ERF maps' size), for
    // drawing a heatmap over it; empty when the split is empty.
    cv::Mat sample;
};

// The model of `experiment` with modelId as training would start it, untrained: the torch seed is
// set to runtime.seed just before createModel() (so it is the run's own initial model), classes
// are model.classes or the val split's class count, on resolveDevice(runtime.device). No weights,
// checkpoint or class table. Prepares the demo dataset when the experiment uses it.
LoadedRun untrainedRun(const Experiment& experiment, const std::string& modelId);

// computeErf() of run.model over the first `images` samples of `split` (empty: the val split) of
// run.experiment's dataset, with run.experiment's eval transform. Prepares the demo dataset when
// the experiment uses it. Errors and cancellation as computeErf().
RunErf computeRunErf(const LoadedRun& run, std::int64_t images, const ErfOptions& options = {},
                     const std::string& split = {}, const ErfProgress& progress = {}, CancelToken cancel = {});

// Statistics of a non-negative (H, W) map, measured from the centre pixel (H / 2, W / 2):
//
// erfAreaRatio: the smallest centred square of odd side 2r + 1 (r = 0, 1, …, clipped to the image)
// whose mass is at least `fraction` of the total; areaRatio = its clipped area / (H * W). The odd
// sides make it a step function (on a uniform 64 x 64 map t = 0.5 gives side 47, 0.539). A map
// whose total is zero gives side 0 and area 0.
ErfAreaRatio erfAreaRatio(const torch::Tensor& map, double fraction);
// The mass-weighted RMS distance from the centre pixel, in pixels:
// sqrt(sum m(y, x) ((y - H/2)^2 + (x - W/2)^2) / sum m). 0 for a zero map.
double erfEffectiveRadius(const torch::Tensor& map);
// Fills areaRatios, effectiveRadiusPixels, maxValue and sum from stage.map.
void computeErfStatistics(StageErf& stage);

// Log-normalised heatmap in [0, 1]: log1p(k * map / max) / log1p(k), k = logScale (larger k
// shows more of the faint tail); all zeros for a zero map. (H, W) float32.
torch::Tensor erfHeatmap(const torch::Tensor& map, double logScale = 100.0);
// The heatmap through OpenCV's viridis colormap, written as an 8-bit colour PNG (through a
// temporary file, file_output.h). Throws FileError or DiskFullError.
void writeErfPng(const std::filesystem::path& path, const torch::Tensor& map, double logScale = 100.0);

// {"model", "images", "height", "width", "objective", "reduction", "cancelled", "heatmap_log_scale",
//  "stages": {name: {"area_ratios": {"0.2": r, …}, "square_sides": {"0.2": s, …},
//  "effective_radius_pixels", "max", "sum"}}}.
nlohmann::json erfSummaryJson(const ErfResult& result, const std::string& modelId);

// Writes DIR/erf.safetensors (one (H, W) float32 map per stage, named by stage), DIR/<stage>.png
// and DIR/erf.json (erfSummaryJson, plus "source"), erf.json last: a folder with erf.json is
// complete. Creates DIR. Throws FileError, DiskFullError (file_output.h) on a full disk; on any
// failure the files it wrote are removed again (and DIR, when it created it).
void saveErf(const std::filesystem::path& directory, const ErfResult& result, const std::string& modelId,
             const std::string& source = {});

// Reads a folder written by saveErf(): the maps from erf.safetensors in erf.json's stage order
// (safetensors order when erf.json is missing), with the statistics recomputed from the maps and
// images/objective/reduction/height/width from erf.json when present. Throws FileError naming the
// file that is missing or unreadable, or a map that is not 2-D.
ErfResult loadErf(const std::filesystem::path& directory);

// ERF snapshots recorded during training (training.erf_every_epochs): the trainer writes them to
// RUN/erf/epoch-EEEE-step-SSSSSSSS/ (saveErf layout), epoch = epochs completed (0: before training).
struct ErfSnapshot {
    int epoch = 0;
    std::int64_t step = 0;
    std::filesystem::path directory;
};
// The snapshots of a run folder that were completely written (erf.json present), sorted by step then epoch;
// empty when there are none (also when the folder does not exist). Other entries are ignored.
std::vector<ErfSnapshot> listErfSnapshots(const std::filesystem::path& runFolder);
// "epoch-EEEE-step-SSSSSSSS", the snapshot folder name.
std::string erfSnapshotName(int epoch, std::int64_t step);

}  // namespace segscope::core
