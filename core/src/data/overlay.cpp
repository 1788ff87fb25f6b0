#include "segscope/core/data/overlay.h"

#include "segscope/core/error.h"

namespace segscope::core {

cv::Mat blendLabels(const cv::Mat& rgb, const cv::Mat& labels, const LabelColours& colours, double alpha) {
    if (rgb.type() != CV_8UC3 || labels.type() != CV_8UC1 || rgb.size() != labels.size())
        throw Error("a label overlay needs an RGB image and a label image of the same size");
    cv::Mat out = rgb.clone();
    for (int y = 0; y < rgb.rows; ++y) {
        const auto* label = labels.ptr<std::uint8_t>(y);
        auto* dst = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < rgb.cols; ++x) {
            const std::optional<Rgb>& colour = colours[label[x]];
            if (!colour) continue;
            dst[3 * x] = blendChannel(dst[3 * x], colour->r, alpha);
            dst[3 * x + 1] = blendChannel(dst[3 * x + 1], colour->g, alpha);
            dst[3 * x + 2] = blendChannel(dst[3 * x + 2], colour->b, alpha);
        }
    }
    return out;
}

cv::Mat overlayLabels(const cv::Mat& rgb, const cv::Mat& labels, const std::vector<Rgb>& palette, double alpha) {
    if (rgb.type() != CV_8UC3 || labels.type() != CV_8UC1 || rgb.size() != labels.size())
        throw Error("overlayLabels needs an RGB image and a label image of the same size");
    LabelColours colours;
    for (int i = 0; i < 256; ++i)
        colours[std::size_t(i)] = i < int(palette.size()) ? palette[std::size_t(i)] : vocColor(i);
    return blendLabels(rgb, labels, colours, alpha);
}

}  // namespace segscope::core
