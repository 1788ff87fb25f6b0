#pragma once
// Private to analysis/: the checks and readers the prediction sources share.
#include <opencv2/core.hpp>

#include <filesystem>

namespace segscope::core::detail {

// Error (naming `what`) unless both are CV_8UC1 of the same non-empty size (error_maps.cpp).
void checkLabelPair(const cv::Mat& prediction, const cv::Mat& groundTruth, const char* what);
// A cached label PNG (CV_8UC1) of the recorded size, else FileError (prediction_sets.cpp).
cv::Mat readLabelPng(const std::filesystem::path& path, int width, int height);

}  // namespace segscope::core::detail
