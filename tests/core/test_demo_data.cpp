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
std::vector<std::uint8_t> bytesOf(const std::filesystem::path& p) { return readFileBytes(p); }
}

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

TEST(DemoData, CheckDatasetCliReportsExactCounts) {
    segscope::test::TempDir dir;
    const auto root = dir / "demo";
    auto made = segscope::test::runCli("demo-data --out '" + root.string() + "' --images 20 --size 48 40 --seed 3");
    ASSERT_EQ(made.exitCode, 0) << made.output;
    auto checked = segscope::test::runCli("check-dataset --kind voc --root '" + root.string() + "' --split train --json");
    ASSERT_EQ(checked.exitCode, 0) << checked.output;
    const auto report = nlohmann::json::parse(checked.output);
    EXPECT_TRUE(report["ok"].get<bool>());
    EXPECT_EQ(report["classes"], nlohmann::json({"background", "circle", "square", "triangle", "cross"}));
    // Count independently: OpenCV expands the palette to colours; map them back through the palette.
    std::vector<std::uint64_t> pixels(5, 0), images(5, 0);
    std::uint64_t ignore = 0;
    std::ifstream list(root / "ImageSets/Segmentation/train.txt");
    std::size_t count = 0;
    for (std::string id; std::getline(list, id); ++count) {
        const cv::Mat bgr = cv::imread((root / "SegmentationClass" / (id + ".png")).string(), cv::IMREAD_COLOR);
        ASSERT_FALSE(bgr.empty());
        std::vector<std::uint64_t> local(5, 0);
        for (int y = 0; y < bgr.rows; ++y)
            for (int x = 0; x < bgr.cols; ++x) {
                const cv::Vec3b c = bgr.at<cv::Vec3b>(y, x);
                const Rgb rgb{c[2], c[1], c[0]};
                if (rgb == kVocVoidColor) { ++ignore; continue; }
                int k = 0;
                while (k < 5 && vocColor(k) != rgb) ++k;
                ASSERT_LT(k, 5);
                ++local[k];
            }
        for (int k = 0; k < 5; ++k) {
            pixels[k] += local[k];
            images[k] += local[k] > 0;
        }
    }
    EXPECT_EQ(report["images"].get<std::size_t>(), count);
    EXPECT_EQ(report["class_pixels"].get<std::vector<std::uint64_t>>(), pixels);
    EXPECT_EQ(report["class_images"].get<std::vector<std::uint64_t>>(), images);
    EXPECT_EQ(report["ignore_pixels"].get<std::uint64_t>(), ignore);
}
