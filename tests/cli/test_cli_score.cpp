// segscope-cli score on the hand-computed example of the metrics tests.
#include "segscope/core/data/image_io.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using namespace segscope::core;
using segscope::test::kPred;
using segscope::test::kTarget;
using segscope::test::matOf;

namespace {

constexpr double kTol = 1e-12;

void writeMask(const std::filesystem::path& path, const std::vector<std::int64_t>& values, bool palette) {
    const cv::Mat m = matOf(values);
    if (palette)
        writePalettePng(path, m, {});
    else
        writeGrayPng(path, m);
}

}  // namespace

TEST(ScoreCommand, JsonMatchesHandComputedValues) {
    segscope::test::TempDir dir;
    std::filesystem::create_directories(dir / "pred");
    std::filesystem::create_directories(dir / "gt");
    // Split the example over two files: a palette PNG and a grayscale PNG on each side.
    std::vector<std::int64_t> predA(kPred), targetA(kTarget), predB(10, 0), targetB(10, 255);
    // Second image: all pixels ignored except one background pixel predicted correctly.
    targetB[0] = 0;
    writeMask(dir / "pred" / "a.png", predA, true);
    writeMask(dir / "gt" / "a.png", targetA, false);
    writeMask(dir / "pred" / "b.png", predB, false);
    writeMask(dir / "gt" / "b.png", targetB, true);
    {
        std::ofstream names(dir / "names.txt");
        names << "bg\ncat\ndog\nbird\n";
    }
    const auto result =
        segscope::test::runCli("score --pred '" + (dir / "pred").string() + "' --gt '" + (dir / "gt").string() +
                               "' --classes 4 --json --names '" + (dir / "names.txt").string() + "'");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    const auto j = nlohmann::json::parse(result.output);
    // The extra pixel adds one TP to class 0: matrix row 0 becomes 4 1 1 0, column 0 sums to 5.
    // class 0: TP 4, FP 1, FN 2: IoU 4/7, Acc 4/6, Dice 8/11; class 1 unchanged (IoU 1/2, Acc 2/3,
    // Dice 2/3); class 2 IoU 0, Dice 0, Acc null; class 3 null.
    // aAcc 6/9; mIoU (4/7 + 1/2 + 0)/3; mAcc (4/6 + 2/3)/2; mDice (8/11 + 2/3 + 0)/3.
    EXPECT_NEAR(j["aAcc"].get<double>(), 6.0 / 9, kTol);
    EXPECT_NEAR(j["mIoU"].get<double>(), (4.0 / 7 + 0.5) / 3, kTol);
    EXPECT_NEAR(j["mAcc"].get<double>(), 2.0 / 3, kTol);
    EXPECT_NEAR(j["mDice"].get<double>(), (8.0 / 11 + 2.0 / 3) / 3, kTol);
    ASSERT_EQ(j["per_class"].size(), 4u);
    EXPECT_EQ(j["per_class"][1]["name"], "cat");
    EXPECT_NEAR(j["per_class"][0]["IoU"].get<double>(), 4.0 / 7, kTol);
    EXPECT_NEAR(j["per_class"][0]["Precision"].get<double>(), 4.0 / 5, kTol);
    EXPECT_NEAR(j["per_class"][0]["Recall"].get<double>(), 4.0 / 6, kTol);
    EXPECT_EQ(j["per_class"][2]["IoU"].get<double>(), 0.0);
    EXPECT_TRUE(j["per_class"][2]["Acc"].is_null());
    EXPECT_TRUE(j["per_class"][3]["IoU"].is_null());
    EXPECT_TRUE(j["per_class"][3]["Dice"].is_null());

    const auto text = segscope::test::runCli("score --pred '" + (dir / "pred").string() + "' --gt '" +
                                             (dir / "gt").string() + "' --classes 4");
    EXPECT_EQ(text.exitCode, 0);
    EXPECT_NE(text.output.find("mIoU"), std::string::npos);
    EXPECT_NE(text.output.find("class3"), std::string::npos);
}

TEST(ScoreCommand, ReportsMissingFilesAndSizeMismatch) {
    segscope::test::TempDir dir;
    std::filesystem::create_directories(dir / "pred");
    std::filesystem::create_directories(dir / "gt");
    writeMask(dir / "pred" / "a.png", kPred, true);
    writeMask(dir / "gt" / "a.png", kTarget, true);
    writeMask(dir / "gt" / "only_gt.png", kTarget, true);
    writeMask(dir / "pred" / "only_pred.png", kPred, true);
    writeGrayPng(dir / "pred" / "small.png", cv::Mat(3, 3, CV_8UC1, cv::Scalar(0)));
    writeGrayPng(dir / "gt" / "small.png", cv::Mat(4, 3, CV_8UC1, cv::Scalar(0)));
    const std::string base =
        "score --pred '" + (dir / "pred").string() + "' --gt '" + (dir / "gt").string() + "' --classes 4 --json 2>&1";
    const auto result = segscope::test::runCli(base);
    EXPECT_EQ(result.exitCode, 1);
    EXPECT_NE(result.output.find("only_gt.png"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("only_pred.png"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("small.png"), std::string::npos) << result.output;

    // A prediction value outside [0, classes) names the file.
    std::filesystem::remove(dir / "gt" / "only_gt.png");
    std::filesystem::remove(dir / "pred" / "only_pred.png");
    std::filesystem::remove(dir / "pred" / "small.png");
    std::filesystem::remove(dir / "gt" / "small.png");
    const auto bad = segscope::test::runCli("score --pred '" + (dir / "pred").string() + "' --gt '" +
                                            (dir / "gt").string() + "' --classes 2 2>&1");
    EXPECT_EQ(bad.exitCode, 1);
    EXPECT_NE(bad.output.find("a.png"), std::string::npos) << bad.output;
}
