#include "segscope/ui/label_style.h"

#include "segscope/core/data/overlay.h"
#include "segscope/ui/image_convert.h"

namespace segscope::ui {

QImage LabelStyle::render(const cv::Mat& rgb, const cv::Mat& labels) const {
    if (labels.empty() || labels.size() != rgb.size()) return toQImage(rgb);
    core::LabelColours colours;
    for (std::size_t c = 0; c < classes.size() && c < visible.size() && c < colours.size(); ++c)
        if (visible[c]) colours[c] = classes[c].color;
    return toQImage(core::blendLabels(rgb, labels, colours, opacity));
}

}  // namespace segscope::ui
