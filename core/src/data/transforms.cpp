#include "segscope/core/data/transforms.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace segscope::core {

const char* resizeModeName(ResizeMode mode) {
    return mode == ResizeMode::Fixed ? "fixed" : "random-scale-crop";
}

const char* normalizationName(Normalization n) {
    return n == Normalization::ImageNet ? "imagenet" : "half";
}

NormalizationStats normalizationStats(Normalization n) {
    if (n == Normalization::ImageNet) return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    return {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
}

namespace {

void mapVoid(cv::Mat& label) {
    for (int y = 0; y < label.rows; ++y) {
        auto* row = label.ptr<std::uint8_t>(y);
        for (int x = 0; x < label.cols; ++x)
            if (row[x] == kIgnoreIndex) row[x] = 0;
    }
}

// mmsegmentation-style photometric distortion, restricted to brightness, contrast and saturation.
void photometricJitter(cv::Mat& rgb, Random& random) {
    const double brightness = random.chance(0.5) ? random.uniform(-32.0, 32.0) : 0.0;
    const double contrast = random.chance(0.5) ? random.uniform(0.5, 1.5) : 1.0;
    const double saturation = random.chance(0.5) ? random.uniform(0.5, 1.5) : 1.0;
    rgb.convertTo(rgb, CV_8UC3, contrast, brightness);
    if (saturation != 1.0) {
        cv::Mat gray, gray3, out;
        cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
        cv::cvtColor(gray, gray3, cv::COLOR_GRAY2RGB);
        cv::addWeighted(rgb, saturation, gray3, 1.0 - saturation, 0.0, out);
        rgb = out;
    }
}

}  // namespace

LabeledImage applyTrainTransform(const LabeledImage& sample, const TransformConfig& config, Random& random) {
    LabeledImage out;
    out.id = sample.id;
    const cv::Size target(config.width, config.height);
    if (config.mode == ResizeMode::Fixed) {
        cv::resize(sample.image, out.image, target, 0, 0, cv::INTER_LINEAR);
        cv::resize(sample.label, out.label, target, 0, 0, cv::INTER_NEAREST);
    } else {
        const int base = config.baseShortSide > 0 ? config.baseShortSide : std::min(config.height, config.width);
        const double ratio = random.uniform(config.scaleMin, config.scaleMax);
        const int shortSide = std::min(sample.image.cols, sample.image.rows);
        const double scale = base * ratio / std::max(1, shortSide);
        const cv::Size scaled(std::max(1, int(std::lround(sample.image.cols * scale))),
                              std::max(1, int(std::lround(sample.image.rows * scale))));
        cv::Mat image, label;
        cv::resize(sample.image, image, scaled, 0, 0, cv::INTER_LINEAR);
        cv::resize(sample.label, label, scaled, 0, 0, cv::INTER_NEAREST);
        // Pad right/bottom up to the crop size: image with 0, label with the ignore index.
        const int padBottom = std::max(0, config.height - image.rows);
        const int padRight = std::max(0, config.width - image.cols);
        if (padBottom > 0 || padRight > 0) {
            cv::copyMakeBorder(image, image, 0, padBottom, 0, padRight, cv::BORDER_CONSTANT, cv::Scalar::all(0));
            cv::copyMakeBorder(label, label, 0, padBottom, 0, padRight, cv::BORDER_CONSTANT,
                               cv::Scalar::all(kIgnoreIndex));
        }
        const int y0 = int(random.below(std::uint64_t(image.rows - config.height + 1)));
        const int x0 = int(random.below(std::uint64_t(image.cols - config.width + 1)));
        const cv::Rect crop(x0, y0, config.width, config.height);
        out.image = image(crop).clone();
        out.label = label(crop).clone();
    }
    if (config.horizontalFlip && random.chance(0.5)) {
        cv::flip(out.image, out.image, 1);
        cv::flip(out.label, out.label, 1);
    }
    if (config.photometric) photometricJitter(out.image, random);
    if (config.voidToBackground) mapVoid(out.label);
    return out;
}

LabeledImage applyEvalTransform(const LabeledImage& sample, const TransformConfig& config, bool keepLabelResolution) {
    LabeledImage out;
    out.id = sample.id;
    const cv::Size target(config.width, config.height);
    cv::resize(sample.image, out.image, target, 0, 0, cv::INTER_LINEAR);
    if (keepLabelResolution)
        out.label = sample.label.clone();
    else
        cv::resize(sample.label, out.label, target, 0, 0, cv::INTER_NEAREST);
    if (config.voidToBackground) mapVoid(out.label);
    return out;
}

void normalizeToChw(const cv::Mat& rgb, Normalization normalization, float* out) {
    CV_Assert(rgb.type() == CV_8UC3);
    // One table lookup per value instead of a subtract and divide.
    const NormalizationStats stats = normalizationStats(normalization);
    float table[3][256];
    for (int c = 0; c < 3; ++c)
        for (int v = 0; v < 256; ++v) table[c][v] = (v / 255.0f - stats.mean[c]) / stats.std[c];
    const std::size_t plane = std::size_t(rgb.rows) * rgb.cols;
    float* r = out;
    float* g = out + plane;
    float* b = out + 2 * plane;
    for (int y = 0; y < rgb.rows; ++y) {
        const auto* src = rgb.ptr<std::uint8_t>(y);
        const std::size_t offset = std::size_t(y) * rgb.cols;
        for (int x = 0; x < rgb.cols; ++x) {
            r[offset + x] = table[0][src[3 * x]];
            g[offset + x] = table[1][src[3 * x + 1]];
            b[offset + x] = table[2][src[3 * x + 2]];
        }
    }
}

}  // namespace segscope::core
