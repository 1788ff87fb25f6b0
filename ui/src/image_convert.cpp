#include "segscope/ui/image_convert.h"

namespace segscope::ui {

QImage toQImage(const cv::Mat& rgb) {
    CV_Assert(rgb.type() == CV_8UC3);
    QImage image(rgb.cols, rgb.rows, QImage::Format_RGB888);
    for (int y = 0; y < rgb.rows; ++y) std::memcpy(image.scanLine(y), rgb.ptr(y), std::size_t(rgb.cols) * 3);
    return image;
}

QImage overlayLabel(const cv::Mat& rgb, const cv::Mat& label, const std::vector<core::ClassInfo>& classes,
                    double opacity) {
    QImage image = toQImage(rgb);
    if (label.size() != rgb.size() || label.type() != CV_8UC1) return image;
    const double keep = 1.0 - opacity;
    for (int y = 0; y < rgb.rows; ++y) {
        auto* dst = image.scanLine(y);
        const auto* lab = label.ptr<std::uint8_t>(y);
        for (int x = 0; x < rgb.cols; ++x) {
            const int c = lab[x];
            if (c == core::kIgnoreIndex || c >= int(classes.size()) || c == 0) continue;
            const core::Rgb col = classes[c].color;
            dst[3 * x] = static_cast<uchar>(keep * dst[3 * x] + opacity * col.r);
            dst[3 * x + 1] = static_cast<uchar>(keep * dst[3 * x + 1] + opacity * col.g);
            dst[3 * x + 2] = static_cast<uchar>(keep * dst[3 * x + 2] + opacity * col.b);
        }
    }
    return image;
}

} // namespace segscope::ui
