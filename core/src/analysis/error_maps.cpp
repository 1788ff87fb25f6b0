// Pixel-level views of one prediction: per-class outcomes, their colours and overlays, and the
// mask of one confusion cell.
#include "segscope/core/analysis/predictions.h"

#include "analysis/prediction_files.h"

#include "segscope/core/data/overlay.h"

#include <string>

namespace segscope::core {

namespace detail {

void checkLabelPair(const cv::Mat& prediction, const cv::Mat& groundTruth, const char* what) {
    if (prediction.type() != CV_8UC1 || groundTruth.type() != CV_8UC1)
        throw Error(std::string(what) + " needs 8-bit single-channel prediction and ground truth");
    if (prediction.empty() || prediction.size() != groundTruth.size())
        throw Error(std::string(what) + " needs a prediction and a ground truth of the same non-empty size");
}

}  // namespace detail

using detail::checkLabelPair;

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
