#pragma once
// Input transforms, deterministic given a seed. They work on decoded RGB images and index
// labels (cv::Mat) and end in a normalised float CHW buffer.
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/random.h"

#include <opencv2/core.hpp>

#include <array>
#include <string>

namespace segscope::core {

enum class ResizeMode {
    Fixed,            // resize to height x width (image bilinear, label nearest)
    RandomScaleCrop,  // random rescale, pad (label 255), random crop to height x width
};

enum class Normalization {
    ImageNet,  // mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
    Half,      // mean 0.5, std 0.5
};

const char* resizeModeName(ResizeMode mode);     // "fixed", "random-scale-crop"
const char* normalizationName(Normalization n);  // "imagenet", "half"

// The settings of the transforms, as an experiment's "transforms" section holds them (the
// experiment uses this type, so the defaults exist once).
struct TransformSettings {
    int height = 256;
    int width = 256;
    ResizeMode mode = ResizeMode::Fixed;
    // RandomScaleCrop: the image is first scaled so its short side is baseShortSide (0: the
    // crop's short side), then by a factor drawn uniformly from [scaleMin, scaleMax].
    int baseShortSide = 0;
    double scaleMin = 0.5;
    double scaleMax = 2.0;
    bool horizontalFlip = false;
    bool photometric = false;  // brightness, contrast and saturation jitter
    Normalization normalization = Normalization::ImageNet;
};

// What the transforms take: the settings plus the dataset's label mapping.
struct TransformConfig : TransformSettings {
    bool voidToBackground = false;  // map label 255 to 0, as the original VOC comparison did
};

struct NormalizationStats {
    std::array<float, 3> mean;
    std::array<float, 3> std;
};
NormalizationStats normalizationStats(Normalization n);

// Training transform of one sample. `random` supplies every random choice, so the same seed
// gives the same output.
LabeledImage applyTrainTransform(const LabeledImage& sample, const TransformConfig& config, Random& random);

// Validation transform: resize to height x width. With keepLabelResolution the label is left at
// its original size (for evaluation at the original resolution).
LabeledImage applyEvalTransform(const LabeledImage& sample, const TransformConfig& config,
                                bool keepLabelResolution = false);

// Writes the normalised image as float CHW into `out` (3 * rows * cols floats).
void normalizeToChw(const cv::Mat& rgb, Normalization normalization, float* out);

}  // namespace segscope::core
