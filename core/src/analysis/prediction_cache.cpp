// The prediction cache: its key, its folder, index.json and per-file digests, opening a cache
// and writing one (PredictionCacheWriter).
#include "segscope/core/analysis/predictions.h"

#include "analysis/prediction_files.h"

#include "segscope/core/data/image_io.h"
#include "segscope/core/experiment.h"
#include "segscope/core/file_output.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/loaded_run.h"
#include "segscope/core/runtime.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <random>
#include <sstream>

namespace segscope::core {
namespace fs = std::filesystem;
using json = nlohmann::json;
using detail::checkLabelPair;
using detail::readLabelPng;

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

}  // namespace segscope::core
