#include "segscope/core/data/transforms.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <set>

using namespace segscope::core;

namespace {

LabeledImage makeSample(int w, int h) {
    LabeledImage s;
    s.id = "x";
    s.image.create(h, w, CV_8UC3);
    s.label.create(h, w, CV_8UC1);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            s.image.at<cv::Vec3b>(y, x) = cv::Vec3b(std::uint8_t(x * 3), std::uint8_t(y * 5), std::uint8_t(x + y));
            s.label.at<std::uint8_t>(y, x) = std::uint8_t((x / 10 + y / 10) % 4);
        }
    s.label.at<std::uint8_t>(0, 0) = kIgnoreIndex;
    return s;
}

std::set<int> values(const cv::Mat& label) {
    std::set<int> v;
    for (int i = 0; i < int(label.total()); ++i) v.insert(label.data[i]);
    return v;
}

}  // namespace

TEST(Transforms, SameSeedSameOutputOtherSeedOther) {
    TransformConfig config;
    config.mode = ResizeMode::RandomScaleCrop;
    config.height = config.width = 48;
    config.horizontalFlip = true;
    config.photometric = true;
    const LabeledImage sample = makeSample(60, 40);
    Random a(42), b(42), c(43);
    const LabeledImage x = applyTrainTransform(sample, config, a);
    const LabeledImage y = applyTrainTransform(sample, config, b);
    const LabeledImage z = applyTrainTransform(sample, config, c);
    EXPECT_EQ(segscope::test::differingPixels(x.image, y.image), 0);
    EXPECT_EQ(segscope::test::differingPixels(x.label, y.label), 0);
    EXPECT_GT(segscope::test::differingPixels(x.image, z.image), 0);
}

TEST(Transforms, CropPaddingUsesIgnoreForLabelsAndZeroForImages) {
    TransformConfig config;
    config.mode = ResizeMode::RandomScaleCrop;
    config.height = config.width = 64;
    config.baseShortSide = 20;  // image ends up at most 40 px short side: padding is certain
    config.scaleMin = config.scaleMax = 1.0;
    const LabeledImage sample = makeSample(30, 20);  // scaled to 30x20 exactly
    Random random(1);
    const LabeledImage out = applyTrainTransform(sample, config, random);
    ASSERT_EQ(out.label.size(), cv::Size(64, 64));
    // The image keeps its 30x20 at the top-left of the 64x64 padded canvas (the crop is the whole canvas).
    for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x)
            if (y >= 20 || x >= 30) {
                ASSERT_EQ(out.label.at<std::uint8_t>(y, x), kIgnoreIndex) << x << "," << y;
                ASSERT_EQ(out.image.at<cv::Vec3b>(y, x), cv::Vec3b(0, 0, 0));
            }
    EXPECT_EQ(out.label.at<std::uint8_t>(5, 5), sample.label.at<std::uint8_t>(5, 5));
}

TEST(Transforms, FixedResizeKeepsLabelValuesNearest) {
    TransformConfig config;
    config.height = 33;
    config.width = 47;
    const LabeledImage sample = makeSample(80, 60);
    Random random(0);
    const LabeledImage out = applyTrainTransform(sample, config, random);
    EXPECT_EQ(out.image.size(), cv::Size(47, 33));
    EXPECT_EQ(out.label.size(), cv::Size(47, 33));
    for (int v : values(out.label)) EXPECT_TRUE(v <= 3 || v == 255) << v;
}

TEST(Transforms, VoidToBackgroundOption) {
    TransformConfig config;
    config.height = config.width = 40;
    config.voidToBackground = true;
    LabeledImage sample = makeSample(40, 40);
    sample.label.setTo(kIgnoreIndex);
    const LabeledImage out = applyEvalTransform(sample, config);
    EXPECT_EQ(values(out.label), (std::set<int>{0}));
    config.voidToBackground = false;
    EXPECT_EQ(values(applyEvalTransform(sample, config).label), (std::set<int>{255}));
}

TEST(Transforms, EvalKeepsOriginalLabelOnRequest) {
    TransformConfig config;
    config.height = config.width = 32;
    const LabeledImage sample = makeSample(50, 30);
    const LabeledImage out = applyEvalTransform(sample, config, /*keepLabelResolution=*/true);
    EXPECT_EQ(out.image.size(), cv::Size(32, 32));
    EXPECT_EQ(segscope::test::differingPixels(out.label, sample.label), 0);
}

TEST(Transforms, NormalizationValuesExact) {
    cv::Mat rgb(1, 2, CV_8UC3);
    rgb.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 128, 255);
    rgb.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 0, 51);
    float out[6];
    normalizeToChw(rgb, Normalization::ImageNet, out);
    EXPECT_NEAR(out[0], (0.0f - 0.485f) / 0.229f, 1e-6f);
    EXPECT_NEAR(out[1], (1.0f - 0.485f) / 0.229f, 1e-6f);
    EXPECT_NEAR(out[2], (128 / 255.0f - 0.456f) / 0.224f, 1e-6f);
    EXPECT_NEAR(out[3], (0.0f - 0.456f) / 0.224f, 1e-6f);
    EXPECT_NEAR(out[4], (1.0f - 0.406f) / 0.225f, 1e-6f);
    EXPECT_NEAR(out[5], (51 / 255.0f - 0.406f) / 0.225f, 1e-6f);
    normalizeToChw(rgb, Normalization::Half, out);
    EXPECT_NEAR(out[0], -1.0f, 1e-6f);
    EXPECT_NEAR(out[1], 1.0f, 1e-6f);
}

TEST(Transforms, FlipMovesImageAndLabelTogether) {
    TransformConfig config;
    config.height = 20;
    config.width = 30;
    config.horizontalFlip = true;
    const LabeledImage sample = makeSample(30, 20);
    int flipped = 0;
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        Random random(seed);
        const LabeledImage out = applyTrainTransform(sample, config, random);
        const bool isFlipped = out.label.at<std::uint8_t>(0, 29) == kIgnoreIndex;
        flipped += isFlipped;
        const cv::Vec3b expected = sample.image.at<cv::Vec3b>(3, isFlipped ? 29 - 7 : 7);
        EXPECT_EQ(out.image.at<cv::Vec3b>(3, 7), expected);
    }
    EXPECT_GT(flipped, 3);
    EXPECT_LT(flipped, 17);
}
