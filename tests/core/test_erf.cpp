#include "segscope/core/analysis/erf.h"

#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <fstream>

namespace core = segscope::core;
using segscope::test::TempDir;
namespace fs = std::filesystem;

namespace {

// n 3x3 convolutions (zero padding, no bias) with positive, fully symmetric kernels; stage k is
// the output after conv k, the decoder is stage 4's output.
class ConvStack : public core::SegmentationModel {
public:
    ConvStack() : core::SegmentationModel(2) {
        torch::NoGradGuard noGrad;
        for (int i = 0; i < 4; ++i) {
            auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(i == 0 ? 3 : 2, 2, 3).padding(1).bias(false));
            torch::Tensor w = torch::rand(conv->weight.sizes()) + 0.1;
            w = w + w.flip({2});
            w = w + w.flip({3});
            w = w + w.transpose(2, 3);
            conv->weight.copy_(w);
            convs_.push_back(register_module("conv" + std::to_string(i + 1), conv));
        }
    }
    torch::Tensor forwardStages(const torch::Tensor& input, core::StageMap* stages) override {
        torch::Tensor x = input;
        for (std::size_t i = 0; i < convs_.size(); ++i) {
            x = convs_[i]->forward(x);
            if (stages) (*stages)["stage" + std::to_string(i + 1)] = x;
        }
        if (stages) (*stages)["decoder"] = x;
        return x;
    }
    bool isHeadParameter(const std::string&) const override { return false; }

private:
    std::vector<torch::nn::Conv2d> convs_;
};

// Nonzero pixels of a map.
torch::Tensor support(const torch::Tensor& map) {
    return map != 0;
}

// A (h, w) boolean mask that is true inside rows/cols [lo, hi].
torch::Tensor box(int h, int w, int lo, int hi) {
    torch::Tensor mask = torch::zeros({h, w}, torch::kBool);
    mask.slice(0, lo, hi + 1).slice(1, lo, hi + 1).fill_(true);
    return mask;
}

double maxRelativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
    const double scale = std::max(a.abs().max().item<double>(), 1e-30);
    return (a - b).abs().max().item<double>() / scale;
}

}  // namespace

TEST(Erf, ConvStackSupportIsExactlyTheTheoreticalSquare) {
    torch::manual_seed(1);
    ConvStack model;
    for (core::ErfObjective objective : {core::ErfObjective::Sum, core::ErfObjective::ReluSum}) {
        core::ErfOptions options;
        options.objective = objective;
        // Positive inputs keep every activation positive, so the ReLU objective passes the same
        // gradient as the plain sum.
        const torch::Tensor input = torch::rand({2, 3, 64, 64}) + 0.01;
        const core::ErfResult result = core::computeErf(model, input, options);
        ASSERT_EQ(result.stages.size(), 5u);
        EXPECT_EQ(result.images, 2);
        EXPECT_FALSE(result.cancelled);
        for (int n = 1; n <= 4; ++n) {
            const core::StageErf* stage = result.find("stage" + std::to_string(n));
            ASSERT_NE(stage, nullptr);
            ASSERT_EQ(stage->map.sizes(), (std::vector<std::int64_t>{64, 64}));
            EXPECT_EQ(stage->map.scalar_type(), torch::kFloat32);
            // Centre pixel 32: support rows and columns 32 - n .. 32 + n, (2n + 1)^2 pixels.
            EXPECT_TRUE(torch::equal(support(stage->map), box(64, 64, 32 - n, 32 + n))) << "stage" << n;
            EXPECT_EQ(support(stage->map).sum().item<std::int64_t>(), (2 * n + 1) * (2 * n + 1));
            const torch::Tensor window = stage->map.slice(0, 32 - n, 33 + n).slice(1, 32 - n, 33 + n);
            EXPECT_LT(maxRelativeDifference(window, window.flip({0})), 1e-5);
            EXPECT_LT(maxRelativeDifference(window, window.flip({1})), 1e-5);
            EXPECT_LT(maxRelativeDifference(window, window.transpose(0, 1)), 1e-5);
            // All the mass lies in the (2n+1)^2 square.
            EXPECT_EQ(stage->areaRatios.back().sidePixels, 2 * n + 1);
        }
        EXPECT_TRUE(torch::equal(result.find("decoder")->map, result.find("stage4")->map));
    }
}

TEST(Erf, RestoresTrainingModeAndRequiresGradAndLeavesNoParameterGradients) {
    torch::manual_seed(2);
    ConvStack model;
    model.train();
    auto parameters = model.parameters();
    parameters[1].set_requires_grad(false);
    core::computeErf(model, torch::rand({1, 3, 16, 16}));
    EXPECT_TRUE(model.is_training());
    EXPECT_TRUE(parameters[0].requires_grad());
    EXPECT_FALSE(parameters[1].requires_grad());
    EXPECT_TRUE(parameters[2].requires_grad());
    for (const auto& p : parameters) EXPECT_FALSE(p.grad().defined());
}

TEST(Erf, CancelledBeforeTheFirstStageReturnsNoImages) {
    ConvStack model;
    std::atomic<bool> cancel{true};
    const core::ErfResult result = core::computeErf(model, torch::rand({1, 3, 16, 16}), {}, {}, &cancel);
    EXPECT_TRUE(result.cancelled);
    EXPECT_EQ(result.images, 0);
    EXPECT_EQ(result.stages.size(), 5u);
    EXPECT_EQ(result.stages[0].sum, 0.0);
}

TEST(Erf, UnknownStageAndBadInputAreErrors) {
    ConvStack model;
    core::ErfOptions options;
    options.stages = {"stage9"};
    EXPECT_THROW(core::computeErf(model, torch::rand({1, 3, 16, 16}), options), core::Error);
    EXPECT_THROW(core::computeErf(model, torch::rand({3, 16, 16})), core::Error);
    EXPECT_THROW(core::computeErf(model, torch::rand({1, 1, 16, 16})), core::Error);
}

TEST(Erf, ResNetStage1IsZeroOutsideItsTheoreticalReceptiveField) {
    torch::manual_seed(3);
    auto model = core::createModel("unet-resnet18", 3);
    core::ErfOptions options;
    options.stages = {"stage1"};
    const core::ErfResult result = core::computeErf(*model, torch::randn({2, 3, 64, 64}), options);
    const torch::Tensor& map = result.find("stage1")->map;
    // layer1 output: conv1 7x7/2 (RF 7, jump 2), maxpool 3x3/2 (RF 7 + 2*2 = 11, jump 4), four
    // 3x3/1 convs of two basic blocks (each + 2*4): RF 43. The centre cell (8, 8) of the 16x16
    // map is centred on input pixel 4 * 8 = 32, so its field is rows/cols 32 - 21 .. 32 + 21.
    const torch::Tensor inside = box(64, 64, 11, 53);
    EXPECT_EQ((map.masked_select(~inside) != 0).sum().item<std::int64_t>(), 0);
    EXPECT_GT(map[32][32].item<float>(), 0.0f);
    // The field is reached to its edge in both directions: the ERF extends over the whole box.
    const torch::Tensor rows = (map != 0).any(1).nonzero().flatten();
    const torch::Tensor cols = (map != 0).any(0).nonzero().flatten();
    EXPECT_EQ(rows.min().item<std::int64_t>(), 11);
    EXPECT_EQ(rows.max().item<std::int64_t>(), 53);
    EXPECT_EQ(cols.min().item<std::int64_t>(), 11);
    EXPECT_EQ(cols.max().item<std::int64_t>(), 53);
}

TEST(Erf, ResNetErfGrowsFromStage1ToStage4) {
    torch::manual_seed(4);
    auto model = core::createModel("unet-resnet18", 3);
    const core::ErfResult batched = core::computeErf(*model, torch::randn({2, 3, 64, 64}));
    std::vector<std::int64_t> supports;
    std::vector<double> halfMass;
    std::vector<double> radius;
    for (int n = 1; n <= 4; ++n) {
        const core::StageErf* stage = batched.find("stage" + std::to_string(n));
        supports.push_back(support(stage->map).sum().item<std::int64_t>());
        halfMass.push_back(stage->areaRatios[2].areaRatio);
        radius.push_back(stage->effectiveRadiusPixels);
    }
    EXPECT_LT(supports[0], supports[1]);
    EXPECT_LE(supports[1], supports[2]);
    EXPECT_LE(supports[2], supports[3]);
    EXPECT_LT(halfMass[0], halfMass[3]);
    EXPECT_LT(radius[0], radius[1]);
    EXPECT_LT(radius[0], radius[3]);
}

TEST(Erf, BatchedGradientEqualsPerImageGradients) {
    // Eval mode makes the images of a batch independent: one batched gradient equals the mean of
    // three single-image runs. In float64, because oneDNN's float32 convolutions pick
    // batch-size-dependent algorithms whose rounding differs enough to flip a few ReLU gates
    // (measured: up to 6e-3 of the map's maximum with oneDNN, exactly 0 with it disabled); in
    // float64 what remains is the float32 rounding of the stored maps (~1e-7).
    torch::manual_seed(4);
    auto model = core::createModel("unet-resnet18", 3);
    model->to(torch::kFloat64);
    const torch::Tensor input = torch::randn({3, 3, 64, 64}, torch::kFloat64);
    const core::ErfResult batched = core::computeErf(*model, input);
    std::vector<core::ErfResult> singles;
    for (int i = 0; i < 3; ++i) singles.push_back(core::computeErf(*model, input.slice(0, i, i + 1)));
    ASSERT_EQ(batched.stages.size(), 5u);
    for (const auto& stage : batched.stages) {
        EXPECT_EQ(stage.map.scalar_type(), torch::kFloat32);
        torch::Tensor mean = torch::zeros_like(stage.map);
        for (const auto& single : singles) mean += single.find(stage.stage)->map;
        mean /= 3.0;
        EXPECT_LT(maxRelativeDifference(stage.map, mean), 1e-5) << stage.stage;
    }
}

TEST(Erf, GlobalAttentionReachesTheCornersAtStage1) {
    torch::manual_seed(5);
    auto model = core::createModel("segmenter-linear-vit-tiny-p16", 3);
    core::ErfOptions options;
    options.stages = {"stage1"};
    const core::ErfResult result = core::computeErf(*model, torch::randn({2, 3, 64, 64}), options);
    const torch::Tensor& map = result.find("stage1")->map;
    const double centrePatch = map.slice(0, 32, 48).slice(1, 32, 48).sum().item<double>();
    ASSERT_GT(centrePatch, 0.0);
    // Every corner patch (16 x 16, 2 tokens away from the centre token (2, 2)) receives gradient.
    for (auto [y, x] : std::vector<std::pair<int, int>>{{0, 0}, {0, 48}, {48, 0}, {48, 48}}) {
        const double corner = map.slice(0, y, y + 16).slice(1, x, x + 16).sum().item<double>();
        EXPECT_GT(corner, 1e-4 * centrePatch) << y << "," << x;
    }
    EXPECT_EQ(support(map).sum().item<std::int64_t>(), 64 * 64);
}

TEST(Erf, AreaRatiosAndRadiusOfHandMadeMaps) {
    const double pixels = 64.0 * 64.0;
    // A single centred pixel: the 1x1 square holds everything.
    torch::Tensor dot = torch::zeros({64, 64});
    dot[32][32] = 3.0f;
    for (double t : core::erfAreaFractions()) {
        const core::ErfAreaRatio a = core::erfAreaRatio(dot, t);
        EXPECT_EQ(a.sidePixels, 1);
        EXPECT_DOUBLE_EQ(a.areaRatio, 1.0 / pixels);
    }
    EXPECT_DOUBLE_EQ(core::erfEffectiveRadius(dot), 0.0);

    // Uniform: the smallest odd side s with s^2 >= t * 4096 (clipped at the image): t = 0.2 -> 29,
    // 0.3 -> 37, 0.5 -> 47, 0.99 -> 65 (the whole image).
    const torch::Tensor uniform = torch::ones({64, 64});
    const std::vector<std::pair<int, double>> expected{
        {29, 29.0 * 29 / pixels}, {37, 37.0 * 37 / pixels}, {47, 47.0 * 47 / pixels}, {65, 1.0}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const double t = core::erfAreaFractions()[i];
        const core::ErfAreaRatio a = core::erfAreaRatio(uniform, t);
        EXPECT_EQ(a.sidePixels, expected[i].first) << t;
        EXPECT_DOUBLE_EQ(a.areaRatio, expected[i].second) << t;
        EXPECT_NEAR(a.areaRatio, t, 0.05) << t;
    }
    // Offsets -32..31 on each axis: mean squared offset 21856 / 64 = 341.5 per axis.
    EXPECT_NEAR(core::erfEffectiveRadius(uniform), std::sqrt(683.0), 1e-9);

    // A centred 5x5 block: 9 of 25 pixels reach 0.2 and 0.3, 25 reach 0.5 and 0.99; offsets
    // -2..2 give a mean squared offset of 2 per axis, radius 2.
    torch::Tensor block = torch::zeros({64, 64});
    block.slice(0, 30, 35).slice(1, 30, 35).fill_(1.0);
    const std::vector<int> sides{3, 3, 5, 5};
    for (std::size_t i = 0; i < sides.size(); ++i) {
        const core::ErfAreaRatio a = core::erfAreaRatio(block, core::erfAreaFractions()[i]);
        EXPECT_EQ(a.sidePixels, sides[i]);
        EXPECT_DOUBLE_EQ(a.areaRatio, double(sides[i] * sides[i]) / pixels);
    }
    EXPECT_NEAR(core::erfEffectiveRadius(block), 2.0, 1e-12);

    // A zero map has no square and no radius.
    EXPECT_EQ(core::erfAreaRatio(torch::zeros({8, 8}), 0.5).sidePixels, 0);
    EXPECT_EQ(core::erfAreaRatio(torch::zeros({8, 8}), 0.5).areaRatio, 0.0);
    EXPECT_EQ(core::erfEffectiveRadius(torch::zeros({8, 8})), 0.0);

    // Statistics of a stage.
    core::StageErf stage;
    stage.map = block * 2.0;
    core::computeErfStatistics(stage);
    EXPECT_EQ(stage.areaRatios.size(), 4u);
    EXPECT_DOUBLE_EQ(stage.maxValue, 2.0);
    EXPECT_DOUBLE_EQ(stage.sum, 50.0);
}

TEST(Erf, HeatmapIsLogNormalisedToUnitRange) {
    torch::Tensor map = torch::zeros({2, 2});
    map[0][0] = 4.0f;
    map[0][1] = 2.0f;
    const torch::Tensor heat = core::erfHeatmap(map, 100.0);
    EXPECT_FLOAT_EQ(heat[0][0].item<float>(), 1.0f);
    EXPECT_FLOAT_EQ(heat[0][1].item<float>(), float(std::log1p(50.0) / std::log1p(100.0)));
    EXPECT_FLOAT_EQ(heat[1][1].item<float>(), 0.0f);
    EXPECT_EQ(core::erfHeatmap(torch::zeros({3, 3})).sum().item<float>(), 0.0f);
}

TEST(Erf, DatasetInputMatchesTheValidationPreprocessing) {
    TempDir dir;
    core::DemoOptions demo;
    demo.images = 8;
    demo.width = 48;
    demo.height = 40;
    core::writeDemoDataset(dir.path(), demo);
    core::Experiment experiment;
    experiment.dataset.kind = core::DataSource::Demo;
    experiment.dataset.root = dir.path();
    experiment.transforms.height = 32;
    experiment.transforms.width = 32;
    const auto dataset = core::Dataset::open(core::datasetSpec(experiment, "val"));
    ASSERT_GE(dataset->size(), 2u);
    const core::TransformConfig transform = core::transformConfig(experiment);

    torch::manual_seed(6);
    ConvStack model;
    core::ErfOptions options;
    options.batchSize = 1;
    std::vector<std::pair<std::int64_t, std::int64_t>> calls;
    const core::ErfResult result =
        core::computeErf(model, dataset, transform, 2, options,
                         [&](std::int64_t done, std::int64_t total) { calls.emplace_back(done, total); });
    EXPECT_EQ(result.images, 2);
    EXPECT_EQ(result.height, 32);
    EXPECT_EQ(result.width, 32);
    EXPECT_EQ(calls, (std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 2}, {2, 2}}));

    core::LoaderOptions loaderOptions;
    loaderOptions.training = false;
    loaderOptions.shuffle = false;
    loaderOptions.workers = 0;
    const core::BatchLoader loader(dataset, transform, loaderOptions);
    const core::ErfResult direct = core::computeErf(model, loader.buildBatch({0, 1}, 0, 0).images);
    for (const auto& stage : result.stages)
        EXPECT_LT(maxRelativeDifference(stage.map, direct.find(stage.stage)->map), 1e-5) << stage.stage;

    // Asking for more images than the split has uses them all; a cancelled run stops early.
    std::atomic<bool> cancel{true};
    const core::ErfResult cancelled = core::computeErf(model, dataset, transform, 100, options, {}, &cancel);
    EXPECT_TRUE(cancelled.cancelled);
    EXPECT_EQ(cancelled.images, 0);
    EXPECT_THROW(core::computeErf(model, dataset, transform, 0, options), core::Error);
}

TEST(Erf, SavedMapsLoadBackWithTheirStatisticsAndSnapshotsAreListedInStepOrder) {
    TempDir dir;
    core::ErfResult result;
    result.images = 7;
    result.height = 5;
    result.width = 6;
    result.reduction = core::ErfReduction::ReluSum;
    for (const char* name : {"stage2", "decoder", "stage1"}) {
        core::StageErf stage;
        stage.stage = name;
        stage.map = torch::arange(30, torch::kFloat32).reshape({5, 6}) * float(std::string(name).size());
        core::computeErfStatistics(stage);
        result.stages.push_back(stage);
    }
    const fs::path run = dir.path() / "run";
    core::saveErf(run / "erf" / core::erfSnapshotName(3, 120), result, "unet-resnet18");
    core::saveErf(run / "erf" / core::erfSnapshotName(0, 0), result, "unet-resnet18");
    core::saveErf(run / "erf" / core::erfSnapshotName(10, 1000), result, "unet-resnet18");
    // A snapshot cut off before its summary, and an unrelated folder, are not listed.
    fs::create_directories(run / "erf/epoch-0004-step-00000160");
    std::ofstream(run / "erf/epoch-0004-step-00000160/erf.safetensors") << "partial";
    fs::create_directories(run / "erf/notes");

    const auto snapshots = core::listErfSnapshots(run);
    ASSERT_EQ(snapshots.size(), 3u);
    EXPECT_EQ(snapshots[0].epoch, 0);
    EXPECT_EQ(snapshots[1].epoch, 3);
    EXPECT_EQ(snapshots[1].step, 120);
    EXPECT_EQ(snapshots[2].step, 1000);
    EXPECT_EQ(snapshots[2].directory.filename(), "epoch-0010-step-00001000");
    EXPECT_TRUE(core::listErfSnapshots(dir.path() / "no-such-run").empty());

    const core::ErfResult loaded = core::loadErf(snapshots[1].directory);
    EXPECT_EQ(loaded.images, 7);
    EXPECT_EQ(loaded.height, 5);
    EXPECT_EQ(loaded.width, 6);
    EXPECT_EQ(loaded.reduction, core::ErfReduction::ReluSum);
    ASSERT_EQ(loaded.stages.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(loaded.stages[i].stage, result.stages[i].stage) << "stage order kept";
        EXPECT_TRUE(torch::equal(loaded.stages[i].map, result.stages[i].map));
        EXPECT_DOUBLE_EQ(loaded.stages[i].effectiveRadiusPixels, result.stages[i].effectiveRadiusPixels);
        EXPECT_EQ(loaded.stages[i].areaRatios.size(), 4u);
        EXPECT_DOUBLE_EQ(loaded.stages[i].areaRatios[2].areaRatio, result.stages[i].areaRatios[2].areaRatio);
    }
    try {
        core::loadErf(dir.path() / "empty");
        FAIL() << "expected a FileError";
    } catch (const core::FileError& error) {
        EXPECT_NE(std::string(error.what()).find("erf.safetensors"), std::string::npos) << error.what();
    }
}
