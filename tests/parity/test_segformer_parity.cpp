// SegFormer B0-B5 against HF transformers' SegformerForSemanticSegmentation
// (fixtures from make_transformer_reference.py).
#include "transformer_test_util.h"

#include "segscope/core/error.h"

#include <array>
#include <cmath>
#include <iostream>

using namespace segscope;
using namespace segscope::test::transformer;

namespace {

struct PublishedCount {
    const char* id;
    std::int64_t parameters;  // at 21 classes
};
// SegformerForSemanticSegmentation with the B0-B5 configs and num_labels=21.
constexpr std::array<PublishedCount, 6> kSegFormerCounts{{{"segformer-b0", 3'719'541},
                                                          {"segformer-b1", 13'682'645},
                                                          {"segformer-b2", 27'362'773},
                                                          {"segformer-b3", 47'238'613},
                                                          {"segformer-b4", 64'009'173},
                                                          {"segformer-b5", 84'609'493}}};

}  // namespace

TEST(SegFormerParity, ParameterCountsAndStateDictMatchReference) {
    for (const auto& [id, published] : kSegFormerCounts) {
        auto model = core::createModel(id, kNumClasses);
        const auto count = core::countParameters(*model);
        EXPECT_EQ(count, published) << id;
        ASSERT_TRUE(referenceModels().contains(id)) << id;
        EXPECT_EQ(count, referenceModels()[id]["parameters"].get<std::int64_t>()) << id;
        expectStateDictMatchesReference(*model, id);
    }
}

TEST(SegFormerParity, LogitsMatchReference) {
    for (const std::string id : {"segformer-b0", "segformer-b1"}) {
        auto model = loadReferenceModel(id);
        const auto io = core::readSafetensors(referenceDir(id) / "io.safetensors");
        torch::NoGradGuard noGrad;
        const auto logits = model->forward(io.at("input"));
        ASSERT_EQ(logits.sizes(), io.at("logits").sizes()) << id;
        const double difference = maxAbsDifference(logits, io.at("logits"));
        std::cout << id << ": max|delta| " << difference << " (logits up to "
                  << io.at("logits").abs().max().item<double>() << ")\n";
        EXPECT_LE(difference, kLogitsTolerance) << id;
    }
}

TEST(SegFormerParity, StagesHaveExpectedNamesAndStrides) {
    auto model = core::createModel("segformer-b0", 5);
    model->eval();
    torch::NoGradGuard noGrad;
    const auto input = torch::randn({1, 3, 70, 90});
    core::StageMap stages;
    const auto logits = model->forwardStages(input, &stages);
    EXPECT_EQ(logits.sizes().vec(), (std::vector<std::int64_t>{1, 5, 70, 90}));
    std::vector<std::string> names;
    for (const auto& [name, tensor] : stages) names.push_back(name);
    auto expectedNames = model->stageNames();
    std::sort(expectedNames.begin(), expectedNames.end());
    EXPECT_EQ(names, expectedNames);
    // Overlapping patch embeddings: stride 4, then 2 per stage, each rounding up.
    const std::array<std::int64_t, 4> channels{32, 64, 160, 256};
    std::int64_t height = 70, width = 90;
    for (int i = 0; i < 4; ++i) {
        const int stride = i == 0 ? 4 : 2;
        height = (height + stride - 1) / stride;
        width = (width + stride - 1) / stride;
        const auto& stage = stages.at("stage" + std::to_string(i + 1));
        EXPECT_EQ(stage.sizes().vec(),
                  (std::vector<std::int64_t>{1, channels[static_cast<std::size_t>(i)], height, width}))
            << "stage" << i + 1;
    }
    EXPECT_TRUE(torch::equal(stages.at("decoder"), logits));
}

TEST(SegFormerParity, AnySizeInputGivesLogitsAtInputSize) {
    auto model = core::createModel("segformer-b0", 3);
    model->eval();
    torch::NoGradGuard noGrad;
    for (const auto& [h, w] : std::vector<std::pair<int, int>>{{29, 29}, {33, 47}, {64, 64}, {97, 41}}) {
        const auto logits = model->forward(torch::randn({2, 3, h, w}));
        EXPECT_EQ(logits.sizes().vec(), (std::vector<std::int64_t>{2, 3, h, w}));
        EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    }
}

TEST(SegFormerParity, TooSmallInputIsAReadableError) {
    auto model = core::createModel("segformer-b0", 3);
    model->eval();
    torch::NoGradGuard noGrad;
    EXPECT_THROW(model->forward(torch::randn({1, 3, 28, 64})), core::Error);
    EXPECT_THROW(model->forward(torch::randn({1, 3, 64, 16})), core::Error);
}

TEST(SegFormerParity, EveryParameterGetsAGradient) {
    auto model = core::createModel("segformer-b0", 4);
    expectGradientsEverywhere(*model, torch::randn({2, 3, 64, 64}));
}

TEST(SegFormerParity, HeadParametersAreTheDecodeHead) {
    auto model = core::createModel("segformer-b0", 21);
    int head = 0;
    for (const auto& item : model->named_parameters()) {
        const bool expected = item.key().rfind("decode_head.", 0) == 0;
        EXPECT_EQ(model->isHeadParameter(item.key()), expected) << item.key();
        head += expected ? 1 : 0;
    }
    EXPECT_GT(head, 0);
    EXPECT_FALSE(model->isHeadParameter("segformer.encoder.layer_norm.0.weight"));
}

TEST(SegFormerParity, ChannelsLastAndAutocastWork) {
    auto model = core::createModel("segformer-b0", 5);
    expectChannelsLastAndAutocastWork(*model, torch::randn({1, 3, 70, 90}));
}
