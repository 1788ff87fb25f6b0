#pragma once
// How the Predictions views colour a label image: the display colours (the dataset's, with the
// user's saved ones), which classes are shown and the opacity. A value, used on any thread.
#include "segscope/core/data/classes.h"

#include <QImage>
#include <opencv2/core.hpp>

#include <vector>

namespace segscope::ui {

struct LabelStyle {
    std::vector<core::ClassInfo> classes;
    std::vector<bool> visible;  // per class; a class without an entry is not coloured
    double opacity = 0.55;      // 0..1

    // `rgb` (CV_8UC3) with the visible classes' colours blended in by core::blendLabels(); `rgb`
    // alone when `labels` is empty or of another size.
    QImage render(const cv::Mat& rgb, const cv::Mat& labels) const;
};

}  // namespace segscope::ui
