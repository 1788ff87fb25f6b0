#include "segscope/core/analysis/predictions.h"

#include "models/eval_mode_scope.h"

#include "training/autocast_scope.h"

#include "segscope/core/experiment.h"
#include "segscope/core/file_output.h"
#include "segscope/core/runtime.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/data/overlay.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/runs/loaded_run.h"
#include "segscope/core/models/weights.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <csignal>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <map>
#include <random>
#include <sstream>

namespace segscope::core {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using json = nlohmann::json;

namespace {

constexpr const char* kIndexFile = "index.json";
constexpr const char* kConfusionFile = "confusion.safetensors";
constexpr const char* kFormatName = "segscope-predictions";

// FNV-1a, 64 bits, over a file's bytes: recorded in index.json per file, so a deleted,
// truncated or edited cache file is noticed on open (it guards against damage, not attacks).
std::uint64_t fnv1a64(const std::uint8_t* data, std::size_t size) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < size; ++i) {
        hash ^= data[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

std::string hex64(std::uint64_t value) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
    return text;
}

// The whole file, or nullopt when it cannot be opened.
std::optional<std::vector<std::uint8_t>> readWholeFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return std::nullopt;
    return bytes;
}

json digestJson(const std::vector<std::uint8_t>& bytes) {
    return {{"bytes", bytes.size()}, {"fnv1a64", hex64(fnv1a64(bytes.data(), bytes.size()))}};
}

// Empty when `path` holds exactly the bytes `digest` describes; else why not.
std::string digestMismatch(const fs::path& folder, const fs::path& relative, const json& digest) {
    const fs::path path = folder / relative;
    const auto bytes = readWholeFile(path);
    if (!bytes) return relative.generic_string() + " is missing";
    if (bytes->size() != digest.at("bytes").get<std::uint64_t>())
        return relative.generic_string() + " changed since it was written (" + std::to_string(bytes->size()) +
               " bytes, " + digest.at("bytes").dump() + " recorded)";
    if (hex64(fnv1a64(bytes->data(), bytes->size())) != digest.at("fnv1a64").get<std::string>())
        return relative.generic_string() + " changed since it was written (checksum)";
    return {};
}

// ".partial-<name>-<pid>-<n>": the pid of the writer that made it, or 0.
long partialOwner(const std::string& name) {
    const std::size_t last = name.rfind('-');
    if (last == std::string::npos || last == 0) return 0;
    const std::size_t before = name.rfind('-', last - 1);
    if (before == std::string::npos) return 0;
    try {
        return std::stol(name.substr(before + 1, last - before - 1));
    } catch (const std::exception&) {
        return 0;
    }
}

// Partial folders whose writer is gone (a crash, a kill) are removed; a live writer's are kept.
// Those without a readable pid go after a day without changes.
void removeStalePartials(const fs::path& predictionsFolder) {
    std::error_code ec;
    if (!fs::is_directory(predictionsFolder, ec)) return;
    std::vector<fs::path> stale;
    for (const auto& entry : fs::directory_iterator(predictionsFolder, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(".partial-", 0) != 0) continue;
        const long pid = partialOwner(name);
        bool gone = pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
        if (pid <= 0) {
            const auto modified = fs::last_write_time(entry.path(), ec);
            gone = !ec && fs::file_time_type::clock::now() - modified > std::chrono::hours(24);
        }
        if (gone) stale.push_back(entry.path());
    }
    for (const auto& path : stale) fs::remove_all(path, ec);
}

fs::path normalPath(const fs::path& path) {
    return fs::absolute(path).lexically_normal();
}

json keyToJson(const PredictionKey& key) {
    return {
        {"checkpoint", key.checkpoint.string()},
        {"checkpoint_bytes", key.checkpointBytes},
        {"checkpoint_modified_ns", key.checkpointModifiedNs},
        {"model", key.modelId},
        {"classes", key.classes},
        {"dataset_kind", datasetKindName(key.datasetKind)},
        {"dataset_root", key.datasetRoot.string()},
        {"split", key.split},
        {"pets_mode", petsModeName(key.petsMode)},
        {"validation_fraction", key.validationFraction},
        {"validation_seed", key.validationSeed},
        {"void_to_background", key.voidToBackground},
        {"height", key.height},
        {"width", key.width},
        {"normalization", normalizationName(key.normalization)},
    };
}

Normalization parseNormalization(const std::string& text) {
    for (Normalization n : {Normalization::ImageNet, Normalization::Half})
        if (text == normalizationName(n)) return n;
    throw Error("unknown normalization '" + text + "'");
}

PredictionKey keyFromJson(const json& j) {
    PredictionKey key;
    key.checkpoint = j.at("checkpoint").get<std::string>();
    key.checkpointBytes = j.at("checkpoint_bytes").get<std::uintmax_t>();
    key.checkpointModifiedNs = j.at("checkpoint_modified_ns").get<std::int64_t>();
    key.modelId = j.at("model").get<std::string>();
    key.classes = j.at("classes").get<int>();
    const auto kind = parseDatasetKind(j.at("dataset_kind").get<std::string>());
    if (!kind) throw Error("unknown dataset kind");
    key.datasetKind = *kind;
    key.datasetRoot = j.at("dataset_root").get<std::string>();
    key.split = j.at("split").get<std::string>();
    const auto pets = parsePetsMode(j.at("pets_mode").get<std::string>());
    if (!pets) throw Error("unknown pets mode");
    key.petsMode = *pets;
    key.validationFraction = j.at("validation_fraction").get<double>();
    key.validationSeed = j.at("validation_seed").get<std::uint64_t>();
    key.voidToBackground = j.at("void_to_background").get<bool>();
    key.height = j.at("height").get<int>();
    key.width = j.at("width").get<int>();
    key.normalization = parseNormalization(j.at("normalization").get<std::string>());
    return key;
}

// The first field in which a cached key differs from the expected one, for the Stale reason.
std::string keyDifference(const PredictionKey& cached, const PredictionKey& expected) {
    if (cached.checkpoint != expected.checkpoint)
        return "made with another checkpoint (" + cached.checkpoint.string() + ")";
    if (cached.checkpointBytes != expected.checkpointBytes ||
        cached.checkpointModifiedNs != expected.checkpointModifiedNs)
        return "the checkpoint file changed since the prediction (size or modification time)";
    if (cached.modelId != expected.modelId) return "made with model " + cached.modelId;
    if (cached.classes != expected.classes) return "made with " + std::to_string(cached.classes) + " classes";
    if (cached.datasetKind != expected.datasetKind || cached.datasetRoot != expected.datasetRoot)
        return "made on another dataset (" + std::string(datasetKindName(cached.datasetKind)) + " at " +
               cached.datasetRoot.string() + ")";
    if (cached.split != expected.split) return "made on split " + cached.split;
    if (cached.petsMode != expected.petsMode)
        return "made with Pets mode " + std::string(petsModeName(cached.petsMode));
    if (cached.validationFraction != expected.validationFraction || cached.validationSeed != expected.validationSeed)
        return "made with another validation carve (fraction or seed)";
    if (cached.voidToBackground != expected.voidToBackground) return "made with another void_to_background";
    if (cached.height != expected.height || cached.width != expected.width)
        return "made at transform size " + std::to_string(cached.height) + "x" + std::to_string(cached.width);
    if (cached.normalization != expected.normalization) return "made with another normalization";
    return {};
}

std::string sanitizeSplit(const std::string& split) {
    std::string out = split;
    for (char& c : out)
        if (c == '/' || c == '\\') c = '_';
    return out;
}

std::string imageFileName(std::size_t index) {
    std::ostringstream name;
    name << std::setw(6) << std::setfill('0') << index << ".png";
    return name.str();
}

std::vector<Rgb> paletteOf(const std::vector<ClassInfo>& classes) {
    std::vector<Rgb> palette;
    for (const auto& c : classes) palette.push_back(c.color);
    return palette;
}

void checkLabelPair(const cv::Mat& prediction, const cv::Mat& groundTruth, const char* what) {
    if (prediction.type() != CV_8UC1 || groundTruth.type() != CV_8UC1)
        throw Error(std::string(what) + " needs 8-bit single-channel prediction and ground truth");
    if (prediction.empty() || prediction.size() != groundTruth.size())
        throw Error(std::string(what) + " needs a prediction and a ground truth of the same non-empty size");
}

cv::Mat readLabelPng(const fs::path& path, int width, int height) {
    const StoredMask stored = readMaskPng(path);
    if (stored.encoding == MaskEncoding::Rgb || stored.values.type() != CV_8UC1)
        throw FileError(path.string(), "not a single-channel label PNG");
    if (stored.values.cols != width || stored.values.rows != height)
        throw FileError(path.string(), "is " + std::to_string(stored.values.cols) + "x" +
                                           std::to_string(stored.values.rows) + ", the cache recorded " +
                                           std::to_string(width) + "x" + std::to_string(height));
    return stored.values;
}

// Sorted by (value, order), ties by id then index; `Key` is double or int64.
template <typename Key>
std::vector<std::size_t> rankBy(std::vector<std::pair<std::size_t, Key>> entries, SortOrder order,
                                const std::vector<PredictionImage>& images) {
    std::sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) {
        if (a.second != b.second) return order == SortOrder::Ascending ? a.second < b.second : a.second > b.second;
        const std::string& idA = images[a.first].id;
        const std::string& idB = images[b.first].id;
        if (idA != idB) return idA < idB;
        return a.first < b.first;
    });
    std::vector<std::size_t> out;
    out.reserve(entries.size());
    for (const auto& e : entries) out.push_back(e.first);
    return out;
}


}  // namespace

// ---- Keys and folders ----

bool operator==(const PredictionKey& a, const PredictionKey& b) {
    return keyDifference(a, b).empty();
}

PredictionKey predictionKey(const Experiment& experiment, const fs::path& checkpoint, const std::string& split,
                            int classes) {
    PredictionKey key;
    std::error_code ec;
    key.checkpoint = normalPath(checkpoint);
    key.checkpointBytes = fs::file_size(key.checkpoint, ec);
    if (ec) throw FileError(key.checkpoint.string(), "cannot read the checkpoint's size: " + ec.message());
    const auto modified = fs::last_write_time(key.checkpoint, ec);
    if (ec) throw FileError(key.checkpoint.string(), "cannot read the checkpoint's time: " + ec.message());
    key.checkpointModifiedNs =
        std::chrono::duration_cast<std::chrono::nanoseconds>(modified.time_since_epoch()).count();
    key.modelId = experiment.model.id;
    key.classes = classes;
    const DatasetSpec spec = datasetSpec(experiment, split);
    key.datasetKind = spec.kind;
    key.datasetRoot = normalPath(spec.root);
    key.split = split;
    key.petsMode = spec.petsMode;
    key.validationFraction = spec.validationFraction;
    key.validationSeed = spec.validationSeed;
    key.voidToBackground = experiment.dataset.voidToBackground;
    key.height = experiment.transforms.height;
    key.width = experiment.transforms.width;
    key.normalization = experiment.transforms.normalization;
    return key;
}

PredictionKey predictionKey(const LoadedRun& run, const std::string& split) {
    return predictionKey(run.experiment, run.checkpoint, split, run.classes);
}

fs::path predictionFolder(const fs::path& runFolder, const fs::path& checkpoint, const std::string& split) {
    std::string stem = checkpoint.filename().string();
    const std::string suffix = ".safetensors";
    if (stem.size() > suffix.size() && stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0)
        stem.resize(stem.size() - suffix.size());
    return runFolder / "predictions" / (stem + "__" + sanitizeSplit(split));
}

// ---- PredictionSet ----

PredictionSet::PredictionSet(PredictionKey key, std::vector<ClassInfo> classes, std::vector<PredictionImage> images,
                             std::vector<std::int64_t> confusion, fs::path folder)
    : key_(std::move(key)),
      classes_(std::move(classes)),
      images_(std::move(images)),
      confusion_(std::move(confusion)),
      folder_(std::move(folder)) {
    if (classes_.empty()) throw Error("a prediction set needs at least one class");
    const std::size_t k = classes_.size();
    if (confusion_.size() != images_.size() * k * k)
        throw Error("a prediction set of " + std::to_string(images_.size()) + " images and " + std::to_string(k) +
                    " classes needs " + std::to_string(images_.size() * k * k) + " confusion counts, got " +
                    std::to_string(confusion_.size()));
    if (std::any_of(confusion_.begin(), confusion_.end(), [](std::int64_t v) { return v < 0; }))
        throw Error("a prediction set's confusion counts must not be negative");
    totals_ = ConfusionMatrix(int(k));
    ious_.reserve(images_.size());
    for (std::size_t i = 0; i < images_.size(); ++i) {
        const ConfusionMatrix m = imageConfusion(i);
        totals_.merge(m);
        ious_.push_back(core::imageIou(m));
    }
}

void PredictionSet::checkIndex(std::size_t index) const {
    if (index >= images_.size())
        throw Error("image index " + std::to_string(index) + " out of range (" + std::to_string(images_.size()) +
                    " images)");
}

void PredictionSet::checkClass(int c) const {
    if (c < 0 || c >= classes())
        throw Error("class " + std::to_string(c) + " out of range (" + std::to_string(classes()) + " classes)");
}

std::vector<std::string> PredictionSet::classNames() const {
    std::vector<std::string> names;
    for (const auto& c : classes_) names.push_back(c.name);
    return names;
}

const PredictionImage& PredictionSet::image(std::size_t index) const {
    checkIndex(index);
    return images_[index];
}

std::int64_t PredictionSet::count(std::size_t index, int target, int prediction) const {
    checkIndex(index);
    checkClass(target);
    checkClass(prediction);
    const std::size_t k = classes_.size();
    return confusion_[(index * k + std::size_t(target)) * k + std::size_t(prediction)];
}

ConfusionMatrix PredictionSet::imageConfusion(std::size_t index) const {
    checkIndex(index);
    const int k = classes();
    ConfusionMatrix m(k);
    const std::int64_t* counts = confusion_.data() + index * std::size_t(k) * std::size_t(k);
    for (int t = 0; t < k; ++t)
        for (int p = 0; p < k; ++p) m.setCount(t, p, counts[t * k + p]);
    return m;
}

SegmentationMetrics PredictionSet::metrics() const {
    return computeMetrics(totals_, classNames());
}

const ImageIou& PredictionSet::imageIou(std::size_t index) const {
    checkIndex(index);
    return ious_[index];
}

std::optional<double> PredictionSet::imageMeanIou(std::size_t index) const {
    return imageIou(index).meanIou;
}

std::optional<double> PredictionSet::imageClassIou(std::size_t index, int c) const {
    checkClass(c);
    return imageIou(index).perClass[std::size_t(c)];
}

std::vector<std::size_t> PredictionSet::rankByMeanIou(SortOrder order) const {
    std::vector<std::pair<std::size_t, double>> defined;
    std::vector<std::pair<std::size_t, double>> undefined;
    for (std::size_t i = 0; i < images_.size(); ++i) {
        if (ious_[i].meanIou)
            defined.emplace_back(i, *ious_[i].meanIou);
        else
            undefined.emplace_back(i, 0.0);
    }
    std::vector<std::size_t> out = rankBy(std::move(defined), order, images_);
    const std::vector<std::size_t> last = rankBy(std::move(undefined), SortOrder::Ascending, images_);
    out.insert(out.end(), last.begin(), last.end());
    return out;
}

std::vector<std::size_t> PredictionSet::rankByClassIou(int c, SortOrder order) const {
    checkClass(c);
    std::vector<std::pair<std::size_t, double>> entries;
    for (std::size_t i = 0; i < images_.size(); ++i)
        if (const auto& iou = ious_[i].perClass[std::size_t(c)]) entries.emplace_back(i, *iou);
    return rankBy(std::move(entries), order, images_);
}

std::vector<std::size_t> PredictionSet::containingClass(int c) const {
    checkClass(c);
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < images_.size(); ++i) {
        std::int64_t row = 0;
        for (int p = 0; p < classes(); ++p) row += count(i, c, p);
        if (row > 0) out.push_back(i);
    }
    return out;
}

std::int64_t PredictionSet::confusedPixels(std::size_t index, int c) const {
    checkIndex(index);
    checkClass(c);
    std::int64_t total = 0;
    for (int other = 0; other < classes(); ++other)
        if (other != c) total += count(index, c, other) + count(index, other, c);
    return total;
}

std::vector<std::size_t> PredictionSet::mostConfused(int c) const {
    checkClass(c);
    std::vector<std::pair<std::size_t, std::int64_t>> entries;
    for (std::size_t i = 0; i < images_.size(); ++i)
        if (const std::int64_t n = confusedPixels(i, c); n > 0) entries.emplace_back(i, n);
    return rankBy(std::move(entries), SortOrder::Descending, images_);
}

std::vector<std::size_t> PredictionSet::imagesForCell(int target, int prediction) const {
    checkClass(target);
    checkClass(prediction);
    std::vector<std::pair<std::size_t, std::int64_t>> entries;
    for (std::size_t i = 0; i < images_.size(); ++i)
        if (const std::int64_t n = count(i, target, prediction); n > 0) entries.emplace_back(i, n);
    return rankBy(std::move(entries), SortOrder::Descending, images_);
}

cv::Mat PredictionSet::loadPrediction(std::size_t index) const {
    const PredictionImage& im = image(index);
    return readLabelPng(im.prediction, im.width, im.height);
}

cv::Mat PredictionSet::loadGroundTruth(std::size_t index) const {
    const PredictionImage& im = image(index);
    return readLabelPng(im.groundTruth, im.width, im.height);
}

cv::Mat PredictionSet::loadImage(std::size_t index) const {
    const PredictionImage& im = image(index);
    if (im.image.empty()) throw Error("image '" + im.id + "' has no image file recorded");
    return readImageRgb(im.image);
}

// ---- The cache on disk ----

CacheLookup openPredictions(const fs::path& folder, const PredictionKey& expected) {
    CacheLookup lookup;
    std::error_code ec;
    const fs::path indexPath = folder / kIndexFile;
    if (!fs::is_regular_file(indexPath, ec)) {
        lookup.state = CacheState::Missing;
        lookup.reason = "no prediction cache at " + folder.string();
        return lookup;
    }
    lookup.state = CacheState::Stale;
    try {
        json index;
        {
            std::ifstream in(indexPath);
            index = json::parse(in);
        }
        if (index.value("format", "") != kFormatName) {
            lookup.reason = indexPath.string() + " is not a prediction index";
            return lookup;
        }
        if (index.at("version").get<int>() != kPredictionCacheVersion) {
            lookup.reason = "written by another cache version (" + index.at("version").dump() + ")";
            return lookup;
        }
        const PredictionKey key = keyFromJson(index.at("key"));
        if (const std::string difference = keyDifference(key, expected); !difference.empty()) {
            lookup.reason = difference;
            return lookup;
        }
        std::vector<ClassInfo> classes;
        for (const auto& c : index.at("classes")) {
            const auto color = c.at("color").get<std::vector<int>>();
            if (color.size() != 3) throw Error("a class colour needs three values");
            classes.push_back({c.at("name").get<std::string>(),
                               Rgb{std::uint8_t(color[0]), std::uint8_t(color[1]), std::uint8_t(color[2])}});
        }
        if (int(classes.size()) != key.classes) throw Error("the class table does not match the key's class count");
        std::vector<PredictionImage> images;
        for (const auto& entry : index.at("images")) {
            PredictionImage im;
            im.id = entry.at("id").get<std::string>();
            im.width = entry.at("width").get<int>();
            im.height = entry.at("height").get<int>();
            const std::string imageFile = entry.at("image").get<std::string>();
            if (!imageFile.empty()) im.image = imageFile;
            const fs::path prediction = entry.at("prediction").get<std::string>();
            const fs::path groundTruth = entry.at("ground_truth").get<std::string>();
            if (prediction.is_absolute() || groundTruth.is_absolute() ||
                prediction.lexically_normal().string().rfind("..", 0) == 0 ||
                groundTruth.lexically_normal().string().rfind("..", 0) == 0)
                throw Error("image '" + im.id + "' names a file outside the cache");
            for (const auto& [file, digest] : {std::pair{prediction, entry.at("prediction_digest")},
                                               std::pair{groundTruth, entry.at("ground_truth_digest")}}) {
                if (std::string mismatch = digestMismatch(folder, file, digest); !mismatch.empty()) {
                    lookup.reason = mismatch;
                    return lookup;
                }
            }
            im.prediction = folder / prediction;
            im.groundTruth = folder / groundTruth;
            images.push_back(std::move(im));
        }
        if (std::string mismatch = digestMismatch(folder, kConfusionFile, index.at("confusion_digest"));
            !mismatch.empty()) {
            lookup.reason = mismatch;
            return lookup;
        }
        const TensorMap tensors = readSafetensors(folder / kConfusionFile);
        const auto it = tensors.find("confusion");
        const std::int64_t n = std::int64_t(images.size()), k = std::int64_t(classes.size());
        if (it == tensors.end() || it->second.scalar_type() != torch::kInt64 ||
            it->second.sizes() != torch::IntArrayRef({n, k, k})) {
            lookup.reason = (folder / kConfusionFile).string() + " does not hold an int64 (" + std::to_string(n) +
                            ", " + std::to_string(k) + ", " + std::to_string(k) + ") tensor 'confusion'";
            return lookup;
        }
        const torch::Tensor counts = it->second.contiguous();
        std::vector<std::int64_t> confusion(counts.data_ptr<std::int64_t>(),
                                            counts.data_ptr<std::int64_t>() + counts.numel());
        lookup.set.emplace(key, std::move(classes), std::move(images), std::move(confusion), folder);
        lookup.state = CacheState::Valid;
        lookup.reason.clear();
    } catch (const std::exception& e) {
        lookup.set.reset();
        lookup.state = CacheState::Stale;
        lookup.reason = std::string("unreadable cache: ") + e.what();
    }
    return lookup;
}

PredictionCacheWriter::PredictionCacheWriter(fs::path folder, PredictionKey key, std::vector<ClassInfo> classes)
    : folder_(std::move(folder)), key_(std::move(key)), classes_(std::move(classes)) {
    if (classes_.empty() || classes_.size() > 255)
        throw Error("a prediction cache needs 1 to 255 classes, got " + std::to_string(classes_.size()));
    if (int(classes_.size()) != key_.classes)
        throw Error("the class table has " + std::to_string(classes_.size()) + " classes, the key " +
                    std::to_string(key_.classes));
    removeStalePartials(folder_.parent_path());
    // pid plus a random number: two writers (processes or threads) never share a partial folder.
    std::random_device device;
    const std::string unique = std::to_string(::getpid()) + "-" + std::to_string(device());
    partial_ = folder_.parent_path() / (".partial-" + folder_.filename().string() + "-" + unique);
    std::error_code ec;
    fs::create_directories(partial_ / "pred", ec);
    if (!ec) fs::create_directories(partial_ / "gt", ec);
    if (ec) throw FileError(partial_.string(), "cannot create the prediction folder: " + ec.message());
}

PredictionCacheWriter::~PredictionCacheWriter() {
    if (committed_) return;
    std::error_code ec;
    fs::remove_all(partial_, ec);
}

void PredictionCacheWriter::add(const std::string& id, const cv::Mat& prediction, const cv::Mat& groundTruth,
                                const fs::path& image) {
    if (committed_) throw Error("the prediction cache was already committed");
    checkLabelPair(prediction, groundTruth, "a prediction cache");
    const std::size_t k = classes_.size();
    std::vector<std::int64_t> counts(k * k, 0);
    for (int y = 0; y < prediction.rows; ++y) {
        const auto* p = prediction.ptr<std::uint8_t>(y);
        const auto* t = groundTruth.ptr<std::uint8_t>(y);
        for (int x = 0; x < prediction.cols; ++x) {
            if (p[x] >= k)
                throw Error("image '" + id + "': predicted label " + std::to_string(p[x]) + " outside [0, " +
                            std::to_string(k) + ")");
            if (t[x] == kIgnoreIndex) continue;
            if (t[x] >= k)
                throw Error("image '" + id + "': ground-truth label " + std::to_string(t[x]) + " outside [0, " +
                            std::to_string(k) + ") and not 255");
            ++counts[std::size_t(t[x]) * k + p[x]];
        }
    }
    const std::string name = imageFileName(images_.size());
    const std::vector<Rgb> palette = paletteOf(classes_);
    json digests;
    for (const auto& [folder, mask, key] : {std::tuple{"pred", &prediction, "prediction_digest"},
                                            std::tuple{"gt", &groundTruth, "ground_truth_digest"}}) {
        const fs::path path = partial_ / folder / name;
        // A PNG never exceeds its raw pixels by more than its headers: the space a write needs.
        const std::uint64_t upperBound = std::uint64_t(mask->total()) + 64 * 1024;
        try {
            writePalettePng(path, *mask, palette);
            // Read back: a full disk can cut a file short without the writer noticing.
            const auto bytes = readWholeFile(path);
            if (!bytes || bytes->empty()) throw FileError(path.string(), "the written file cannot be read back");
            const cv::Mat reread = readLabelPng(path, mask->cols, mask->rows);
            if (cv::countNonZero(reread != *mask) != 0)
                throw FileError(path.string(), "the written file does not read back as written");
            digests[key] = digestJson(*bytes);
        } catch (const FileError&) {
            rethrowAsDiskFullIfShort(path, upperBound);
        }
    }
    PredictionImage im;
    im.id = id;
    im.width = prediction.cols;
    im.height = prediction.rows;
    im.image = image.empty() ? fs::path() : normalPath(image);
    im.prediction = fs::path("pred") / name;
    im.groundTruth = fs::path("gt") / name;
    images_.push_back(std::move(im));
    digests_.push_back(digests.dump());
    confusion_.insert(confusion_.end(), counts.begin(), counts.end());
}

PredictionSet PredictionCacheWriter::commit() {
    if (committed_) throw Error("the prediction cache was already committed");
    const std::int64_t n = std::int64_t(images_.size()), k = std::int64_t(classes_.size());
    torch::Tensor counts = torch::empty({n, k, k}, torch::kInt64);
    if (!confusion_.empty())
        std::memcpy(counts.data_ptr<std::int64_t>(), confusion_.data(), confusion_.size() * sizeof(std::int64_t));
    const fs::path confusionPath = partial_ / kConfusionFile;
    try {
        writeSafetensors(confusionPath, {{"confusion", counts}},
                         {{"format", kFormatName}, {"version", std::to_string(kPredictionCacheVersion)}});
    } catch (const FileError&) {
        rethrowAsDiskFullIfShort(confusionPath, std::uint64_t(counts.numel()) * 8 + 64 * 1024);
    }
    const auto confusionBytes = readWholeFile(confusionPath);
    if (!confusionBytes) throw FileError(confusionPath.string(), "the written file cannot be read back");

    json index = {{"format", kFormatName},
                  {"version", kPredictionCacheVersion},
                  {"key", keyToJson(key_)},
                  {"created_at", isoNow()},
                  {"confusion_digest", digestJson(*confusionBytes)}};
    json classes = json::array();
    for (const auto& c : classes_) classes.push_back({{"name", c.name}, {"color", {c.color.r, c.color.g, c.color.b}}});
    index["classes"] = std::move(classes);
    json images = json::array();
    for (std::size_t i = 0; i < images_.size(); ++i) {
        const auto& im = images_[i];
        json entry = {{"id", im.id},
                      {"width", im.width},
                      {"height", im.height},
                      {"image", im.image.string()},
                      {"prediction", im.prediction.generic_string()},
                      {"ground_truth", im.groundTruth.generic_string()}};
        entry.update(json::parse(digests_[i]));
        images.push_back(std::move(entry));
    }
    index["images"] = std::move(images);
    const std::string indexText = index.dump(1) + "\n";
    writeFileAtomically(partial_ / kIndexFile, indexText.data(), indexText.size(), /*sync=*/false);

    // Publishing: the old folder goes first, so the name only ever points at a complete cache or
    // at nothing. A concurrent writer may publish in between; then ours replaces it on the retry.
    std::error_code ec;
    for (int attempt = 0; attempt < 3; ++attempt) {
        fs::remove_all(folder_, ec);
        ec.clear();
        fs::rename(partial_, folder_, ec);
        if (!ec) break;
    }
    if (ec) throw FileError(folder_.string(), "cannot publish the prediction cache: " + ec.message());
    committed_ = true;

    std::vector<PredictionImage> published = images_;
    for (auto& im : published) {
        im.prediction = folder_ / im.prediction;
        im.groundTruth = folder_ / im.groundTruth;
    }
    return PredictionSet(key_, classes_, std::move(published), confusion_, folder_);
}

// ---- Predicting a split ----

SplitPrediction predictSplit(const LoadedRun& run, const fs::path& runFolder, const std::string& split,
                             const PredictionOptions& options) {
    if (!run.model) throw Error("predictSplit needs a loaded model");
    if (run.classes > 255)
        throw Error("a prediction cache holds at most 255 classes; the model has " + std::to_string(run.classes));
    const Experiment& experiment = run.experiment;
    prepareDemoDataset(experiment);
    SplitPrediction result;
    result.folder = predictionFolder(runFolder, run.checkpoint, split);
    const PredictionKey key = predictionKey(run, split);
    if (!options.force) {
        CacheLookup lookup = openPredictions(result.folder, key);
        if (lookup.state == CacheState::Valid) {
            result.set = std::move(lookup.set);
            result.fromCache = true;
            return result;
        }
    }

    const auto dataset = Dataset::open(datasetSpec(experiment, split));
    // The split's own class table first: loadRun() falls back to "classN" when the run's val split
    // cannot be opened (e.g. a Pets copy holding only test.txt), but this split can.
    std::vector<ClassInfo> classes(std::size_t(run.classes));
    for (int c = 0; c < run.classes; ++c) {
        const std::size_t i = std::size_t(c);
        if (c < dataset->numClasses())
            classes[i] = dataset->classes()[i];
        else if (i < run.classInfo.size() && !run.classInfo[i].name.empty())
            classes[i] = run.classInfo[i];
        else
            classes[i] = {"class" + std::to_string(c), vocColor(c)};
    }
    PredictionCacheWriter writer(result.folder, key, std::move(classes));

    LoaderOptions loaderOpts = loaderOptions(experiment, false);
    if (options.batchSize > 0) loaderOpts.batchSize = options.batchSize;
    if (options.workers >= 0) loaderOpts.workers = options.workers;
    BatchLoader loader(dataset, transformConfig(experiment), loaderOpts);

    SegmentationModel& model = *run.model;
    EvalModeScope evalMode(model);
    // Not just NoGradGuard: InferenceMode also skips version counters and view tracking
    // (measured 5-15 % on small-op models, docs/benchmarks.md).
    c10::InferenceMode inferenceMode;
    const bool cuda = run.device.is_cuda();
    const AmpMode amp = experiment.training.amp;
    const std::size_t total = dataset->size();
    loader.startEpoch(0);
    while (auto batch = loader.next()) {
        if (options.cancel.cancelled()) {
            result.cancelled = true;
            return result;  // the writer removes its partial folder
        }
        torch::Tensor images = batch->images.to(run.device);
        if (cuda && experiment.training.channelsLast) images = images.contiguous(at::MemoryFormat::ChannelsLast);
        torch::Tensor logits;
        {
            AutocastScope autocast(cuda && amp != AmpMode::Off, amp == AmpMode::Fp16 ? at::kHalf : at::kBFloat16);
            logits = model.forward(images).to(torch::kFloat32);
        }
        for (std::size_t i = 0; i < batch->indices.size(); ++i) {
            // The label at its stored size, as evaluate() reloads it for EvalResolution::Original.
            const LabeledImage sample = dataset->load(batch->indices[i]);
            cv::Mat label = sample.label;
            if (experiment.dataset.voidToBackground) label.setTo(0, label == kIgnoreIndex);
            const torch::Tensor prediction = F::interpolate(logits.slice(0, std::int64_t(i), std::int64_t(i) + 1),
                                                            F::InterpolateFuncOptions()
                                                                .size(std::vector<std::int64_t>{label.rows, label.cols})
                                                                .mode(torch::kBilinear)
                                                                .align_corners(false))
                                                 .argmax(1)
                                                 .squeeze(0)
                                                 .to(torch::kUInt8)
                                                 .cpu()
                                                 .contiguous();
            const cv::Mat predicted(label.rows, label.cols, CV_8UC1, prediction.data_ptr<std::uint8_t>());
            writer.add(batch->ids[i], predicted, label, dataset->samples()[batch->indices[i]].image);
        }
#if defined(__GLIBC__)
        // glibc kept the pages of the freed per-image resize temporaries (the upsample kernel
        // allocates its own, so reusing output buffers did not help): RSS grew by ~1.5 MB per
        // 320x240 image (+700 MB over 400) while the live heap stayed under 75 MB (heaptrack).
        // Trimming after each batch keeps RSS flat at no measurable cost.
        malloc_trim(0);
#endif
        if (options.progress) options.progress(writer.size(), total);
    }
    result.set = writer.commit();
    return result;
}

// ---- Pixel-level views ----

cv::Mat errorMap(const cv::Mat& prediction, const cv::Mat& groundTruth, int c) {
    checkLabelPair(prediction, groundTruth, "errorMap");
    if (c < 0 || c >= 255) throw Error("errorMap: class " + std::to_string(c) + " outside [0, 255)");
    cv::Mat out(prediction.size(), CV_8UC1);
    for (int y = 0; y < prediction.rows; ++y) {
        const auto* p = prediction.ptr<std::uint8_t>(y);
        const auto* t = groundTruth.ptr<std::uint8_t>(y);
        auto* o = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < prediction.cols; ++x) {
            PixelOutcome outcome = PixelOutcome::Other;
            if (t[x] == kIgnoreIndex)
                outcome = PixelOutcome::Ignored;
            else if (t[x] == c)
                outcome = p[x] == c ? PixelOutcome::TruePositive : PixelOutcome::FalseNegative;
            else if (p[x] == c)
                outcome = PixelOutcome::FalsePositive;
            o[x] = std::uint8_t(outcome);
        }
    }
    return out;
}

Rgb outcomeColor(PixelOutcome outcome) {
    switch (outcome) {
        case PixelOutcome::Other:
            return {0, 0, 0};
        case PixelOutcome::TruePositive:
            return {0, 200, 0};
        case PixelOutcome::FalsePositive:
            return {230, 0, 0};
        case PixelOutcome::FalseNegative:
            return {0, 90, 255};
        case PixelOutcome::Ignored:
            return {255, 255, 255};
    }
    throw Error("unknown pixel outcome " + std::to_string(int(outcome)));
}

namespace {
void checkOutcomes(const cv::Mat& outcomes, const char* what) {
    if (outcomes.type() != CV_8UC1) throw Error(std::string(what) + " needs an 8-bit single-channel outcome image");
    double maxValue = 0;
    if (!outcomes.empty()) cv::minMaxLoc(outcomes, nullptr, &maxValue);
    if (maxValue > double(PixelOutcome::Ignored))
        throw Error(std::string(what) + ": outcome value " + std::to_string(int(maxValue)) + " is not a PixelOutcome");
}
}  // namespace

cv::Mat colorErrorMap(const cv::Mat& outcomes) {
    checkOutcomes(outcomes, "colorErrorMap");
    cv::Mat out(outcomes.size(), CV_8UC3);
    for (int y = 0; y < outcomes.rows; ++y) {
        const auto* o = outcomes.ptr<std::uint8_t>(y);
        auto* d = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < outcomes.cols; ++x) {
            const Rgb c = outcomeColor(PixelOutcome(o[x]));
            d[3 * x] = c.r;
            d[3 * x + 1] = c.g;
            d[3 * x + 2] = c.b;
        }
    }
    return out;
}

cv::Mat overlayErrorMap(const cv::Mat& rgb, const cv::Mat& outcomes, double alpha) {
    checkOutcomes(outcomes, "overlayErrorMap");
    if (rgb.type() != CV_8UC3 || rgb.size() != outcomes.size())
        throw Error("overlayErrorMap needs an RGB image of the outcome image's size");
    if (!(alpha >= 0.0 && alpha <= 1.0)) throw Error("overlayErrorMap: alpha must lie in [0, 1]");
    cv::Mat out = rgb.clone();
    for (int y = 0; y < rgb.rows; ++y) {
        const auto* o = outcomes.ptr<std::uint8_t>(y);
        const auto* s = rgb.ptr<std::uint8_t>(y);
        auto* d = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < rgb.cols; ++x) {
            if (o[x] == std::uint8_t(PixelOutcome::Other)) continue;
            const Rgb c = outcomeColor(PixelOutcome(o[x]));
            d[3 * x] = blendChannel(s[3 * x], c.r, alpha);
            d[3 * x + 1] = blendChannel(s[3 * x + 1], c.g, alpha);
            d[3 * x + 2] = blendChannel(s[3 * x + 2], c.b, alpha);
        }
    }
    return out;
}

cv::Mat cellMask(const cv::Mat& prediction, const cv::Mat& groundTruth, int target, int predicted) {
    checkLabelPair(prediction, groundTruth, "cellMask");
    cv::Mat out(prediction.size(), CV_8UC1);
    for (int y = 0; y < prediction.rows; ++y) {
        const auto* p = prediction.ptr<std::uint8_t>(y);
        const auto* t = groundTruth.ptr<std::uint8_t>(y);
        auto* o = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < prediction.cols; ++x) o[x] = (t[x] == target && p[x] == predicted) ? 255 : 0;
    }
    return out;
}

}  // namespace segscope::core
