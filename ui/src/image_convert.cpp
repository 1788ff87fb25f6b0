#include "segscope/ui/image_convert.h"

#include "segscope/core/data/overlay.h"

namespace segscope::ui {

QImage toQImage(const cv::Mat& rgb) {
    CV_Assert(rgb.type() == CV_8UC3);
    QImage image(rgb.cols, rgb.rows, QImage::Format_RGB888);
    for (int y = 0; y < rgb.rows; ++y) std::memcpy(image.scanLine(y), rgb.ptr(y), std::size_t(rgb.cols) * 3);
    return image;
}

QImage overlayLabel(const cv::Mat& rgb, const cv::Mat& label, const std::vector<core::ClassInfo>& classes,
                    double opacity) {
    if (label.size() != rgb.size() || label.type() != CV_8UC1) return toQImage(rgb);
    core::LabelColours colours;
    // Background (0) and void stay uncoloured so the image shows through.
    for (std::size_t c = 1; c < classes.size() && c < colours.size(); ++c)
        if (c != core::kIgnoreIndex) colours[c] = classes[c].color;
    return toQImage(core::blendLabels(rgb, label, colours, opacity));
}

}  // namespace segscope::ui
