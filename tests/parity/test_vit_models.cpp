// Segmenter and SETR: the timm-named ViT encoder against timm's VisionTransformer, the full
// models against the transcriptions in make_transformer_reference.py, and the decoders' published
// equations recomputed here with plain torch ops.
#include "transformer_test_util.h"

#include <iostream>

using namespace segscope;
using namespace segscope::test::transformer;

namespace {

std::vector<std::string> vitModelIds() {
    std::vector<std::string> ids;
    for (const auto& entry : core::modelRegistry())
        if (entry.info.family == "segmenter" || entry.info.family == "setr") ids.push_back(entry.info.id);
    return ids;
}

torch::Tensor parameter(const torch::nn::Module& model, const std::string& name) {
    for (const auto& item : model.named_parameters())
        if (item.key() == name) return item.value();
    for (const auto& item : model.named_buffers())
        if (item.key() == name) return item.value();
    ADD_FAILURE() << "no tensor " << name;
    return {};
}

torch::Tensor resize(const torch::Tensor& x, std::int64_t h, std::int64_t w) {
    namespace F = torch::nn::functional;
    return F::interpolate(
        x,
        F::InterpolateFuncOptions().size(std::vector<std::int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
}

const std::vector<std::string> kParityIds{"segmenter-linear-vit-tiny-p16", "segmenter-mask-vit-tiny-p16",
                                          "segmenter-mask-vit-tiny-p8",    "setr-naive-vit-tiny-p16",
                                          "setr-pup-vit-tiny-p16",         "setr-mla-vit-tiny-p16"};

}  // namespace

TEST(VitModels, RegistryListsEveryId) {
    const auto ids = vitModelIds();
    EXPECT_EQ(ids.size(), 20u + 12u);
    for (const auto& [id, info] : referenceModels().items())
        if (id.rfind("segformer", 0) != 0) {
            EXPECT_NE(core::findModel(id), nullptr) << id;
        }
}

namespace {

bool isBaseOrLarge(const std::string& id) {
    return id.find("-vit-base-") != std::string::npos || id.find("-vit-large-") != std::string::npos;
}

// Builds the ids (never runs them), checks count and state dict against models.json, prints the
// count, and checks that each mask Segmenter has more parameters than its linear twin.
std::map<std::string, std::int64_t> checkCountsAndStateDicts(bool baseAndLarge) {
    std::map<std::string, std::int64_t> counts;
    for (const auto& id : vitModelIds()) {
        if (isBaseOrLarge(id) != baseAndLarge) continue;
        auto model = core::createModel(id, kNumClasses);
        const auto count = core::countParameters(*model);
        counts[id] = count;
        std::cout << id << ": " << count << " parameters\n";
        EXPECT_GT(count, 0) << id;
        if (!referenceModels().contains(id)) {
            ADD_FAILURE() << id << " missing from models.json";
            continue;
        }
        EXPECT_EQ(count, referenceModels()[id]["parameters"].get<std::int64_t>()) << id;
        expectStateDictMatchesReference(*model, id);
    }
    for (const auto& [id, count] : counts) {
        const auto at = id.find("-linear-");
        if (at == std::string::npos) continue;
        const auto maskId = std::string(id).replace(at, 8, "-mask-");
        EXPECT_TRUE(counts.count(maskId)) << maskId;
        if (counts.count(maskId)) {
            EXPECT_GT(counts.at(maskId), count) << maskId << " vs " << id;
        }
    }
    return counts;
}

}  // namespace

TEST(VitModels, ParameterCountsAndStateDictMatchReference) {
    const auto counts = checkCountsAndStateDicts(false);
    EXPECT_EQ(counts.size(), 18u);  // Segmenter 2 decoders x 2 sizes x 3 patches, SETR 3 heads x 2 sizes
    // timm's headless vit_tiny_patch16_224 has 5,524,416 parameters; at a 512 grid pos_embed grows
    // by (1024 - 196) x dim, and the linear head adds dim x 21 + 21.
    EXPECT_EQ(counts.at("segmenter-linear-vit-tiny-p16"), 5'524'416 + 828 * 192 + 192 * 21 + 21);
}

// The base and large models take most of this suite's time: ~2.7e9 random numbers to initialise.
TEST(VitModels, BaseAndLargeParameterCountsAndStateDictMatchReference) {
    const auto counts = checkCountsAndStateDicts(true);
    EXPECT_EQ(counts.size(), 14u);  // Segmenter 2 x (base x 3 patches + large), SETR 3 x 2
    // timm's headless vit_base_patch16_224 / vit_large_patch16_224: 85,798,656 / 303,301,632.
    EXPECT_EQ(counts.at("segmenter-linear-vit-base-p16"), 85'798'656 + 828 * 768 + 768 * 21 + 21);
    EXPECT_EQ(counts.at("segmenter-linear-vit-large-p16"), 303'301'632 + 828 * 1024 + 1024 * 21 + 21);
}

TEST(VitModels, LogitsAndEncoderMatchReference) {
    for (const auto& id : kParityIds) {
        auto model = loadReferenceModel(id);
        const auto io = core::readSafetensors(referenceDir(id) / "io.safetensors");
        torch::NoGradGuard noGrad;
        core::StageMap stages;
        const auto logits = model->forwardStages(io.at("input"), &stages);
        ASSERT_EQ(logits.sizes(), io.at("logits").sizes()) << id;
        const double difference = maxAbsDifference(logits, io.at("logits"));
        // The encoder against timm's own VisionTransformer.forward_features on the padded input.
        const auto& stage4 = stages.at("stage4");
        const auto tokens = stage4.flatten(2).transpose(1, 2);
        ASSERT_EQ(tokens.sizes(), io.at("encoder_tokens").sizes()) << id;
        const double encoderDifference = maxAbsDifference(tokens, io.at("encoder_tokens"));
        std::cout << id << ": logits max|delta| " << difference << ", encoder max|delta| " << encoderDifference << "\n";
        EXPECT_LE(difference, kLogitsTolerance) << id;
        EXPECT_LE(encoderDifference, kLogitsTolerance) << id;
    }
}

TEST(VitModels, StagesHaveExpectedNamesAndStrides) {
    struct Case {
        std::string id;
        std::int64_t patch;
        std::int64_t channels;
    };
    for (const auto& c : std::vector<Case>{{"segmenter-linear-vit-tiny-p16", 16, 192},
                                           {"segmenter-mask-vit-tiny-p8", 8, 192},
                                           {"segmenter-linear-vit-tiny-p32", 32, 192},
                                           {"setr-mla-vit-tiny-p16", 16, 192}}) {
        auto model = core::createModel(c.id, 5);
        model->eval();
        torch::NoGradGuard noGrad;
        core::StageMap stages;
        const auto logits = model->forwardStages(torch::randn({1, 3, 70, 90}), &stages);
        EXPECT_EQ(logits.sizes().vec(), (std::vector<std::int64_t>{1, 5, 70, 90})) << c.id;
        ASSERT_EQ(stages.size(), 5u) << c.id;
        for (const auto& name : model->stageNames()) ASSERT_TRUE(stages.count(name)) << c.id << " " << name;
        const auto gridH = (70 + c.patch - 1) / c.patch, gridW = (90 + c.patch - 1) / c.patch;
        for (int i = 1; i <= 4; ++i)
            EXPECT_EQ(stages.at("stage" + std::to_string(i)).sizes().vec(),
                      (std::vector<std::int64_t>{1, c.channels, gridH, gridW}))
                << c.id << " stage" << i;
        EXPECT_TRUE(torch::equal(stages.at("decoder"), logits)) << c.id;
    }
}

TEST(VitModels, AnySizeInputGivesLogitsAtInputSize) {
    for (const std::string id : {"segmenter-mask-vit-tiny-p16", "setr-pup-vit-tiny-p16", "setr-naive-vit-tiny-p16"}) {
        auto model = core::createModel(id, 3);
        model->eval();
        torch::NoGradGuard noGrad;
        for (const auto& [h, w] : std::vector<std::pair<int, int>>{{10, 13}, {33, 47}, {64, 64}, {97, 41}}) {
            const auto logits = model->forward(torch::randn({2, 3, h, w}));
            EXPECT_EQ(logits.sizes().vec(), (std::vector<std::int64_t>{2, 3, h, w})) << id;
            EXPECT_TRUE(torch::isfinite(logits).all().item<bool>()) << id;
        }
    }
}

TEST(VitModels, EveryParameterGetsAGradient) {
    for (const std::string id : {"segmenter-linear-vit-tiny-p16", "segmenter-mask-vit-tiny-p16",
                                 "setr-naive-vit-tiny-p16", "setr-pup-vit-tiny-p16", "setr-mla-vit-tiny-p16"}) {
        SCOPED_TRACE(id);
        auto model = core::createModel(id, 4);
        expectGradientsEverywhere(*model, torch::randn({2, 3, 40, 56}));
    }
}

TEST(VitModels, ChannelsLastAndAutocastWork) {
    for (const std::string id : {"segmenter-mask-vit-tiny-p16", "setr-mla-vit-tiny-p16"}) {
        SCOPED_TRACE(id);
        auto model = core::createModel(id, 5);
        expectChannelsLastAndAutocastWork(*model, torch::randn({1, 3, 70, 90}));
    }
}

TEST(VitModels, HeadParameters) {
    auto segmenter = core::createModel("segmenter-mask-vit-tiny-p16", 21);
    for (const auto& item : segmenter->named_parameters())
        EXPECT_EQ(segmenter->isHeadParameter(item.key()), item.key().rfind("decoder.", 0) == 0) << item.key();
    auto setr = core::createModel("setr-mla-vit-tiny-p16", 21);
    for (const auto& item : setr->named_parameters()) {
        const bool head = item.key().rfind("decode_head.", 0) == 0 || item.key().rfind("neck.", 0) == 0;
        EXPECT_EQ(setr->isHeadParameter(item.key()), head) << item.key();
    }
    EXPECT_FALSE(setr->isHeadParameter("backbone.pos_embed"));
}

// Segmenter's linear decoder: logits = upsample(head(tokens)) cropped, from the encoder tokens.
TEST(VitModels, LinearDecoderFollowsPublishedEquation) {
    auto model = core::createModel("segmenter-linear-vit-tiny-p16", 3);
    model->eval();
    torch::NoGradGuard noGrad;
    const auto input = torch::randn({1, 3, 37, 50});
    core::StageMap stages;
    const auto logits = model->forwardStages(input, &stages);
    const auto& grid = stages.at("stage4");  // encoder.norm output
    const auto tokens = grid.flatten(2).transpose(1, 2);
    auto masks =
        torch::matmul(tokens, parameter(*model, "decoder.head.weight").t()) + parameter(*model, "decoder.head.bias");
    masks = masks.transpose(1, 2).reshape({1, 3, grid.size(2), grid.size(3)});
    const auto expected = resize(masks, 48, 64).narrow(2, 0, 37).narrow(3, 0, 50);
    EXPECT_LE(maxAbsDifference(logits, expected), 1e-5);
}

// Segmenter's mask transformer with its two blocks made identities (attn.proj and mlp.fc2 zeroed),
// recomputed with plain ops: proj_dec, append cls_emb, decoder_norm, project and L2-normalise patch
// and class embeddings, scalar products, mask_norm over classes.
TEST(VitModels, MaskDecoderFollowsPublishedEquations) {
    const int numClasses = 4;
    auto model = core::createModel("segmenter-mask-vit-tiny-p16", numClasses);
    model->eval();
    torch::NoGradGuard noGrad;
    for (const auto& item : model->named_parameters()) {
        const auto& name = item.key();
        if (name.rfind("decoder.blocks.", 0) == 0 &&
            (name.find("attn.proj.") != std::string::npos || name.find("mlp.fc2.") != std::string::npos))
            item.value().zero_();
        else if (name.rfind("decoder.", 0) == 0 && name.find("norm") != std::string::npos)
            item.value().add_(0.3 * torch::randn_like(item.value()));  // non-trivial affine LayerNorms
    }
    const auto input = torch::randn({2, 3, 40, 56});
    core::StageMap stages;
    const auto logits = model->forwardStages(input, &stages);
    const auto& grid = stages.at("stage4");
    const auto tokens = grid.flatten(2).transpose(1, 2);
    const auto dim = tokens.size(2);
    auto layerNorm = [&](const torch::Tensor& x, const std::string& prefix, double eps) {
        const auto mean = x.mean(-1, true);
        const auto variance = (x - mean).pow(2).mean(-1, true);
        return (x - mean) / torch::sqrt(variance + eps) * parameter(*model, prefix + ".weight") +
               parameter(*model, prefix + ".bias");
    };
    auto x = torch::matmul(tokens, parameter(*model, "decoder.proj_dec.weight").t()) +
             parameter(*model, "decoder.proj_dec.bias");
    x = torch::cat({x, parameter(*model, "decoder.cls_emb").expand({2, numClasses, dim})}, 1);
    x = layerNorm(x, "decoder.decoder_norm", 1e-5);
    const auto patchCount = tokens.size(1);
    auto patches = torch::matmul(x.narrow(1, 0, patchCount), parameter(*model, "decoder.proj_patch"));
    auto classes = torch::matmul(x.narrow(1, patchCount, numClasses), parameter(*model, "decoder.proj_classes"));
    patches = patches / patches.pow(2).sum(-1, true).sqrt();
    classes = classes / classes.pow(2).sum(-1, true).sqrt();
    auto masks = layerNorm(torch::matmul(patches, classes.transpose(1, 2)), "decoder.mask_norm", 1e-5);
    masks = masks.transpose(1, 2).reshape({2, numClasses, grid.size(2), grid.size(3)});
    const auto expected = resize(masks, 48, 64).narrow(2, 0, 40).narrow(3, 0, 56);
    EXPECT_LE(maxAbsDifference(logits, expected), 1e-5);
}

namespace {

// mmcv ConvModule in eval mode: relu(bn(conv(x))).
torch::Tensor convModule(const torch::nn::Module& model, const std::string& prefix, const torch::Tensor& x) {
    const auto weight = parameter(model, prefix + ".conv.weight");
    auto y = torch::conv2d(x, weight, {}, 1, (weight.size(2) - 1) / 2);
    y = torch::batch_norm(y, parameter(model, prefix + ".bn.weight"), parameter(model, prefix + ".bn.bias"),
                          parameter(model, prefix + ".bn.running_mean"), parameter(model, prefix + ".bn.running_var"),
                          false, 0.1, 1e-5, false);
    return torch::relu(y);
}

torch::Tensor channelNorm(const torch::nn::Module& model, const std::string& prefix, const torch::Tensor& x) {
    auto t = x.flatten(2).transpose(1, 2);
    t = torch::layer_norm(t, {t.size(2)}, parameter(model, prefix + ".weight"), parameter(model, prefix + ".bias"),
                          1e-6);
    return t.transpose(1, 2).reshape(x.sizes());
}

void randomiseBatchNorms(torch::nn::Module& model) {
    torch::NoGradGuard noGrad;
    for (const auto& item : model.named_buffers()) {
        if (item.key().find("running_mean") != std::string::npos)
            item.value().copy_(0.1 * torch::randn_like(item.value()));
        if (item.key().find("running_var") != std::string::npos)
            item.value().copy_(0.5 + torch::rand_like(item.value()));
    }
}

}  // namespace

// SETR-MLA from the four tapped block outputs: MLANeck (LN, 1x1 ConvModule, top-down sums from
// the deepest tap, 3x3 ConvModule), SETRMLAHead (2 x 3x3 ConvModule, x4 each), concat, conv_seg,
// resize to the input.
TEST(VitModels, MlaHeadFollowsPublishedEquations) {
    auto model = core::createModel("setr-mla-vit-tiny-p16", 3);
    randomiseBatchNorms(*model);
    model->eval();
    torch::NoGradGuard noGrad;
    const auto input = torch::randn({1, 3, 45, 70});
    core::StageMap stages;
    const auto logits = model->forwardStages(input, &stages);
    std::vector<torch::Tensor> projected;
    for (int i = 0; i < 4; ++i) {
        const auto& tap = stages.at("stage" + std::to_string(i + 1));
        projected.push_back(convModule(*model, "neck.mla.channel_proj." + std::to_string(i),
                                       channelNorm(*model, "neck.norm." + std::to_string(i), tap)));
    }
    const auto m0 = projected[3];
    const auto m1 = m0 + projected[2];
    const auto m2 = m1 + projected[1];
    const auto m3 = m2 + projected[0];
    std::vector<torch::Tensor> branches;
    int i = 0;
    for (const auto& mid : {m0, m1, m2, m3}) {
        const auto index = std::to_string(i++);
        auto y = convModule(*model, "neck.mla.feat_extract." + index, mid);
        y = convModule(*model, "decode_head.up_convs." + index + ".0", y);
        y = convModule(*model, "decode_head.up_convs." + index + ".1", y);
        branches.push_back(resize(y, 4 * y.size(2), 4 * y.size(3)));
    }
    auto out = torch::conv2d(torch::cat(branches, 1), parameter(*model, "decode_head.conv_seg.weight"),
                             parameter(*model, "decode_head.conv_seg.bias"));
    EXPECT_LE(maxAbsDifference(logits, resize(out, 45, 70)), 1e-5);
}

// SETR naive and PUP from the last block's tokens: LN, [ConvModule, upsample] x n, conv_seg.
TEST(VitModels, UpHeadsFollowPublishedEquations) {
    for (const auto& [id, convs] :
         std::vector<std::pair<std::string, int>>{{"setr-naive-vit-tiny-p16", 1}, {"setr-pup-vit-tiny-p16", 4}}) {
        auto model = core::createModel(id, 3);
        randomiseBatchNorms(*model);
        model->eval();
        torch::NoGradGuard noGrad;
        const auto input = torch::randn({1, 3, 45, 70});
        core::StageMap stages;
        const auto logits = model->forwardStages(input, &stages);
        auto y = channelNorm(*model, "decode_head.norm", stages.at("stage4"));
        const int scale = convs == 1 ? 4 : 2;
        for (int i = 0; i < convs; ++i) {
            y = convModule(*model, "decode_head.up_convs." + std::to_string(i) + ".0", y);
            y = resize(y, scale * y.size(2), scale * y.size(3));
        }
        y = torch::conv2d(y, parameter(*model, "decode_head.conv_seg.weight"),
                          parameter(*model, "decode_head.conv_seg.bias"));
        EXPECT_LE(maxAbsDifference(logits, resize(y, 45, 70)), 1e-5) << id;
    }
}
