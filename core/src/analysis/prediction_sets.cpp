// PredictionSet: the queries over a prediction cache (per-image IoU, rankings, confusion cells)
// and the reading of its files.
#include "segscope/core/analysis/predictions.h"

#include "analysis/prediction_files.h"

#include "segscope/core/data/image_io.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace segscope::core {
namespace fs = std::filesystem;

namespace detail {

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

}  // namespace detail

namespace {

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

using detail::readLabelPng;

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

}  // namespace segscope::core
