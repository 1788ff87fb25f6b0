#include "segscope/core/data/image_io.h"
#include "segscope/core/error.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <fstream>

using namespace segscope::core;
using segscope::test::expectedMatrix;
using segscope::test::testData;

namespace {
std::filesystem::path voc() {
    return testData() / "formats" / "voc" / "VOCdevkit" / "VOC2012";
}
constexpr int kH = 30, kW = 40;
}  // namespace

TEST(MaskPng, PaletteIndicesAreReadNotColours) {
    const StoredMask mask = readMaskPng(voc() / "SegmentationClass" / "pal.png");
    EXPECT_EQ(mask.encoding, MaskEncoding::Indexed);
    ASSERT_EQ(mask.values.type(), CV_8UC1);
    EXPECT_EQ(segscope::test::differingPixels(mask.values, expectedMatrix("voc_pal", kH, kW)), 0);
    // Index 15 and void 255 survive as values.
    EXPECT_EQ(mask.values.at<std::uint8_t>(0, 0), 255);
    EXPECT_EQ(cv::countNonZero(mask.values == 15), kH * 13);
}

TEST(MaskPng, OpenCvGrayscaleWouldGiveLuminanceNotIndices) {
    // The reason masks go through libspng: IMREAD_GRAYSCALE maps palette colours to luminance.
    const cv::Mat luminance = cv::imread((voc() / "SegmentationClass" / "pal.png").string(), cv::IMREAD_GRAYSCALE);
    EXPECT_GT(segscope::test::differingPixels(luminance, expectedMatrix("voc_pal", kH, kW)), 0);
}

TEST(MaskPng, GrayscaleIndexPng) {
    const StoredMask mask = readMaskPng(voc() / "SegmentationClass" / "gray.png");
    EXPECT_EQ(mask.encoding, MaskEncoding::Gray);
    EXPECT_EQ(segscope::test::differingPixels(mask.values, expectedMatrix("voc_gray", kH, kW)), 0);
}

TEST(MaskPng, FourBitPaletteIsUnpacked) {
    const StoredMask mask = readMaskPng(voc() / "SegmentationClass" / "fourbit.png");
    EXPECT_EQ(mask.encoding, MaskEncoding::Indexed);
    EXPECT_EQ(segscope::test::differingPixels(mask.values, expectedMatrix("voc_fourbit", kH, kW)), 0);
}

TEST(MaskPng, RgbColourMaskMapsThroughVocColours) {
    const StoredMask mask = readMaskPng(voc() / "SegmentationClass" / "rgbmask.png");
    ASSERT_EQ(mask.encoding, MaskEncoding::Rgb);
    std::uint64_t unknown = 99;
    const cv::Mat indices = colorMaskToIndices(mask.values, vocClasses(), &unknown, nullptr);
    EXPECT_EQ(unknown, 0u);
    EXPECT_EQ(segscope::test::differingPixels(indices, expectedMatrix("voc_rgbmask", kH, kW)), 0);
}

TEST(MaskPng, UnknownColoursAreCountedWithAnExample) {
    const StoredMask mask = readMaskPng(voc() / "SegmentationClass" / "badcolor.png");
    std::uint64_t unknown = 0;
    Rgb example;
    colorMaskToIndices(mask.values, vocClasses(), &unknown, &example);
    EXPECT_EQ(unknown, 6u);
    EXPECT_EQ(example, (Rgb{1, 2, 3}));
}

TEST(MaskPng, NotAPngIsAnErrorNamingTheFile) {
    const auto path = voc() / "JPEGImages" / "pal.jpg";
    try {
        readMaskPng(path);
        FAIL();
    } catch (const FileError& e) {
        EXPECT_EQ(e.path(), path.string());
        EXPECT_EQ(e.reason(), "mask is not a PNG");
    }
}

TEST(MaskPng, WritePaletteThenReadGivesSameIndices) {
    segscope::test::TempDir dir;
    cv::Mat indices(5, 7, CV_8UC1);
    for (int i = 0; i < 35; ++i) indices.data[i] = static_cast<std::uint8_t>(i * 7 % 256);
    writePalettePng(dir / "m.png", indices, {{0, 0, 0}, {255, 0, 0}});
    const StoredMask back = readMaskPng(dir / "m.png");
    EXPECT_EQ(back.encoding, MaskEncoding::Indexed);
    EXPECT_EQ(segscope::test::differingPixels(back.values, indices), 0);
}

TEST(ImageDecode, GrayscaleJpegBecomesThreeEqualChannels) {
    ImageInfo info;
    const cv::Mat rgb = readImageRgb(voc() / "JPEGImages" / "gray.jpg", &info);
    EXPECT_EQ(info.format, ImageFormat::Jpeg);
    EXPECT_EQ(info.channelsOnDisk, 1);
    ASSERT_EQ(rgb.type(), CV_8UC3);
    EXPECT_LE(segscope::test::maxAbsDifference(rgb, expectedMatrix("voc_gray_rgb", kH, kW, 3)), 2);
}

TEST(ImageDecode, CmykJpegMatchesPillowsRgb) {
    ImageInfo info;
    const cv::Mat rgb = readImageRgb(voc() / "JPEGImages" / "rgbmask.jpg", &info);
    EXPECT_TRUE(info.cmyk);
    EXPECT_EQ(info.channelsOnDisk, 4);
    ASSERT_EQ(rgb.type(), CV_8UC3);
    EXPECT_LE(segscope::test::maxAbsDifference(rgb, expectedMatrix("voc_rgbmask_rgb", kH, kW, 3)), 3);
}

TEST(ImageDecode, PngNamedJpgDecodesByContent) {
    const auto path = voc() / "JPEGImages" / "fourbit.jpg";
    ImageInfo info;
    const cv::Mat rgb = readImageRgb(path, &info);
    EXPECT_EQ(info.format, ImageFormat::Png);
    EXPECT_TRUE(extensionMismatch(path, info.format));
    // Lossless: exactly Pillow's pixels, in RGB order.
    EXPECT_EQ(segscope::test::maxAbsDifference(rgb, expectedMatrix("voc_fourbit_rgb", kH, kW, 3)), 0);
}

TEST(ImageDecode, TruncatedJpegIsAnErrorNamingTheFile) {
    const auto path = voc() / "JPEGImages" / "trunc.jpg";
    try {
        readImageRgb(path);
        FAIL() << "a truncated JPEG must not decode silently";
    } catch (const FileError& e) {
        EXPECT_EQ(e.path(), path.string());
        EXPECT_EQ(e.reason(), "truncated JPEG (no end-of-image marker)");
    }
}

TEST(ImageDecode, EmptyAndMissingFiles) {
    segscope::test::TempDir dir;
    { std::ofstream(dir / "empty.jpg"); }
    EXPECT_THROW(readImageRgb(dir / "empty.jpg"), FileError);
    try {
        readImageRgb(dir / "missing.jpg");
        FAIL();
    } catch (const FileError& e) {
        EXPECT_EQ(e.reason(), "does not exist");
    }
    { std::ofstream(dir / "text.jpg") << "hello, not an image"; }
    try {
        readImageRgb(dir / "text.jpg");
        FAIL();
    } catch (const FileError& e) {
        EXPECT_EQ(e.reason(), "not an image (unrecognised content)");
    }
}
