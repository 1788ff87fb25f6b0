#include "segscope/core/analysis/metrics.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/error.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace segscope::core;
using segscope::test::matOf;

namespace {

// The hand-computed example (tests/support/test_support.h): kTarget and kPred.
using segscope::test::kPred;
using segscope::test::kTarget;
constexpr double kTol = 1e-12;

torch::Tensor tensorOf(const std::vector<std::int64_t>& v) {
    return torch::tensor(v, torch::kLong).reshape({2, 5});
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
