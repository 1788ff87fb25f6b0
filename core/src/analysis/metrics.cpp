#include "segscope/core/analysis/metrics.h"
#include "segscope/core/safe_text.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <iomanip>
#include <sstream>

namespace segscope::core {
namespace {

std::optional<double> ratio(double numerator, double denominator) {
    if (denominator <= 0) return std::nullopt;
    return numerator / denominator;
}

std::optional<double> meanOfDefined(const std::vector<std::optional<double>>& values) {
    double sum = 0;
    int n = 0;
    for (const auto& v : values)
        if (v) {
            sum += *v;
            ++n;
        }
    if (n == 0) return std::nullopt;
    return sum / n;
}

// Counts (group, target, prediction) triples with one bincount on the tensors' device and a
// single transfer, so validation does not sync once per image. Returns groups*K*K counts.
std::vector<std::int64_t> countPairs(const torch::Tensor& prediction, const torch::Tensor& target, int classes,
                                     int ignoreIndex, std::int64_t groups) {
    if (prediction.sizes() != target.sizes())
        throw Error("metrics: prediction shape " + c10::str(prediction.sizes()) + " differs from target shape " +
                    c10::str(target.sizes()));
    if (prediction.is_floating_point() || target.is_floating_point())
        throw Error("metrics: prediction and target must be integer label tensors");
    const std::int64_t k = classes;
    const std::int64_t cells = groups * k * k;
    if (prediction.numel() == 0) return std::vector<std::int64_t>(static_cast<std::size_t>(cells), 0);
    const auto p = prediction.reshape({groups, -1}).to(torch::kLong);
    const auto t = target.to(prediction.device()).reshape({groups, -1}).to(torch::kLong);
    const auto group = torch::arange(groups, p.options()).unsqueeze(1);
    const auto ignored = ignoreIndex >= 0 ? t.eq(ignoreIndex) : torch::zeros_like(t, torch::kBool);
    const auto bad = ~ignored & ((t < 0) | (t >= k) | (p < 0) | (p >= k));
    auto index = group * (k * k) + t.clamp(0, k - 1) * k + p.clamp(0, k - 1);
    index = torch::where(bad, torch::full_like(index, cells), index);
    index = torch::where(ignored, torch::full_like(index, cells + 1), index);
    const auto counts = torch::bincount(index.flatten(), {}, cells + 2).cpu().contiguous();
    const std::int64_t* data = counts.data_ptr<std::int64_t>();
    if (data[cells] > 0)
        throw Error("metrics: " + std::to_string(data[cells]) + " pixels have a label outside [0, " +
                    std::to_string(classes) + ") that is not the ignore index");
    return std::vector<std::int64_t>(data, data + cells);
}

ImageIou iouFromCounts(const std::int64_t* counts, int classes) {
    ImageIou result;
    result.perClass.resize(static_cast<std::size_t>(classes));
    for (int c = 0; c < classes; ++c) {
        std::int64_t row = 0, column = 0;
        for (int j = 0; j < classes; ++j) {
            row += counts[c * classes + j];
            column += counts[j * classes + c];
        }
        const std::int64_t tp = counts[c * classes + c];
        result.perClass[static_cast<std::size_t>(c)] =
            ratio(static_cast<double>(tp), static_cast<double>(row + column - tp));
    }
    result.meanIou = meanOfDefined(result.perClass);
    return result;
}

nlohmann::json optionalJson(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int classes, int ignoreIndex) : classes_(classes), ignoreIndex_(ignoreIndex) {
    if (classes < 1) throw Error("metrics: class count must be >= 1, got " + std::to_string(classes));
    counts_.assign(static_cast<std::size_t>(classes) * classes, 0);
}

void ConfusionMatrix::update(const torch::Tensor& prediction, const torch::Tensor& target) {
    torch::NoGradGuard noGrad;
    const auto counts = countPairs(prediction, target, classes_, ignoreIndex_, 1);
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += counts[i];
}

void ConfusionMatrix::update(const cv::Mat& prediction, const cv::Mat& target) {
    if (prediction.type() != CV_8UC1 || target.type() != CV_8UC1)
        throw Error("metrics: masks must be 8-bit single-channel");
    if (prediction.size() != target.size())
        throw Error("metrics: prediction is " + std::to_string(prediction.cols) + "x" +
                    std::to_string(prediction.rows) + ", target is " + std::to_string(target.cols) + "x" +
                    std::to_string(target.rows));
    // Count into a scratch matrix first so a bad label leaves this one unchanged.
    std::vector<std::int64_t> scratch(counts_.size(), 0);
    std::int64_t bad = 0;
    for (int y = 0; y < target.rows; ++y) {
        const std::uint8_t* t = target.ptr<std::uint8_t>(y);
        const std::uint8_t* p = prediction.ptr<std::uint8_t>(y);
        for (int x = 0; x < target.cols; ++x) {
            if (t[x] == ignoreIndex_) continue;
            if (t[x] >= classes_ || p[x] >= classes_) {
                ++bad;
                continue;
            }
            ++scratch[static_cast<std::size_t>(t[x]) * classes_ + p[x]];
        }
    }
    if (bad > 0)
        throw Error("metrics: " + std::to_string(bad) + " pixels have a label outside [0, " + std::to_string(classes_) +
                    ") that is not the ignore index");
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += scratch[i];
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
    if (other.classes_ != classes_)
        throw Error("metrics: cannot merge a " + std::to_string(other.classes_) + "-class matrix into a " +
                    std::to_string(classes_) + "-class one");
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

void ConfusionMatrix::reset() {
    std::fill(counts_.begin(), counts_.end(), 0);
}

std::int64_t ConfusionMatrix::totalPixels() const {
    std::int64_t total = 0;
    for (auto c : counts_) total += c;
    return total;
}

std::int64_t ConfusionMatrix::groundTruthPixels(int c) const {
    std::int64_t total = 0;
    for (int j = 0; j < classes_; ++j) total += count(c, j);
    return total;
}

std::int64_t ConfusionMatrix::predictedPixels(int c) const {
    std::int64_t total = 0;
    for (int i = 0; i < classes_; ++i) total += count(i, c);
    return total;
}

SegmentationMetrics computeMetrics(const ConfusionMatrix& matrix, const std::vector<std::string>& classNames) {
    const int k = matrix.classes();
    if (!classNames.empty() && static_cast<int>(classNames.size()) != k)
        throw Error("metrics: " + std::to_string(classNames.size()) + " class names for " + std::to_string(k) +
                    " classes");
    SegmentationMetrics m;
    m.pixels = matrix.totalPixels();
    std::int64_t correct = 0;
    std::vector<std::optional<double>> ious, accs, dices;
    for (int c = 0; c < k; ++c) {
        ClassMetrics cm;
        cm.name = classNames.empty() ? "class" + std::to_string(c) : classNames[static_cast<std::size_t>(c)];
        const auto tp = static_cast<double>(matrix.count(c, c));
        cm.groundTruthPixels = matrix.groundTruthPixels(c);
        cm.predictedPixels = matrix.predictedPixels(c);
        const double fn = static_cast<double>(cm.groundTruthPixels) - tp;
        const double fp = static_cast<double>(cm.predictedPixels) - tp;
        cm.iou = ratio(tp, tp + fp + fn);
        cm.acc = ratio(tp, tp + fn);
        cm.recall = cm.acc;
        cm.dice = ratio(2 * tp, 2 * tp + fp + fn);
        cm.precision = ratio(tp, tp + fp);
        cm.pixelShare = ratio(static_cast<double>(cm.groundTruthPixels), static_cast<double>(m.pixels));
        correct += matrix.count(c, c);
        ious.push_back(cm.iou);
        accs.push_back(cm.acc);
        dices.push_back(cm.dice);
        m.perClass.push_back(std::move(cm));
    }
    m.aAcc = ratio(static_cast<double>(correct), static_cast<double>(m.pixels));
    m.mIoU = meanOfDefined(ious);
    m.mAcc = meanOfDefined(accs);
    m.mDice = meanOfDefined(dices);
    return m;
}

std::string metricsToJson(const SegmentationMetrics& metrics, int indent) {
    nlohmann::json j;
    j["aAcc"] = optionalJson(metrics.aAcc);
    j["mIoU"] = optionalJson(metrics.mIoU);
    j["mAcc"] = optionalJson(metrics.mAcc);
    j["mDice"] = optionalJson(metrics.mDice);
    j["pixels"] = metrics.pixels;
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& c : metrics.perClass) {
        classes.push_back({{"name", c.name},
                           {"IoU", optionalJson(c.iou)},
                           {"Acc", optionalJson(c.acc)},
                           {"Dice", optionalJson(c.dice)},
                           {"Precision", optionalJson(c.precision)},
                           {"Recall", optionalJson(c.recall)},
                           {"pixel_share", optionalJson(c.pixelShare)},
                           {"gt_pixels", c.groundTruthPixels},
                           {"pred_pixels", c.predictedPixels}});
    }
    j["per_class"] = std::move(classes);
    return dumpJson(j, indent);  // class names come from users' classes.txt: maybe not UTF-8
}

std::string formatPercent(const std::optional<double>& fraction) {
    std::ostringstream s;
    if (fraction)
        s << std::fixed << std::setprecision(2) << *fraction * 100;
    else
        s << "-";
    return s.str();
}

std::string metricsToText(const SegmentationMetrics& metrics) {
    std::size_t nameWidth = 5;
    for (const auto& c : metrics.perClass) nameWidth = std::max(nameWidth, c.name.size());
    std::ostringstream out;
    out << std::left << std::setw(static_cast<int>(nameWidth)) << "class" << std::right;
    for (const char* h : {"IoU", "Acc", "Dice", "Prec", "Recall", "Share"}) out << std::setw(9) << h;
    out << "\n";
    for (const auto& c : metrics.perClass) {
        out << std::left << std::setw(static_cast<int>(nameWidth)) << c.name << std::right;
        for (const auto* v : {&c.iou, &c.acc, &c.dice, &c.precision, &c.recall, &c.pixelShare})
            out << std::setw(9) << formatPercent(*v);
        out << "\n";
    }
    out << "\naAcc " << formatPercent(metrics.aAcc) << "  mIoU " << formatPercent(metrics.mIoU) << "  mAcc "
        << formatPercent(metrics.mAcc) << "  mDice " << formatPercent(metrics.mDice) << "  (percent, " << metrics.pixels
        << " pixels)\n";
    return out.str();
}

ImageIou imageIou(const ConfusionMatrix& matrix) {
    const int k = matrix.classes();
    std::vector<std::int64_t> counts(static_cast<std::size_t>(k) * k);
    for (int t = 0; t < k; ++t)
        for (int p = 0; p < k; ++p) counts[static_cast<std::size_t>(t) * k + p] = matrix.count(t, p);
    return iouFromCounts(counts.data(), k);
}

std::vector<ImageIou> batchImageIou(const torch::Tensor& prediction, const torch::Tensor& target, int classes,
                                    int ignoreIndex) {
    if (classes < 1) throw Error("metrics: class count must be >= 1, got " + std::to_string(classes));
    if (prediction.dim() < 1) throw Error("metrics: batch prediction needs a batch dimension");
    torch::NoGradGuard noGrad;
    const std::int64_t batch = prediction.size(0);
    if (target.dim() < 1 || target.size(0) != batch)
        throw Error("metrics: prediction shape " + c10::str(prediction.sizes()) + " differs from target shape " +
                    c10::str(target.sizes()));
    const auto counts = countPairs(prediction, target, classes, ignoreIndex, batch);
    std::vector<ImageIou> result;
    result.reserve(static_cast<std::size_t>(batch));
    for (std::int64_t b = 0; b < batch; ++b)
        result.push_back(iouFromCounts(counts.data() + b * classes * classes, classes));
    return result;
}

std::string perClassIouJson(const ImageIou& iou) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : iou.perClass) j.push_back(optionalJson(v));
    return j.dump();
}

}  // namespace segscope::core
