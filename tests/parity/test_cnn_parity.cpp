// The CNN models (smp Unet/FPN/DeepLabV3+, torchvision FCN, seed U-Net) against their Python
// references: state_dict names and shapes, parameter counts, logits, stages, any input size,
// gradients, and torchvision ResNet checkpoint mapping. Data: tests/parity/make_cnn_reference.py.
#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

using namespace segscope::core;

namespace {

constexpr double kLogitsTolerance = 1e-4;  // max |Δ| in float32, eval mode
constexpr int kVocClasses = 21;

const std::vector<std::string> kAllIds = {"unet-resnet18",  "unet-resnet34",     "unet-resnet50",
                                          "unet-resnet101", "fpn-resnet50",      "deeplabv3plus-resnet50",
                                          "fcn-resnet50",   "unet-seed-resnet50"};
const std::vector<std::string> kLogitsIds = {"unet-resnet18",          "unet-resnet50", "fpn-resnet50",
                                             "deeplabv3plus-resnet50", "fcn-resnet50",  "unet-seed-resnet50"};
const std::vector<std::string> kResNet50Ids = {"unet-resnet50", "fpn-resnet50", "deeplabv3plus-resnet50",
                                               "fcn-resnet50", "unet-seed-resnet50"};

std::filesystem::path cnnData() {
    return segscope::test::testData() / "reference" / "cnn";
}

const nlohmann::json& referenceSummary() {
    static const nlohmann::json summary = [] {
        std::ifstream in(cnnData() / "models.json");
        EXPECT_TRUE(in) << "missing " << (cnnData() / "models.json");
        return in ? nlohmann::json::parse(in) : nlohmann::json::object();
    }();
    return summary;
}

// The same file keeping the reference's key order.
const nlohmann::ordered_json& referenceOrderedSummary() {
    static const nlohmann::ordered_json summary = [] {
        std::ifstream in(cnnData() / "models.json");
        return in ? nlohmann::ordered_json::parse(in) : nlohmann::ordered_json::object();
    }();
    return summary;
}

std::string shapeText(torch::IntArrayRef sizes) {
    return c10::str(sizes);
}

std::string testName(const ::testing::TestParamInfo<std::string>& info) {
    std::string name = info.param;
    for (auto& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return name;
}

// Stride of stage1..stage4 relative to the input.
std::vector<std::int64_t> expectedStrides(const std::string& id) {
    if (id == "fcn-resnet50") return {4, 8, 8, 8};              // torchvision dilates layer3/layer4
    if (id == "deeplabv3plus-resnet50") return {4, 8, 16, 16};  // smp output stride 16
    return {4, 8, 16, 32};
}

}  // namespace

TEST(CnnModels, PublishedParameterCounts) {
    EXPECT_EQ(countParameters(*createModel("unet-resnet50", kVocClasses)), 32'524'005);
    EXPECT_EQ(countParameters(*createModel("unet-seed-resnet50", kVocClasses)), 71'863'765);
}

TEST(CnnModels, RegisteredWithStages) {
    for (const auto& id : kAllIds) {
        const ModelEntry* entry = findModel(id);
        ASSERT_NE(entry, nullptr) << id;
        EXPECT_FALSE(entry->info.reference.empty()) << id;
        EXPECT_EQ(entry->info.stages, (std::vector<std::string>{"stage1", "stage2", "stage3", "stage4", "decoder"}));
    }
}

// ---------------------------------------------------------------------------------------------
class CnnReferenceNames : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnReferenceNames, StateDictAndParameterCountMatchReference) {
    const std::string id = GetParam();
    const auto& reference = referenceSummary().at(id);
    auto model = createModel(id, kVocClasses);
    EXPECT_EQ(countParameters(*model), reference.at("parameters").get<std::int64_t>()) << id;

    const TensorMap mine = stateDict(*model);
    std::set<std::string> expected;
    for (const auto& [name, shape] : reference.at("state_dict").items()) {
        expected.insert(name);
        const auto it = mine.find(name);
        if (it == mine.end()) {
            ADD_FAILURE() << id << ": missing " << name;
            continue;
        }
        EXPECT_EQ(shapeText(it->second.sizes()), shapeText(shape.get<std::vector<std::int64_t>>())) << name;
    }
    for (const auto& [name, tensor] : mine) EXPECT_TRUE(expected.count(name)) << id << ": unexpected " << name;

    // Parameters also come in the reference's order (what optimizers and listings iterate).
    std::vector<std::string> order, referenceOrder;
    for (const auto& p : model->named_parameters(true)) order.push_back(p.key());
    const std::set<std::string> parameterNames(order.begin(), order.end());
    for (const auto& [name, shape] : referenceOrderedSummary().at(id).at("state_dict").items())
        if (parameterNames.count(name)) referenceOrder.push_back(name);
    EXPECT_EQ(order, referenceOrder) << id;
}

INSTANTIATE_TEST_SUITE_P(AllCnn, CnnReferenceNames, ::testing::ValuesIn(kAllIds), testName);

// ---------------------------------------------------------------------------------------------
class CnnLogitsParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnLogitsParity, LogitsMatchReference) {
    const std::string id = GetParam();
    const auto folder = cnnData() / id;
    const TensorMap weights = readSafetensors(folder / "weights.safetensors");
    const TensorMap io = readSafetensors(folder / "io.safetensors");
    const int classes = referenceSummary().at(id).at("logits_check").at("classes").get<int>();

    auto model = createModel(id, classes);
    std::set<std::string> fileKeys, modelKeys;
    for (const auto& [name, tensor] : weights) fileKeys.insert(name);
    for (const auto& [name, tensor] : stateDict(*model)) modelKeys.insert(name);
    EXPECT_EQ(fileKeys, modelKeys);

    const LoadReport report = loadStateDict(*model, weights, LoadOptions{true, {}});
    EXPECT_TRUE(report.complete()) << report.summary();
    model->eval();
    torch::NoGradGuard noGrad;
    const torch::Tensor input = io.at("input");
    const torch::Tensor expected = io.at("logits");
    const torch::Tensor logits = model->forward(input);
    ASSERT_EQ(logits.sizes(), expected.sizes());
    const double maxDelta = (logits - expected).abs().max().item<double>();
    EXPECT_LE(maxDelta, kLogitsTolerance) << id << " at " << shapeText(input.sizes());
    RecordProperty("max_abs_delta", c10::str(maxDelta));
}

TEST_P(CnnLogitsParity, ChannelsLastAndAutocastRun) {
    // The training loop may switch to channels_last and autocast; CUDA is not in this suite, so
    // the CPU variants stand in: same logits in channels_last, finite bfloat16 logits.
    const std::string id = GetParam();
    torch::manual_seed(3);
    auto model = createModel(id, 3);
    model->eval();
    torch::NoGradGuard noGrad;
    const torch::Tensor input = torch::randn({1, 3, 64, 64});
    const torch::Tensor reference = model->forward(input);
    for (auto& p : model->parameters(true))
        if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    const torch::Tensor channelsLast = model->forward(input.contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_LE((channelsLast - reference).abs().max().item<double>(), kLogitsTolerance) << id;

    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    const torch::Tensor mixed = model->forward(input);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    EXPECT_EQ(mixed.sizes(), reference.sizes());
    EXPECT_TRUE(torch::isfinite(mixed).all().item<bool>()) << id;
    // bfloat16 keeps ~3 significant digits; the logits must still be the same function.
    const double scale = reference.abs().max().item<double>();
    const double mixedDelta = (mixed.to(torch::kFloat) - reference).abs().max().item<double>();
    EXPECT_GT(mixedDelta, 0.0) << id << ": autocast did not engage";
    EXPECT_LE(mixedDelta, 0.1 * scale + 1e-3) << id;
}

INSTANTIATE_TEST_SUITE_P(Cnn, CnnLogitsParity, ::testing::ValuesIn(kLogitsIds), testName);

// ---------------------------------------------------------------------------------------------
class CnnShapes : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnShapes, StagesHaveExpectedNamesAndStrides) {
    const std::string id = GetParam();
    auto model = createModel(id, 3);
    model->eval();
    torch::NoGradGuard noGrad;
    const torch::Tensor input = torch::randn({1, 3, 64, 96});
    StageMap stages;
    const torch::Tensor logits = model->forwardStages(input, &stages);
    std::vector<std::string> names;
    for (const auto& [name, tensor] : stages) names.push_back(name);
    auto expectedNames = model->stageNames();
    std::sort(expectedNames.begin(), expectedNames.end());
    EXPECT_EQ(names, expectedNames);
    const auto strides = expectedStrides(id);
    for (std::size_t i = 0; i < 4; ++i) {
        const torch::Tensor& stage = stages.at("stage" + std::to_string(i + 1));
        ASSERT_EQ(stage.dim(), 4);
        EXPECT_EQ(stage.size(2), 64 / strides[i]) << id << " stage" << i + 1;
        EXPECT_EQ(stage.size(3), 96 / strides[i]) << id << " stage" << i + 1;
    }
    EXPECT_TRUE(stages.at("decoder").equal(logits));
    EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{1, 3, 64, 96}));
}

TEST_P(CnnShapes, LogitsAtInputSizeForAnySize) {
    const std::string id = GetParam();
    auto model = createModel(id, 4);
    model->eval();
    torch::NoGradGuard noGrad;
    for (const auto& [height, width] : {std::pair<std::int64_t, std::int64_t>{70, 90}, {33, 47}}) {
        const torch::Tensor logits = model->forward(torch::randn({1, 3, height, width}));
        EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{1, 4, height, width})) << id;
        EXPECT_TRUE(torch::isfinite(logits).all().item<bool>()) << id;
    }
    // Models whose reference needs multiples of the output stride see the input zero-padded
    // right/bottom, and return the matching crop.
    const std::int64_t multiple = id == "deeplabv3plus-resnet50" ? 16 : 32;
    if (id == "fpn-resnet50" || id == "deeplabv3plus-resnet50" || id == "unet-seed-resnet50") {
        const torch::Tensor input = torch::randn({1, 3, 70, 90});
        const std::int64_t paddedHeight = (70 + multiple - 1) / multiple * multiple;
        const std::int64_t paddedWidth = (90 + multiple - 1) / multiple * multiple;
        const torch::Tensor padded = torch::constant_pad_nd(input, {0, paddedWidth - 90, 0, paddedHeight - 70});
        const torch::Tensor expected = model->forward(padded).slice(2, 0, 70).slice(3, 0, 90);
        EXPECT_LE((model->forward(input) - expected).abs().max().item<double>(), 1e-6) << id;
    }
}

TEST_P(CnnShapes, HeadParametersAreTheDecoder) {
    const std::string id = GetParam();
    auto model = createModel(id, 3);
    std::int64_t head = 0, encoder = 0;
    for (const auto& p : model->named_parameters(true)) (model->isHeadParameter(p.key()) ? head : encoder) += 1;
    EXPECT_GT(head, 0) << id;
    EXPECT_GT(encoder, 0) << id;
    if (id == "fcn-resnet50") {
        EXPECT_TRUE(model->isHeadParameter("classifier.4.weight"));
        EXPECT_FALSE(model->isHeadParameter("backbone.layer4.2.conv3.weight"));
    } else if (id == "unet-seed-resnet50") {
        EXPECT_TRUE(model->isHeadParameter("decoder4.1.double_conv.0.weight"));
        EXPECT_TRUE(model->isHeadParameter("final_conv.bias"));
        EXPECT_FALSE(model->isHeadParameter("encoder5.0.conv1.weight"));
    } else {
        EXPECT_TRUE(model->isHeadParameter("segmentation_head.0.weight"));
        EXPECT_FALSE(model->isHeadParameter("encoder.layer1.0.conv1.weight"));
    }
}

INSTANTIATE_TEST_SUITE_P(AllCnn, CnnShapes, ::testing::ValuesIn(kAllIds), testName);

// ---------------------------------------------------------------------------------------------
// unet-resnet34/101 share every module type with unet-resnet18/50; they are left out to save time.
class CnnTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnTraining, BackwardReachesEveryParameter) {
    const std::string id = GetParam();
    torch::manual_seed(7);
    auto model = createModel(id, 3);
    model->train();
    // Batch 2: train-mode BatchNorm on 1x1 maps (DeepLabV3+'s image pooling, layer4 at 32x32)
    // needs more than one value per channel.
    const torch::Tensor input = torch::randn({2, 3, 32, 32});
    const torch::Tensor target = torch::randint(0, 3, {2, 32, 32});
    const torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(input), target);
    loss.backward();
    for (const auto& p : model->named_parameters(true)) {
        const torch::Tensor& grad = p.value().grad();
        ASSERT_TRUE(grad.defined()) << id << ": no gradient for " << p.key();
        EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << id << ": " << p.key();
        EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << id << ": zero gradient for " << p.key();
    }
}

INSTANTIATE_TEST_SUITE_P(Cnn, CnnTraining, ::testing::ValuesIn(kLogitsIds), testName);

// ---------------------------------------------------------------------------------------------
TEST(CnnPretrained, TorchvisionResNet50MapsOntoEveryResNet50Model) {
    // smp's resnet50 encoder is torchvision's resnet50 minus fc (the reference script asserts
    // it), so unet-resnet50's encoder weights are a torchvision checkpoint once unprefixed.
    const TensorMap unet = readSafetensors(cnnData() / "unet-resnet50" / "weights.safetensors");
    TensorMap torchvision;
    for (const auto& [name, tensor] : unet)
        if (name.rfind("encoder.", 0) == 0) torchvision[name.substr(8)] = tensor;
    torchvision["fc.weight"] = torch::randn({1000, 2048});
    torchvision["fc.bias"] = torch::randn({1000});
    std::set<std::string> names, referenceNames;
    for (const auto& [name, tensor] : torchvision) names.insert(name);
    for (const auto& [name, shape] : referenceSummary().at("torchvision-resnet50").at("state_dict").items())
        referenceNames.insert(name);
    ASSERT_EQ(names, referenceNames);

    for (const auto& id : kResNet50Ids) {
        const TensorMap mapped = mapPretrainedResNet(id, torchvision);
        EXPECT_EQ(mapped.size(), torchvision.size() - 2) << id;
        auto model = createModel(id, kVocClasses);
        const LoadReport report = loadStateDict(*model, mapped);
        EXPECT_TRUE(report.unexpected.empty()) << id << ": " << report.summary();
        EXPECT_TRUE(report.skippedShape.empty()) << id << ": " << report.summary();
        for (const auto& name : report.missing) EXPECT_TRUE(model->isHeadParameter(name)) << id << ": " << name;
        const TensorMap loaded = stateDict(*model);
        for (const auto& [name, tensor] : loaded) {
            if (model->isHeadParameter(name)) continue;
            ASSERT_TRUE(mapped.count(name)) << id << ": encoder tensor " << name << " not in the mapped checkpoint";
            EXPECT_TRUE(tensor.equal(mapped.at(name))) << id << ": " << name;
        }
    }
    EXPECT_THROW(mapPretrainedResNet("segformer-b0", torchvision), Error);
    EXPECT_THROW(mapPretrainedResNet("unet-resnet50", TensorMap{{"head.weight", torch::zeros({1})}}), Error);
}

TEST(CnnPretrained, SeedAndFcnNames) {
    const TensorMap checkpoint{{"conv1.weight", torch::zeros({64, 3, 7, 7})},
                               {"bn1.running_var", torch::ones({64})},
                               {"layer1.0.conv1.weight", torch::zeros({64, 64, 1, 1})},
                               {"layer4.2.bn3.bias", torch::zeros({2048})},
                               {"fc.bias", torch::zeros({1000})}};
    const TensorMap seed = mapPretrainedResNet("unet-seed-resnet50", checkpoint);
    EXPECT_EQ(seed.size(), 4u);
    EXPECT_TRUE(seed.count("encoder1.0.weight"));
    EXPECT_TRUE(seed.count("encoder1.1.running_var"));
    EXPECT_TRUE(seed.count("encoder2.1.0.conv1.weight"));
    EXPECT_TRUE(seed.count("encoder5.2.bn3.bias"));
    const TensorMap fcn = mapPretrainedResNet("fcn-resnet50", checkpoint);
    EXPECT_TRUE(fcn.count("backbone.conv1.weight"));
    EXPECT_TRUE(fcn.count("backbone.layer4.2.bn3.bias"));
    EXPECT_FALSE(fcn.count("backbone.fc.bias"));
    const TensorMap smp = mapPretrainedResNet("unet-resnet18", checkpoint);
    EXPECT_TRUE(smp.count("encoder.layer1.0.conv1.weight"));
}
