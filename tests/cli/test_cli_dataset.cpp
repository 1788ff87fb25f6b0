// segscope-cli demo-data and check-dataset: the report's counts against an independent count.
#include "segscope/core/data/classes.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>

using namespace segscope::core;

TEST(DemoData, CheckDatasetCliReportsExactCounts) {
    segscope::test::TempDir dir;
    const auto root = dir / "demo";
    auto made = segscope::test::runCli("demo-data --out '" + root.string() + "' --images 20 --size 48 40 --seed 3");
    ASSERT_EQ(made.exitCode, 0) << made.output;
    auto checked =
        segscope::test::runCli("check-dataset --kind voc --root '" + root.string() + "' --split train --json");
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
                if (rgb == kVocVoidColor) {
                    ++ignore;
                    continue;
                }
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
