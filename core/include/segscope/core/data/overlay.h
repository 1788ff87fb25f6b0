#pragma once
// Label overlays: the one blend every coloured view of a label image uses (CLI, GUI, error maps).
// Pure functions on cv::Mat, any thread.
#include "segscope/core/data/classes.h"

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace segscope::core {

// The blend of one channel: (1 - alpha) * image + alpha * colour, rounded half up (clamped to
// 255). alpha in [0, 1].
inline std::uint8_t blendChannel(std::uint8_t image, std::uint8_t colour, double alpha) {
    const double value = (1.0 - alpha) * image + alpha * colour + 0.5;
    return std::uint8_t(value < 255.0 ? value : 255.0);
}

// A colour per label value; a value without one leaves its pixels as they are.
using LabelColours = std::array<std::optional<Rgb>, 256>;

// `rgb` (CV_8UC3) with colours[label] blended in by blendChannel() wherever the label (CV_8UC1,
// same size, else Error) has a colour. A new image; the inputs are not changed.
cv::Mat blendLabels(const cv::Mat& rgb, const cv::Mat& labels, const LabelColours& colours, double alpha);

// Every label coloured: palette[label], or vocColor(label) beyond the palette. Blends every pixel
// as blendLabels(). Throws Error unless rgb is CV_8UC3 and labels CV_8UC1 of the same size.
cv::Mat overlayLabels(const cv::Mat& rgb, const cv::Mat& labels, const std::vector<Rgb>& palette, double alpha = 0.5);

}  // namespace segscope::core
