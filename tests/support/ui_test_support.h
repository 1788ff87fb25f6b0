#pragma once
// Fixtures shared by the widget tests (tests/ui), header-only: prediction sets whose confusion is
// known in advance, written through core::PredictionCacheWriter in the true cache format.
#include "segscope/core/analysis/predictions.h"

#include <opencv2/imgcodecs.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace segscope::test {

// A 4 x 4 label mask from a row-major string of 16 digits.
inline cv::Mat mask4x4(const std::string& digits) {
    cv::Mat m(4, 4, CV_8UC1);
    for (int i = 0; i < 16; ++i) m.at<std::uint8_t>(i / 4, i % 4) = std::uint8_t(digits[std::size_t(i)] - '0');
    return m;
}

// Classes 0 background (black), 1 cat (0, 0, 200), 2 dog (0, 200, 0); grey (100) 4 x 4 images.
// Per image (ground truth -> prediction):
//   a: 16 cat -> 12 cat, 4 dog                     mIoU (0.75 + 0) / 2   = 0.375
//   b: 8 bg, 8 dog -> all correct                  mIoU 1
//   c: 16 dog -> 8 dog, 8 cat                      mIoU (0.5 + 0) / 2    = 0.25
//   d: 8 cat, 8 bg -> cat correct, 2 bg as cat     mIoU (0.8 + 0.75) / 2 = 0.775
// Written under `dir` (images) and dir/run/predictions/known__val (the cache).
inline core::PredictionSet knownPredictionSet(const std::filesystem::path& dir) {
    const cv::Mat grey(4, 4, CV_8UC3, cv::Scalar(100, 100, 100));
    const std::vector<core::ClassInfo> classes{{"background", {0, 0, 0}}, {"cat", {0, 0, 200}}, {"dog", {0, 200, 0}}};
    core::PredictionKey key;
    key.classes = 3;
    core::PredictionCacheWriter writer(dir / "run/predictions/known__val", key, classes);
    const std::vector<std::array<std::string, 3>> images{{"a", "1111111111111111", "1111111111112222"},
                                                         {"b", "0000000022222222", "0000000022222222"},
                                                         {"c", "2222222222222222", "2222222211111111"},
                                                         {"d", "1111111100000000", "1111111100000011"}};
    for (const auto& [id, truth, prediction] : images) {
        const std::filesystem::path image = dir / (id + ".png");
        cv::imwrite(image.string(), grey);
        writer.add(id, mask4x4(prediction), mask4x4(truth), image);
    }
    return writer.commit();
}

}  // namespace segscope::test
