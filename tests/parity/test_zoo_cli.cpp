// segscope-cli models and forward.
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace segscope;
using segscope::test::TempDir;

namespace {
std::string quote(const std::string& s) {
    return "'" + s + "'";
}
}  // namespace

TEST(ZooCli, ModelsJsonListsEveryIdWithExactCounts) {
    const auto result = test::runCli("models --json");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    const auto json = nlohmann::json::parse(result.output);
    EXPECT_EQ(json.at("classes"), 21);
    const auto& models = json.at("models");
    const auto& registry = core::modelRegistry();
    ASSERT_EQ(models.size(), 46u);
    ASSERT_EQ(registry.size(), 46u);
    std::map<std::string, std::int64_t> counts;
    for (std::size_t i = 0; i < models.size(); ++i) {
        const auto& m = models[i];
        EXPECT_EQ(m.at("id"), registry[i].info.id);  // registry order
        EXPECT_EQ(m.at("family"), registry[i].info.family);
        EXPECT_EQ(m.at("reference"), registry[i].info.reference);
        EXPECT_EQ(m.at("stages").get<std::vector<std::string>>(), registry[i].info.stages);
        counts[m.at("id").get<std::string>()] = m.at("parameters").get<std::int64_t>();
    }
    // Published figures (the references' sum(p.numel()) at 21 classes).
    const std::map<std::string, std::int64_t> published{{"segformer-b0", 3719541},   {"segformer-b1", 13682645},
                                                        {"segformer-b2", 27362773},  {"segformer-b3", 47238613},
                                                        {"segformer-b4", 64009173},  {"segformer-b5", 84609493},
                                                        {"unet-resnet50", 32524005}, {"unet-seed-resnet50", 71863765}};
    for (const auto& [id, count] : published) {
        ASSERT_TRUE(counts.count(id)) << id;
        EXPECT_EQ(counts[id], count) << id;
    }
    // Every count is the model's own, and positive.
    torch::NoGradGuard noGrad;
    EXPECT_EQ(counts.at("segmenter-linear-vit-tiny-p16"),
              core::countParameters(*core::createModel("segmenter-linear-vit-tiny-p16", 21)));
    for (const auto& [id, count] : counts) EXPECT_GT(count, 0) << id;
}

TEST(ZooCli, ModelsTextTableForChosenIds) {
    // Listed in registry order whatever the order given. segformer-b0's head is a 256->K 1x1 conv,
    // so at 2 classes it has 3,719,541 - 19 * 257 parameters; unet-resnet18's a 3x3 16->K conv.
    const auto result = test::runCli("models --classes 2 segformer-b0 unet-resnet18");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    EXPECT_EQ(result.output,
              "id             family        parameters  stages\n"
              "unet-resnet18  unet          14,328,354  stage1,stage2,stage3,stage4,decoder\n"
              "segformer-b0   segformer      3,714,658  stage1,stage2,stage3,stage4,decoder\n"
              "2 models, parameters at 2 classes\n");
    EXPECT_EQ(test::runCli("models --classes 0 2>/dev/null").exitCode, 2);
    const auto unknown = test::runCli("models segformer-b9 2>&1");
    EXPECT_EQ(unknown.exitCode, 1);
    EXPECT_NE(unknown.output.find("segformer-b9"), std::string::npos) << unknown.output;
}

TEST(ZooCli, ForwardMatchesInProcessModel) {
    TempDir dir;
    const std::string id = "segformer-b0";
    torch::manual_seed(3);
    auto model = core::createModel(id, 4);
    model->eval();
    const auto input = torch::randn({2, 3, 64, 48});
    torch::Tensor expected;
    {
        torch::NoGradGuard noGrad;
        expected = model->forward(input);
    }
    core::writeSafetensors(dir / "weights.safetensors", core::stateDict(*model));
    core::writeSafetensors(dir / "in.safetensors", {{"input", input}});
    const auto out = dir / "out.safetensors";
    const auto result = test::runCli("--threads 1 forward --model " + id + " --classes 4 --strict --weights " +
                                     quote((dir / "weights.safetensors").string()) + " --input " +
                                     quote((dir / "in.safetensors").string()) + " --output " + quote(out.string()) +
                                     " 2>" + quote((dir / "stderr.txt").string()));
    ASSERT_EQ(result.exitCode, 0) << result.output;
    std::ifstream err(dir / "stderr.txt");
    const std::string stderrText((std::istreambuf_iterator<char>(err)), {});
    EXPECT_NE(stderrText.find(" loaded, 0 missing, 0 unexpected, 0 skipped for shape"), std::string::npos)
        << stderrText;
    const auto logits = core::readSafetensors(out).at("logits");
    ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{2, 4, 64, 48}));
    EXPECT_LE((logits - expected).abs().max().item<double>(), 1e-5);
}

TEST(ZooCli, ForwardNamesAMissingWeightsFile) {
    TempDir dir;
    core::writeSafetensors(dir / "in.safetensors", {{"input", torch::zeros({1, 3, 32, 32})}});
    const auto missing = (dir / "nowhere.pth").string();
    const auto result = test::runCli("forward --model unet-resnet18 --classes 2 --weights " + quote(missing) +
                                     " --input " + quote((dir / "in.safetensors").string()) + " --output " +
                                     quote((dir / "out.safetensors").string()) + " 2>&1");
    EXPECT_EQ(result.exitCode, 1);
    EXPECT_EQ(result.output, "segscope-cli: error: " + missing + ": does not exist\n");
    EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors"));
}

TEST(ZooCli, ForwardRejectsIncompleteWeightsUnlessAllowPartial) {
    TempDir dir;
    core::writeSafetensors(dir / "in.safetensors", {{"input", torch::zeros({1, 3, 32, 32})}});
    core::writeSafetensors(dir / "w.safetensors", {{"decode_head.classifier.bias", torch::zeros({2})}});
    const std::string common =
        "forward --model segformer-b0 --classes 2 --weights " + quote((dir / "w.safetensors").string()) + " --input " +
        quote((dir / "in.safetensors").string()) + " --output " + quote((dir / "out.safetensors").string());
    // Strict is the default (--strict is still accepted).
    for (const std::string flag : {"", " --strict"}) {
        const auto strict = test::runCli(common + flag + " 2>&1");
        EXPECT_EQ(strict.exitCode, 1);
        EXPECT_NE(strict.output.find("segscope-cli: error: " + (dir / "w.safetensors").string() +
                                     ": does not fit segformer-b0 with 2 classes: 1 loaded, 206 missing, 0 unexpected"),
                  std::string::npos)
            << strict.output;
        EXPECT_NE(strict.output.find("missing: decode_head.batch_norm.bias, "), std::string::npos) << strict.output;
        EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors"));
    }
    const auto lenient = test::runCli(common + " --allow-partial 2>&1");
    EXPECT_EQ(lenient.exitCode, 0) << lenient.output;
    EXPECT_NE(lenient.output.find("1 loaded, "), std::string::npos) << lenient.output;
    EXPECT_TRUE(std::filesystem::exists(dir / "out.safetensors"));
}
