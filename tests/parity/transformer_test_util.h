#pragma once
// Helpers for the transformer parity tests (test_segformer_parity.cpp, test_vit_models.cpp):
// the fixtures written by make_transformer_reference.py under <test data>/reference/transformer.
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace segscope::test::transformer {

constexpr int kNumClasses = 21;  // what models.json's counts and shapes assume
constexpr double kLogitsTolerance = 1e-4;

inline std::filesystem::path referenceDir(const std::string& modelId = {}) {
    auto dir = testData() / "reference" / "transformer";
    return modelId.empty() ? dir : dir / modelId;
}

inline const nlohmann::json& referenceModels() {
    static const nlohmann::json models = [] {
        std::ifstream in(referenceDir() / "models.json");
        return in ? nlohmann::json::parse(in) : nlohmann::json::object();
    }();
    return models;
}

// The model with the reference's weights, loaded strictly, in eval mode.
inline std::shared_ptr<core::SegmentationModel> loadReferenceModel(const std::string& modelId) {
    auto model = core::createModel(modelId, kNumClasses);
    const auto tensors = core::readSafetensors(referenceDir(modelId) / "weights.safetensors");
    core::LoadOptions options;
    options.strict = true;
    const auto report = core::loadStateDict(*model, tensors, options);
    EXPECT_TRUE(report.complete()) << report.summary();
    model->eval();
    return model;
}

inline double maxAbsDifference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>();
}

// stateDict(model) has exactly the reference's names with the same shapes.
inline void expectStateDictMatchesReference(const torch::nn::Module& model, const std::string& modelId) {
    const auto& models = referenceModels();
    ASSERT_TRUE(models.contains(modelId)) << modelId << " missing from models.json";
    const auto& expected = models[modelId]["state_dict"];
    const auto actual = core::stateDict(model);
    EXPECT_EQ(actual.size(), expected.size()) << modelId;
    for (const auto& [name, shape] : expected.items()) {
        auto it = actual.find(name);
        if (it == actual.end()) {
            ADD_FAILURE() << modelId << ": missing " << name;
            continue;
        }
        EXPECT_EQ(it->second.sizes().vec(), shape.get<std::vector<std::int64_t>>()) << modelId << ": " << name;
    }
    for (const auto& [name, tensor] : actual)
        EXPECT_TRUE(expected.contains(name)) << modelId << ": unexpected " << name;
}

// One backward in train mode: every parameter gets a defined, finite, non-zero gradient.
inline void expectGradientsEverywhere(core::SegmentationModel& model, const torch::Tensor& input) {
    torch::manual_seed(7);  // dropout and stochastic depth
    model.train();
    model.zero_grad();
    auto logits = model.forward(input);
    ASSERT_EQ(logits.size(2), input.size(2));
    ASSERT_EQ(logits.size(3), input.size(3));
    // A loss that reaches every class channel unevenly, so no gradient cancels by symmetry.
    auto weights = torch::randn_like(logits);
    (logits * weights).sum().backward();
    for (const auto& item : model.named_parameters()) {
        const auto& grad = item.value().grad();
        ASSERT_TRUE(grad.defined()) << item.key() << " has no gradient";
        EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
        EXPECT_GT(grad.abs().max().item<double>(), 0.0) << item.key() << " has a zero gradient";
    }
    model.eval();
}

// Eval forward on a channels_last input matches the contiguous one, and a forward under CPU
// bfloat16 autocast runs and gives finite logits of the right shape (the device-agnostic paths).
inline void expectChannelsLastAndAutocastWork(core::SegmentationModel& model, const torch::Tensor& input) {
    model.eval();
    torch::NoGradGuard noGrad;
    const auto reference = model.forward(input);
    const auto channelsLast = model.forward(input.contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_LE(maxAbsDifference(reference, channelsLast), 1e-4);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    torch::Tensor mixed;
    try {
        mixed = model.forward(input);
    } catch (...) {
        at::autocast::set_autocast_enabled(at::kCPU, false);
        at::autocast::clear_cache();
        throw;
    }
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    EXPECT_EQ(mixed.sizes(), reference.sizes());
    EXPECT_TRUE(torch::isfinite(mixed).all().item<bool>());
    // bfloat16 keeps ~3 significant digits; the logits should still agree roughly.
    EXPECT_LE(maxAbsDifference(mixed.to(torch::kFloat), reference), 0.1 * (1.0 + reference.abs().max().item<double>()));
}

}  // namespace segscope::test::transformer
