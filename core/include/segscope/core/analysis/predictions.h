#pragma once
// Predictions of a whole dataset split, cached in the run folder, and the questions a failure
// analysis asks of them: per-image confusion matrices, rankings by IoU, "which images confuse
// class c", confusion-cell click-through, and pixel-level error maps.
//
// The cache. predictSplit() runs a run's checkpoint over every image of a split (the validation
// transform, then logits resized bilinearly back to each image's original size before the argmax,
// exactly as evaluate() with EvalResolution::Original) and writes, into
//   <run folder>/predictions/<checkpoint stem>__<split>/
//     index.json               version, key, classes (names, colours), images (id, size, files)
//     confusion.safetensors    tensor "confusion": int64 (N, K, K), per image, rows = ground truth
//     pred/<NNNNNN>.png        predicted labels, 8-bit palette PNG at the image's original size
//     gt/<NNNNNN>.png          the ground truth as scored (after voidToBackground), same format
// (NNNNNN: the image's position in the split, zero-padded to six digits). Everything is written
// into a sibling folder "predictions/.partial-*" and renamed into place only when complete, so an
// interrupted or cancelled prediction never leaves a folder that opens as valid; index.json is
// the last file written inside it. A crash may leave a ".partial-*" folder behind; nothing reads
// those, and the next writer in that folder removes them.
//
// Validity. A cache is valid when index.json parses, its format version is kPredictionCacheVersion,
// its key equals the expected PredictionKey field by field, every file it lists (each image's
// pred/ and gt/ PNG, confusion.safetensors) exists with the size and FNV-1a 64 checksum recorded
// in index.json, and confusion.safetensors holds (N, K, K) int64 for N listed images and K
// classes. Any other state is Missing (no index.json) or Stale (anything else, with a reason
// naming the first difference, e.g. "gt/000003.png is missing"); predictSplit() then predicts
// again. Checking reads every cache file once (VOC val: about 15 MB of PNGs).
//
// Writing checks every file: each PNG is read back and compared with the mask it encodes, and
// a full disk throws DiskFullError (file_output.h) with the partial folder removed. A writer
// also removes ".partial-*" folders left in predictions/ by writers that are gone (their pid no
// longer runs).
//
// Memory. predictSplit() streams the split: at any time it holds the loader's prefetched batches
// at the transform size plus one image's original-size label and prediction. A PredictionSet holds
// N * K * K counts and per-image metadata, never masks; masks are read from the cache on demand.
//
// Threads. predictSplit() runs on the calling thread (plus the loader's workers) and uses the
// model, which must not run elsewhere at the same time. openPredictions() and predictionKey() only
// read files. A PredictionSet is an immutable value after construction: every const member may be
// called from any number of threads at once (the load* functions only read files).
//
// Errors: Error / FileError (naming the file) for unreadable inputs and unwritable folders.
#include "segscope/core/analysis/metrics.h"
#include "segscope/core/cancel.h"
#include "segscope/core/data/classes.h"
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/transforms.h"
#include "segscope/core/error.h"

#include <opencv2/core.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

struct Experiment;
struct LoadedRun;

// 2: sizes and checksums of every file in index.json (version 1 caches are Stale and rebuilt).
inline constexpr int kPredictionCacheVersion = 2;

// Everything a cached prediction depends on. Two keys are equal when every field is. The key does
// not cover the dataset's files themselves: after editing a split's images, masks or split file in
// place, predict again with PredictionOptions::force (segscope-cli predict-split --force).
struct PredictionKey {
    std::filesystem::path checkpoint;       // the weights file, absolute and lexically normal
    std::uintmax_t checkpointBytes = 0;     // its size
    std::int64_t checkpointModifiedNs = 0;  // its last write time (filesystem clock, ns)
    std::string modelId;
    int classes = 0;  // the model's output classes (K)
    DatasetKind datasetKind = DatasetKind::Voc;
    std::filesystem::path datasetRoot;  // absolute and lexically normal
    std::string split;
    PetsMode petsMode = PetsMode::Trimap;  // all fields are compared, whatever the dataset kind
    double validationFraction = 0.1;       // carved splits: the carve's fraction and seed
    std::uint64_t validationSeed = 0;
    bool voidToBackground = false;
    int height = 0;  // the eval transform's size
    int width = 0;
    Normalization normalization = Normalization::ImageNet;

    friend bool operator==(const PredictionKey& a, const PredictionKey& b);
    friend bool operator!=(const PredictionKey& a, const PredictionKey& b) { return !(a == b); }
};

// The key for predicting `split` of `experiment`'s dataset with the weights file `checkpoint`
// (stat-ed here: FileError when it does not exist) and `classes` outputs.
PredictionKey predictionKey(const Experiment& experiment, const std::filesystem::path& checkpoint,
                            const std::string& split, int classes);
// The same for a loaded run (its checkpoint and class count).
PredictionKey predictionKey(const LoadedRun& run, const std::string& split);
// For a run's checkpoint without building the model (the cache check of the CLI and the GUI):
// predictionKey(RunStore&, …) in runs/run_loader.h, i.e. this on inspectRun()'s result.

// <runFolder>/predictions/<stem>__<split>, where stem is the checkpoint's file name without
// ".safetensors" and '/' '\\' in the split become '_'.
std::filesystem::path predictionFolder(const std::filesystem::path& runFolder, const std::filesystem::path& checkpoint,
                                       const std::string& split);

// One image of a prediction set.
struct PredictionImage {
    std::string id;
    int width = 0;  // original size (of the label as scored)
    int height = 0;
    std::filesystem::path image;        // the dataset's image file; empty when not known
    std::filesystem::path prediction;   // cached predicted labels (CV_8UC1 palette PNG)
    std::filesystem::path groundTruth;  // cached ground truth as scored (CV_8UC1 palette PNG)
};

enum class SortOrder { Ascending, Descending };

// A split's predictions: per-image confusion matrices and where the masks are. Indices below are
// positions in images() (the split's order). Every function taking an image index or a class
// throws Error when it is out of range ([0, size()), [0, classes())).
class PredictionSet {
public:
    PredictionSet() = default;
    // `confusion` holds images.size() * K * K counts, image-major, then ground truth row, then
    // predicted column (K = classes.size() >= 1); Error otherwise or for negative counts.
    PredictionSet(PredictionKey key, std::vector<ClassInfo> classes, std::vector<PredictionImage> images,
                  std::vector<std::int64_t> confusion, std::filesystem::path folder = {});

    const PredictionKey& key() const { return key_; }
    const std::filesystem::path& folder() const { return folder_; }  // the cache folder
    int classes() const { return int(classes_.size()); }
    const std::vector<ClassInfo>& classInfo() const { return classes_; }
    std::vector<std::string> classNames() const;
    std::size_t size() const { return images_.size(); }
    const std::vector<PredictionImage>& images() const { return images_; }
    const PredictionImage& image(std::size_t index) const;

    // M[target][prediction] of one image (ignored ground truth excluded).
    std::int64_t count(std::size_t index, int target, int prediction) const;
    ConfusionMatrix imageConfusion(std::size_t index) const;
    // The split's matrix: the sum of the per-image matrices.
    const ConfusionMatrix& totals() const { return totals_; }
    // computeMetrics(totals(), classNames()).
    SegmentationMetrics metrics() const;

    // metrics.h's imageIou() of one image: per class IoU where the class's union
    // (TP + FP + FN) > 0, and their mean.
    const ImageIou& imageIou(std::size_t index) const;
    std::optional<double> imageMeanIou(std::size_t index) const;
    std::optional<double> imageClassIou(std::size_t index, int c) const;

    // Orders. Every ranking breaks ties (exactly equal values, as doubles) by image id ascending
    // (std::string comparison), then by index; that tie-break is the same for both orders.
    //
    // All images by per-image mean IoU; images without one (every pixel ignored) come last,
    // by id.
    std::vector<std::size_t> rankByMeanIou(SortOrder order) const;
    // Images whose class c has union > 0 (in ground truth or prediction), by that image's IoU of
    // class c; the other images are left out.
    std::vector<std::size_t> rankByClassIou(int c, SortOrder order) const;
    // Filter: images whose ground truth has at least one pixel of class c (row sum > 0), in
    // index order.
    std::vector<std::size_t> containingClass(int c) const;
    // The pixels of one image where class c took part in an error:
    //   sum over j != c of M[c][j] (ground truth c predicted as another class, FN)
    // + sum over i != c of M[i][c] (another class predicted as c, FP).
    std::int64_t confusedPixels(std::size_t index, int c) const;
    // "Where c was most confused": images with confusedPixels(i, c) > 0, by it descending.
    std::vector<std::size_t> mostConfused(int c) const;
    // Confusion-cell click-through: images with M[i][j] > 0, by M[i][j] descending. (i == j
    // gives the images by correctly labelled pixels of class i.)
    std::vector<std::size_t> imagesForCell(int target, int prediction) const;

    // Masks on demand (read from the cache; FileError naming the file when unreadable or not
    // of the recorded size). CV_8UC1 at the original size; ground truth keeps kIgnoreIndex.
    cv::Mat loadPrediction(std::size_t index) const;
    cv::Mat loadGroundTruth(std::size_t index) const;
    // The dataset's image, RGB CV_8UC3 (FileError when image is empty or unreadable).
    cv::Mat loadImage(std::size_t index) const;

private:
    void checkIndex(std::size_t index) const;
    void checkClass(int c) const;

    PredictionKey key_;
    std::vector<ClassInfo> classes_;
    std::vector<PredictionImage> images_;
    std::vector<std::int64_t> confusion_;
    std::vector<ImageIou> ious_;
    ConfusionMatrix totals_{1};
    std::filesystem::path folder_;
};

enum class CacheState { Valid, Missing, Stale };

struct CacheLookup {
    CacheState state = CacheState::Missing;
    // Missing/Stale: why, e.g. "the checkpoint file changed since the prediction (size or
    // modification time)".
    std::string reason;
    std::optional<PredictionSet> set;  // Valid only
};

// Opens the cache folder and checks it against `expected` (see "Validity" above). Reads
// index.json and checksums every file it lists; writes nothing. Never throws: a missing folder
// or index.json is Missing; a different key, version, a missing, truncated or edited file, or an
// unreadable or inconsistent one is Stale, with the reason.
CacheLookup openPredictions(const std::filesystem::path& folder, const PredictionKey& expected);

// Writes a prediction cache image by image, then publishes it atomically. Used by predictSplit();
// tests and tools use it directly to build a set from known (id, prediction, ground truth) masks.
// Not thread-safe; one writer per folder at a time (a second writer's commit replaces the first).
class PredictionCacheWriter {
public:
    // Creates "<folder's parent>/.partial-<folder name>-<unique>" (FileError when it cannot).
    // `classes` (K >= 1 entries) names and colours the classes; K must equal key.classes.
    PredictionCacheWriter(std::filesystem::path folder, PredictionKey key, std::vector<ClassInfo> classes);
    // Removes the partial folder unless commit() succeeded.
    ~PredictionCacheWriter();
    PredictionCacheWriter(const PredictionCacheWriter&) = delete;
    PredictionCacheWriter& operator=(const PredictionCacheWriter&) = delete;

    // Adds the next image: prediction and ground truth CV_8UC1 of the same non-empty size;
    // predictions in [0, K), ground truth in [0, K) or kIgnoreIndex (Error otherwise). Writes
    // both PNGs now and keeps only the K x K counts.
    void add(const std::string& id, const cv::Mat& prediction, const cv::Mat& groundTruth,
             const std::filesystem::path& image = {});
    std::size_t size() const { return images_.size(); }

    // Writes confusion.safetensors and index.json, replaces any existing folder by the partial
    // one (rename), and returns the set as openPredictions() would. Call at most once.
    PredictionSet commit();

private:
    std::filesystem::path folder_;
    std::filesystem::path partial_;
    PredictionKey key_;
    std::vector<ClassInfo> classes_;
    std::vector<PredictionImage> images_;
    std::vector<std::string> digests_;  // per image: its files' sizes and checksums (JSON)
    std::vector<std::int64_t> confusion_;
    bool committed_ = false;
};

struct PredictionOptions {
    std::size_t batchSize = 0;  // 0: the experiment's training.batch_size
    int workers = -1;           // loader threads; negative: the experiment's runtime.workers
    bool force = false;         // predict again even when a valid cache exists
    // Called after each batch (done images, split size), on the calling thread.
    std::function<void(std::size_t done, std::size_t total)> progress;
    // Polled before each batch; once cancelled, predictSplit() stops, removes its partial folder
    // and leaves any earlier cache as it was.
    CancelToken cancel;
};

struct SplitPrediction {
    std::optional<PredictionSet> set;  // empty only when cancelled
    bool fromCache = false;            // a valid cache was reopened; nothing was predicted
    bool cancelled = false;
    std::filesystem::path folder;  // the cache folder
};

// Predicts `split` of the run's dataset (the demo dataset is written first when needed) into
// predictionFolder(runFolder, run.checkpoint, split), or reopens it when valid (unless
// options.force). Uses the run's device, the experiment's AMP and channels-last settings, its
// eval transform and voidToBackground; classes named and coloured by the split's dataset (then
// run.classInfo, then "classN" with VOC colours beyond the dataset's classes). Ground truth
// outside [0, run.classes) other than 255 is an Error.
SplitPrediction predictSplit(const LoadedRun& run, const std::filesystem::path& runFolder, const std::string& split,
                             const PredictionOptions& options = {});

// ---- Pixel-level views (pure functions) ----

// What one pixel is for a chosen class c. Ignored wins: a pixel whose ground truth is
// kIgnoreIndex is Ignored whatever was predicted.
enum class PixelOutcome : std::uint8_t {
    Other = 0,          // neither ground truth nor prediction is c
    TruePositive = 1,   // ground truth c, predicted c
    FalsePositive = 2,  // ground truth another class, predicted c
    FalseNegative = 3,  // ground truth c, predicted another class
    Ignored = 4,        // ground truth kIgnoreIndex
};

// The outcome of every pixel for class c as a CV_8UC1 image of PixelOutcome values. prediction
// and ground truth: CV_8UC1 of the same non-empty size (Error otherwise); c in [0, 255).
cv::Mat errorMap(const cv::Mat& prediction, const cv::Mat& groundTruth, int c);

// Display colours, distinct from each other:
//   Other (0, 0, 0) black, TruePositive (0, 200, 0) green, FalsePositive (230, 0, 0) red,
//   FalseNegative (0, 90, 255) blue, Ignored (255, 255, 255) white.
Rgb outcomeColor(PixelOutcome outcome);
// An RGB CV_8UC3 image of outcomeColor() per pixel of an errorMap() image (Error for other
// types or values above 4).
cv::Mat colorErrorMap(const cv::Mat& outcomes);
// `rgb` (CV_8UC3, same size) with every pixel other than Other blended with its outcome colour,
// as overlayLabels() blends: (1 - alpha) * image + alpha * colour, rounded half up; Other pixels
// keep the image.
cv::Mat overlayErrorMap(const cv::Mat& rgb, const cv::Mat& outcomes, double alpha = 0.6);

// Confusion-cell highlight: CV_8UC1, 255 where groundTruth == target && prediction == predicted,
// else 0. Same input checks as errorMap().
cv::Mat cellMask(const cv::Mat& prediction, const cv::Mat& groundTruth, int target, int predicted);

}  // namespace segscope::core
