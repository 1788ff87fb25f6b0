#pragma once
// Conversions between core images (cv::Mat, RGB) and Qt images. GUI thread or workers alike.
#include "segscope/core/data/classes.h"

#include <QImage>
#include <opencv2/core.hpp>

#include <vector>

namespace segscope::ui {

// Deep copy of an RGB CV_8UC3 image.
QImage toQImage(const cv::Mat& rgb);

// The image with the label's class colours blended in at `opacity` (0..1); ignore pixels are
// left as they are.
QImage overlayLabel(const cv::Mat& rgb, const cv::Mat& label, const std::vector<core::ClassInfo>& classes,
                    double opacity);

}  // namespace segscope::ui
