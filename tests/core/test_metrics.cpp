#include "segscope/core/error.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/analysis/metrics.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace segscope::core;

namespace {

// Four classes: 0 and 1 present in ground truth and prediction, 2 only predicted, 3 absent from
// both (it appears in the prediction only under ignored pixels, which must not count).
//   index   0  1  2  3  4  5  6  7    8    9
//   target  0  0  0  0  1  1  1  255  255  0
//   pred    0  0  0  2  1  1  0  1    3    1
// Counted pairs (gt, pred): (0,0) x3, (0,2), (1,1) x2, (1,0), (0,1)  -> 8 pixels.
// Confusion matrix (rows gt, cols pred):
//        p0 p1 p2 p3 | gt
//   g0    3  1  1  0 |  5
//   g1    1  2  0  0 |  3
//   g2    0  0  0  0 |  0
//   g3    0  0  0  0 |  0
//  pred   4  3  1  0
// class 0: TP 3, FP 1, FN 2: IoU 3/6, Acc 3/5, Dice 6/9, Precision 3/4, share 5/8
// class 1: TP 2, FP 1, FN 1: IoU 2/4, Acc 2/3, Dice 4/6, Precision 2/3, share 3/8
// class 2: TP 0, FP 1, FN 0: IoU 0/1, Acc 0/0 (null), Dice 0/1, Precision 0/1, share 0
// class 3: nothing: IoU, Acc, Dice, Precision null, share 0
// aAcc 5/8; mIoU (1/2 + 1/2 + 0)/3 = 1/3; mAcc (3/5 + 2/3)/2 = 19/30; mDice (2/3 + 2/3 + 0)/3 = 4/9
const std::vector<std::int64_t> kTarget{0, 0, 0, 0, 1, 1, 1, 255, 255, 0};
const std::vector<std::int64_t> kPred{0, 0, 0, 2, 1, 1, 0, 1, 3, 1};
constexpr double kTol = 1e-12;

torch::Tensor tensorOf(const std::vector<std::int64_t>& v) {
    return torch::tensor(v, torch::kLong).reshape({2, 5});
}

cv::Mat matOf(const std::vector<std::int64_t>& v) {
    cv::Mat m(2, 5, CV_8UC1);
    for (int i = 0; i < 10; ++i)
        m.at<std::uint8_t>(i / 5, i % 5) = static_cast<std::uint8_t>(v[static_cast<std::size_t>(i)]);
    return m;
}

void expectHandComputed(const SegmentationMetrics& m) {
    ASSERT_EQ(m.perClass.size(), 4u);
    EXPECT_EQ(m.pixels, 8);
    EXPECT_NEAR(*m.aAcc, 5.0 / 8, kTol);
    EXPECT_NEAR(*m.mIoU, 1.0 / 3, kTol);
    EXPECT_NEAR(*m.mAcc, 19.0 / 30, kTol);
    EXPECT_NEAR(*m.mDice, 4.0 / 9, kTol);
    const auto& c0 = m.perClass[0];
    EXPECT_NEAR(*c0.iou, 0.5, kTol);
    EXPECT_NEAR(*c0.acc, 0.6, kTol);
    EXPECT_NEAR(*c0.recall, 0.6, kTol);
    EXPECT_NEAR(*c0.dice, 6.0 / 9, kTol);
    EXPECT_NEAR(*c0.precision, 0.75, kTol);
    EXPECT_NEAR(*c0.pixelShare, 5.0 / 8, kTol);
    const auto& c1 = m.perClass[1];
    EXPECT_NEAR(*c1.iou, 0.5, kTol);
    EXPECT_NEAR(*c1.acc, 2.0 / 3, kTol);
    EXPECT_NEAR(*c1.dice, 2.0 / 3, kTol);
    EXPECT_NEAR(*c1.precision, 2.0 / 3, kTol);
    EXPECT_NEAR(*c1.pixelShare, 3.0 / 8, kTol);
    const auto& c2 = m.perClass[2];
    EXPECT_EQ(*c2.iou, 0.0);
    EXPECT_FALSE(c2.acc.has_value());
    EXPECT_FALSE(c2.recall.has_value());
    EXPECT_EQ(*c2.dice, 0.0);
    EXPECT_EQ(*c2.precision, 0.0);
    EXPECT_EQ(*c2.pixelShare, 0.0);
    const auto& c3 = m.perClass[3];
    EXPECT_FALSE(c3.iou.has_value());
    EXPECT_FALSE(c3.acc.has_value());
    EXPECT_FALSE(c3.dice.has_value());
    EXPECT_FALSE(c3.precision.has_value());
    EXPECT_FALSE(c3.recall.has_value());
    EXPECT_EQ(*c3.pixelShare, 0.0);
}

}  // namespace

TEST(ConfusionMatrix, CountsTensorPairsAndExcludesIgnore) {
    ConfusionMatrix matrix(4);
    matrix.update(tensorOf(kPred), tensorOf(kTarget));
    const std::int64_t expected[4][4] = {{3, 1, 1, 0}, {1, 2, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
    for (int t = 0; t < 4; ++t)
        for (int p = 0; p < 4; ++p) EXPECT_EQ(matrix.count(t, p), expected[t][p]) << t << "," << p;
    EXPECT_EQ(matrix.totalPixels(), 8);
    EXPECT_EQ(matrix.groundTruthPixels(0), 5);
    EXPECT_EQ(matrix.predictedPixels(1), 3);
}

TEST(SegmentationMetrics, MatchesHandComputedValues) {
    ConfusionMatrix matrix(4);
    matrix.update(tensorOf(kPred), tensorOf(kTarget));
    const auto m = computeMetrics(matrix, {"bg", "cat", "dog", "bird"});
    expectHandComputed(m);
    EXPECT_EQ(m.perClass[2].name, "dog");
}

TEST(SegmentationMetrics, CvMatOverloadMatchesTensorPath) {
    ConfusionMatrix matrix(4);
    matrix.update(matOf(kPred), matOf(kTarget));
    expectHandComputed(computeMetrics(matrix));
}

TEST(SegmentationMetrics, AccumulatesOverUpdatesNotAveraged) {
    // Two images split the same pixels: the totals (not a mean of per-image scores) give the
    // same numbers as one update.
    ConfusionMatrix matrix(4);
    const auto pred = tensorOf(kPred).flatten();
    const auto target = tensorOf(kTarget).flatten();
    matrix.update(pred.slice(0, 0, 3), target.slice(0, 0, 3));
    matrix.update(pred.slice(0, 3), target.slice(0, 3));
    expectHandComputed(computeMetrics(matrix));
}

TEST(SegmentationMetrics, UndefinedValuesSerializeAsNull) {
    ConfusionMatrix matrix(4);
    matrix.update(tensorOf(kPred), tensorOf(kTarget));
    const auto j = nlohmann::json::parse(metricsToJson(computeMetrics(matrix)));
    EXPECT_NEAR(j["mIoU"].get<double>(), 1.0 / 3, kTol);
    EXPECT_TRUE(j["per_class"][3]["IoU"].is_null());
    EXPECT_TRUE(j["per_class"][2]["Acc"].is_null());
    EXPECT_EQ(j["per_class"][2]["IoU"].get<double>(), 0.0);
    EXPECT_EQ(j["per_class"][0]["name"], "class0");
}

TEST(SegmentationMetrics, EverythingIgnoredGivesEmptyMeans) {
    ConfusionMatrix matrix(3);
    matrix.update(torch::full({4}, 255, torch::kLong), torch::full({4}, 255, torch::kLong));
    const auto m = computeMetrics(matrix);
    EXPECT_EQ(m.pixels, 0);
    EXPECT_FALSE(m.aAcc.has_value());
    EXPECT_FALSE(m.mIoU.has_value());
    EXPECT_FALSE(m.perClass[0].pixelShare.has_value());
}

TEST(SegmentationMetrics, ConfigurableIgnoreIndex) {
    // With ignore index 0, class 0 pixels are excluded; 255 becomes an invalid label.
    ConfusionMatrix matrix(2, 0);
    matrix.update(torch::tensor({1, 1, 0, 0}, torch::kLong), torch::tensor({1, 0, 0, 1}, torch::kLong));
    // counted: (gt 1, pred 1), (gt 1, pred 0)
    EXPECT_EQ(matrix.totalPixels(), 2);
    EXPECT_EQ(matrix.count(1, 1), 1);
    EXPECT_EQ(matrix.count(1, 0), 1);
    EXPECT_THROW(matrix.update(torch::tensor({1}, torch::kLong), torch::tensor({255}, torch::kLong)), Error);
}

TEST(ConfusionMatrix, RejectsOutOfRangeLabelsAndShapeMismatch) {
    ConfusionMatrix matrix(3);
    EXPECT_THROW(matrix.update(torch::tensor({3}, torch::kLong), torch::tensor({0}, torch::kLong)), Error);
    EXPECT_THROW(matrix.update(torch::tensor({0}, torch::kLong), torch::tensor({5}, torch::kLong)), Error);
    EXPECT_THROW(matrix.update(torch::tensor({-1}, torch::kLong), torch::tensor({0}, torch::kLong)), Error);
    EXPECT_THROW(matrix.update(torch::zeros({2}, torch::kLong), torch::zeros({3}, torch::kLong)), Error);
    // Failed updates leave the counts alone.
    EXPECT_EQ(matrix.totalPixels(), 0);
    // A bad prediction under an ignored pixel does not matter.
    matrix.update(torch::tensor({9}, torch::kLong), torch::tensor({255}, torch::kLong));
    cv::Mat pred(1, 1, CV_8UC1, cv::Scalar(7)), gt(1, 1, CV_8UC1, cv::Scalar(1));
    EXPECT_THROW(matrix.update(pred, gt), Error);
    EXPECT_EQ(matrix.totalPixels(), 0);
}

TEST(ImageIou, PerImageValuesFromOneBatchTransfer) {
    // Image 0 is the hand-computed example; image 1 is perfect on class 1 only.
    auto pred =
        torch::stack({torch::tensor(kPred, torch::kLong), torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, torch::kLong)});
    auto target = torch::stack(
        {torch::tensor(kTarget, torch::kLong), torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 255, 255}, torch::kLong)});
    const auto images = batchImageIou(pred.reshape({2, 2, 5}), target.reshape({2, 2, 5}), 4);
    ASSERT_EQ(images.size(), 2u);
    EXPECT_NEAR(*images[0].meanIou, 1.0 / 3, kTol);
    EXPECT_NEAR(*images[0].perClass[0], 0.5, kTol);
    EXPECT_EQ(*images[0].perClass[2], 0.0);
    EXPECT_FALSE(images[0].perClass[3].has_value());
    EXPECT_EQ(*images[1].meanIou, 1.0);
    EXPECT_FALSE(images[1].perClass[0].has_value());
    EXPECT_EQ(perClassIouJson(images[1]), "[null,1.0,null,null]");

    ConfusionMatrix single(4);
    single.update(tensorOf(kPred), tensorOf(kTarget));
    EXPECT_NEAR(*imageIou(single).meanIou, 1.0 / 3, kTol);
}

TEST(ImageIou, CudaMatchesCpu) {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    ConfusionMatrix cpu(4), gpu(4);
    cpu.update(tensorOf(kPred), tensorOf(kTarget));
    gpu.update(tensorOf(kPred).cuda(), tensorOf(kTarget).cuda());
    for (int t = 0; t < 4; ++t)
        for (int p = 0; p < 4; ++p) EXPECT_EQ(cpu.count(t, p), gpu.count(t, p));
}

// ---- segscope-cli score ----

namespace {

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
