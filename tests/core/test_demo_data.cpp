#include "segscope/core/data/dataset_check.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/image_io.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>

using namespace segscope::core;

namespace {
std::vector<std::uint8_t> bytesOf(const std::filesystem::path& p) {
    return readFileBytes(p);
}
}  // namespace

TEST(DemoData, SameSeedSameBytes) {
    segscope::test::TempDir a, b;
    DemoOptions options;
    options.images = 6;
    options.width = options.height = 48;
    writeDemoDataset(a.path(), options);
    writeDemoDataset(b.path(), options);
    for (const char* f : {"JPEGImages/demo_00003.jpg", "SegmentationClass/demo_00005.png",
                          "ImageSets/Segmentation/train.txt", "classes.txt"})
        EXPECT_EQ(bytesOf(a / f), bytesOf(b / f)) << f;
    options.seed = 8;
    segscope::test::TempDir c;
    writeDemoDataset(c.path(), options);
    EXPECT_NE(bytesOf(a / "SegmentationClass/demo_00003.png"), bytesOf(c / "SegmentationClass/demo_00003.png"));
}

TEST(DemoData, RealVocLayoutWithVoidRingAndPaletteLabels) {
    segscope::test::TempDir dir;
    DemoOptions options;
    options.images = 8;
    options.width = 64;
    options.height = 48;
    const DemoSummary summary = writeDemoDataset(dir.path(), options);
    EXPECT_EQ(summary.trainImages + summary.valImages, 8);
    EXPECT_EQ(summary.valImages, 2);
    EXPECT_TRUE(isDemoDataset(dir.path()));
    const StoredMask mask = readMaskPng(dir / "SegmentationClass/demo_00000.png");
    EXPECT_EQ(mask.encoding, MaskEncoding::Indexed);
    EXPECT_EQ(mask.values.size(), cv::Size(64, 48));
    EXPECT_GT(cv::countNonZero(mask.values == 255), 0);
    // Every object pixel is enclosed: a class pixel never touches background directly.
    for (int y = 1; y < 47; ++y)
        for (int x = 1; x < 63; ++x) {
            const int v = mask.values.at<std::uint8_t>(y, x);
            if (v == 0 || v == 255) continue;
            for (auto [dy, dx] : {std::pair{0, 1}, {1, 0}, {0, -1}, {-1, 0}})
                ASSERT_NE(mask.values.at<std::uint8_t>(y + dy, x + dx), 0) << x << "," << y;
        }
    const cv::Mat image = readImageRgb(dir / "JPEGImages/demo_00000.jpg");
    EXPECT_EQ(image.size(), cv::Size(64, 48));
}
