// SegFormer's transformers 4.x / 5.x names (models/segformer_naming.h) and the pretrained start
// that refuses to leave encoder tensors unloaded (models/pretrained.h).
#include "segscope/core/data/demo_data.h"
#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/segformer_naming.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

using namespace segscope::core;
namespace fs = std::filesystem;
using segscope::test::TempDir;

namespace {

constexpr auto k4 = SegFormerNaming::Transformers4;
constexpr auto k5 = SegFormerNaming::Transformers5;

struct RuleCase {
    std::size_t rule;  // index into segFormerRenameRules()
    const char* transformers4;
    const char* transformers5;
};

// One real key per rule, as SegformerForSemanticSegmentation of each generation names it
// (transformers 5.24 state_dict() vs 4.56 state_dict()).
const RuleCase kRuleCases[] = {
    {0, "segformer.encoder.patch_embeddings.2.proj.weight", "segformer.stages.2.patch_embeddings.proj.weight"},
    {1, "segformer.encoder.block.1.0.mlp.dwconv.dwconv.bias", "segformer.stages.1.blocks.0.mlp.dwconv.dwconv.bias"},
    {2, "segformer.encoder.layer_norm.3.weight", "segformer.stages.3.layer_norm.weight"},
    {3, "segformer.encoder.block.0.1.attention.self.query.weight",
     "segformer.stages.0.blocks.1.attention.q_proj.weight"},
    {4, "segformer.encoder.block.2.5.attention.self.key.bias", "segformer.stages.2.blocks.5.attention.k_proj.bias"},
    {5, "segformer.encoder.block.3.0.attention.self.value.weight",
     "segformer.stages.3.blocks.0.attention.v_proj.weight"},
    {6, "segformer.encoder.block.0.0.attention.self.sr.weight",
     "segformer.stages.0.blocks.0.attention.sequence_reduction.sequence_reduction.weight"},
    {7, "segformer.encoder.block.1.1.attention.self.layer_norm.bias",
     "segformer.stages.1.blocks.1.attention.sequence_reduction.layer_norm.bias"},
    {8, "segformer.encoder.block.2.0.attention.output.dense.weight",
     "segformer.stages.2.blocks.0.attention.o_proj.weight"},
    {9, "segformer.encoder.block.0.1.mlp.dense1.bias", "segformer.stages.0.blocks.1.mlp.fc1.bias"},
    {10, "segformer.encoder.block.3.1.mlp.dense2.weight", "segformer.stages.3.blocks.1.mlp.fc2.weight"},
    {11, "segformer.encoder.block.1.0.layer_norm_1.weight", "segformer.stages.1.blocks.0.layernorm_before.weight"},
    {12, "segformer.encoder.block.2.3.layer_norm_2.bias", "segformer.stages.2.blocks.3.layernorm_after.bias"},
    {13, "decode_head.linear_c.3.proj.weight", "decode_head.linear_projections.3.proj.weight"},
};

TensorMap renamed(const TensorMap& tensors, SegFormerNaming to, const std::string& stripPrefix = {}) {
    TensorMap out;
    for (const auto& [key, value] : tensors) {
        std::string name = renameSegFormerKey(key, k4, to);
        if (!stripPrefix.empty() && name.rfind(stripPrefix, 0) == 0) name = name.substr(stripPrefix.size());
        out.emplace(name, value);
    }
    return out;
}

TensorMap withoutPrefix(const TensorMap& tensors, const std::string& prefix) {
    TensorMap out;
    for (const auto& [key, value] : tensors)
        if (key.rfind(prefix, 0) != 0) out.emplace(key, value);
    return out;
}

TensorMap seededStateDict(const std::string& id, int classes, std::uint64_t seed) {
    torch::manual_seed(seed);
    auto model = createModel(id, classes);
    TensorMap out;
    for (const auto& [key, value] : stateDict(*model)) out.emplace(key, value.clone());
    return out;
}

template <typename F>
std::string fileErrorMessage(F&& f) {
    try {
        f();
    } catch (const FileError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a FileError: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception";
    return {};
}

}  // namespace

TEST(SegFormerNaming, TheTableHasTheFourteenRulesOfTransformers5) {
    ASSERT_EQ(segFormerRenameRules().size(), 14u);
    for (std::size_t i = 0; i < segFormerRenameRules().size(); ++i) {
        bool covered = false;
        for (const auto& c : kRuleCases) covered = covered || c.rule == i;
        EXPECT_TRUE(covered) << "rule " << i << " (" << segFormerRenameRules()[i].transformers4 << ") has no case";
    }
}

TEST(SegFormerNaming, EachRuleRenamesBothWays) {
    for (const auto& c : kRuleCases) {
        SCOPED_TRACE(std::string("rule ") + segFormerRenameRules()[c.rule].transformers4 + " <-> " +
                     segFormerRenameRules()[c.rule].transformers5);
        EXPECT_EQ(renameSegFormerKey(c.transformers4, k4, k5), c.transformers5);
        EXPECT_EQ(renameSegFormerKey(c.transformers5, k5, k4), c.transformers4);
        EXPECT_EQ(renameSegFormerKey(c.transformers4, k4, k4), c.transformers4);
        // The bare SegformerModel names (no "segformer." prefix) follow the same rules.
        const std::string bare4 = std::string(c.transformers4).rfind("segformer.", 0) == 0
                                      ? std::string(c.transformers4).substr(10)
                                      : std::string(c.transformers4);
        const std::string bare5 = std::string(c.transformers5).rfind("segformer.", 0) == 0
                                      ? std::string(c.transformers5).substr(10)
                                      : std::string(c.transformers5);
        EXPECT_EQ(renameSegFormerKey(bare4, k4, k5), bare5);
        EXPECT_EQ(renameSegFormerKey(bare5, k5, k4), bare4);
    }
}

TEST(SegFormerNaming, RulesMatchWholeNameComponentsOnly) {
    for (const std::string key :
         {"decode_head.linear_fuse.weight", "decode_head.batch_norm.running_var", "decode_head.classifier.bias",
          "classifier.weight", "head.xlayer_norm_1.weight", "head.mlp.dense10.weight",
          "my_decode_head.linear_c.0.proj.weight", "myencoder.block.0.x"}) {
        EXPECT_EQ(renameSegFormerKey(key, k4, k5), key);
        EXPECT_EQ(renameSegFormerKey(key, k5, k4), key);
    }
    // Only the stage rule applies here; "xlayer_norm_1" and "dense10" are other components.
    EXPECT_EQ(renameSegFormerKey("segformer.encoder.block.0.0.xlayer_norm_1.weight", k4, k5),
              "segformer.stages.0.blocks.0.xlayer_norm_1.weight");
    EXPECT_EQ(renameSegFormerKey("segformer.encoder.block.0.0.mlp.dense10.weight", k4, k5),
              "segformer.stages.0.blocks.0.mlp.dense10.weight");
}

TEST(SegFormerNaming, EveryKeyOfB0AndB2SurvivesTheRoundTrip) {
    for (const std::string id : {"segformer-b0", "segformer-b2"}) {
        const TensorMap names = stateDict(*createModel(id, 3));
        std::set<std::string> seen;
        std::size_t changed = 0;
        for (const auto& [key, value] : names) {
            const std::string five = renameSegFormerKey(key, k4, k5);
            changed += five != key ? 1 : 0;
            EXPECT_TRUE(seen.insert(five).second) << id << ": two keys rename to " << five;
            EXPECT_EQ(renameSegFormerKey(five, k5, k4), key) << id;
            // No 4.x fragment is left in a 5.x name.
            for (const char* old : {"encoder.", ".block.", "attention.self", "output.dense", "dense1", "dense2",
                                    "layer_norm_1", "layer_norm_2", "linear_c."})
                EXPECT_EQ(five.find(old), std::string::npos) << five;
        }
        // Of B0's 208 tensors only linear_fuse, batch_norm (5) and classifier (2) keep their names.
        if (id == "segformer-b0") {
            EXPECT_EQ(names.size(), 208u);
            EXPECT_EQ(changed, 208u - 8u);
        }
    }
}

TEST(SegFormerNaming, DetectsTheGenerationAndTheLayout) {
    const TensorMap full = seededStateDict("segformer-b0", 2, 1);
    {
        const auto layout = detectSegFormerLayout(full);
        ASSERT_TRUE(layout.naming);
        EXPECT_EQ(*layout.naming, k4);
        EXPECT_FALSE(layout.bare || layout.mixed || layout.imageClassifier);
        EXPECT_TRUE(layout.decodeHead);
        EXPECT_EQ(layout.describe(), "HF transformers 4.x SegFormer names (SegformerForSemanticSegmentation)");
    }
    {
        const auto layout = detectSegFormerLayout(renamed(full, k5));
        ASSERT_TRUE(layout.naming);
        EXPECT_EQ(*layout.naming, k5);
        EXPECT_FALSE(layout.bare);
    }
    {
        const auto layout = detectSegFormerLayout(renamed(withoutPrefix(full, "decode_head."), k5, "segformer."));
        ASSERT_TRUE(layout.naming);
        EXPECT_EQ(*layout.naming, k5);
        EXPECT_TRUE(layout.bare);
        EXPECT_FALSE(layout.decodeHead);
        EXPECT_EQ(layout.describe(),
                  "HF transformers 5.x SegFormer names (bare SegformerModel/MiT backbone, no \"segformer.\" prefix)");
    }
    {
        TensorMap mit = withoutPrefix(full, "decode_head.");
        mit["classifier.weight"] = torch::zeros({1000, 256});
        const auto layout = detectSegFormerLayout(mit);
        EXPECT_TRUE(layout.imageClassifier);
        EXPECT_EQ(*layout.naming, k4);
    }
    {
        TensorMap mixed = full;
        mixed["segformer.stages.0.blocks.0.attention.q_proj.weight"] = torch::zeros({1});
        EXPECT_TRUE(detectSegFormerLayout(mixed).mixed);
        EXPECT_THROW(toSegScopeSegFormerNames(mixed), Error);
    }
    EXPECT_FALSE(detectSegFormerLayout(seededStateDict("unet-resnet18", 2, 1)).naming);
}

TEST(SegFormerNaming, EveryLayoutComesBackInSegScopeNames) {
    const TensorMap full = seededStateDict("segformer-b0", 2, 1);
    const TensorMap encoder = withoutPrefix(full, "decode_head.");
    TensorMap mit = encoder;
    mit["classifier.weight"] = torch::zeros({1000, 256});
    mit["classifier.bias"] = torch::zeros({1000});
    const std::vector<std::pair<std::string, TensorMap>> cases{{"4.x full", full},
                                                               {"5.x full", renamed(full, k5)},
                                                               {"4.x bare", renamed(encoder, k4, "segformer.")},
                                                               {"5.x bare", renamed(encoder, k5, "segformer.")},
                                                               {"4.x MiT classification", mit},
                                                               {"5.x MiT classification", renamed(mit, k5)}};
    for (const auto& [name, checkpoint] : cases) {
        SCOPED_TRACE(name);
        const TensorMap back = toSegScopeSegFormerNames(checkpoint);
        const TensorMap& expected = name.find("full") != std::string::npos ? full : encoder;
        ASSERT_EQ(back.size(), expected.size());
        for (const auto& [key, value] : expected) {
            ASSERT_TRUE(back.count(key)) << key;
            EXPECT_TRUE(back.at(key).is_same(value)) << key;  // shared, not copied
        }
        // mapPretrained goes through the same conversion for SegFormer models.
        EXPECT_EQ(mapPretrained("segformer-b0", checkpoint).size(), expected.size());
    }
    EXPECT_EQ(segFormerStateDictIn(full, k5).size(), full.size());
    EXPECT_TRUE(segFormerStateDictIn(full, k5).count("segformer.stages.0.blocks.0.layernorm_before.weight"));
}

TEST(SegFormerNaming, HfConfigFollowsTheTensors) {
    const TensorMap b2 = seededStateDict("segformer-b2", 3, 1);
    const auto config = nlohmann::json::parse(segFormerHfConfigJson(b2, {"sky", "road", "car"}));
    EXPECT_EQ(config.at("architectures"), nlohmann::json::array({"SegformerForSemanticSegmentation"}));
    EXPECT_EQ(config.at("model_type"), "segformer");
    EXPECT_EQ(config.at("depths"), nlohmann::json::array({3, 4, 6, 3}));
    EXPECT_EQ(config.at("hidden_sizes"), nlohmann::json::array({64, 128, 320, 512}));
    EXPECT_EQ(config.at("decoder_hidden_size"), 768);
    EXPECT_EQ(config.at("id2label"), nlohmann::json({{"0", "sky"}, {"1", "road"}, {"2", "car"}}));
    EXPECT_EQ(config.at("label2id"), nlohmann::json({{"sky", 0}, {"road", 1}, {"car", 2}}));
    EXPECT_THROW(segFormerHfConfigJson(b2, {"a", "b"}), Error);  // 3 outputs, 2 names
    EXPECT_THROW(segFormerHfConfigJson(seededStateDict("unet-resnet18", 3, 1), {"a", "b", "c"}), Error);
    EXPECT_EQ(parseSegFormerNaming("5"), k5);
    EXPECT_EQ(parseSegFormerNaming("4.x"), k4);
    EXPECT_FALSE(parseSegFormerNaming("6"));
}

// ------------------------------------------------------------------------------ pretrained start

TEST(PretrainedStart, RefusesAFileThatLeavesTheEncoderUnloaded) {
    TempDir dir;
    const fs::path file = dir / "unet.safetensors";
    writeSafetensors(file, seededStateDict("unet-resnet18", 2, 1));
    auto model = createModel("segformer-b0", 5);
    const std::string message = fileErrorMessage([&] { loadPretrainedStart(*model, "segformer-b0", file, false); });
    EXPECT_EQ(message.rfind(file.string() + ": refusing a pretrained start that leaves 192 of 192 encoder tensors of "
                                            "segformer-b0 unloaded (0 of the file's 182 tensors fit)",
                            0),
              0u)
        << message;
    EXPECT_NE(message.find("not in the file: segformer.encoder.block.0.0.attention.output.dense.bias"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("the file has 182 tensors under decoder, encoder, segmentation_head"), std::string::npos)
        << message;
    EXPECT_NE(message.find("or remove model.pretrained to train from scratch"), std::string::npos) << message;
}

TEST(PretrainedStart, OneMissingEncoderTensorIsNamed) {
    TempDir dir;
    TensorMap weights = seededStateDict("segformer-b0", 5, 1);
    weights.erase("segformer.encoder.block.2.1.mlp.dense2.weight");
    const fs::path file = dir / "w.safetensors";
    writeSafetensors(file, renamed(weights, k5));
    auto model = createModel("segformer-b0", 5);
    const std::string message = fileErrorMessage([&] { loadPretrainedStart(*model, "segformer-b0", file, false); });
    EXPECT_NE(message.find("leaves 1 of 192 encoder tensors"), std::string::npos) << message;
    EXPECT_NE(message.find("not in the file: segformer.encoder.block.2.1.mlp.dense2.weight\n"), std::string::npos)
        << message;
    EXPECT_NE(message.find("the file has HF transformers 5.x SegFormer names (SegformerForSemanticSegmentation)"),
              std::string::npos)
        << message;
}

TEST(PretrainedStart, BackbonesAndOtherClassCountsLeaveOnlyTheHead) {
    TempDir dir;
    const TensorMap full = seededStateDict("segformer-b0", 3, 1);
    const fs::path backbone = dir / "mit.safetensors";
    writeSafetensors(backbone, renamed(withoutPrefix(full, "decode_head."), k5, "segformer."));
    {
        auto model = createModel("segformer-b0", 5);
        const std::string log = loadPretrainedStart(*model, "segformer-b0", backbone, true);
        EXPECT_NE(log.find("192 loaded; all 192 encoder tensors loaded"), std::string::npos) << log;
        EXPECT_NE(log.find("outside the encoder, not in the file (left at their initialisation): "
                           "decode_head.batch_norm.bias"),
                  std::string::npos)
            << log;
        const TensorMap state = stateDict(*model);
        EXPECT_TRUE(torch::equal(state.at("segformer.encoder.block.1.0.attention.self.query.weight"),
                                 full.at("segformer.encoder.block.1.0.attention.self.query.weight")));
    }
    {
        // A 3-class full model into a 5-class one: the classifier is skipped, named.
        const fs::path three = dir / "three.safetensors";
        writeSafetensors(three, full);
        auto model = createModel("segformer-b0", 5);
        const std::string log = loadPretrainedStart(*model, "segformer-b0", three, true);
        EXPECT_NE(log.find("other shape (the class count differs?), left at their initialisation: "
                           "decode_head.classifier.bias: file [3] vs model [5]"),
                  std::string::npos)
            << log;
    }
    {
        // pretrained_strict refuses tensors the model lacks, and names them.
        TensorMap extra = full;
        extra["aux_head.weight"] = torch::zeros({2});
        const fs::path file = dir / "extra.safetensors";
        writeSafetensors(file, extra);
        auto model = createModel("segformer-b0", 3);
        const std::string message = fileErrorMessage([&] { loadPretrainedStart(*model, "segformer-b0", file, true); });
        EXPECT_NE(message.find("pretrained_strict: the file has 1 tensors segformer-b0 does not: aux_head.weight"),
                  std::string::npos)
            << message;
        EXPECT_NO_THROW(loadPretrainedStart(*model, "segformer-b0", file, false));
    }
}

TEST(PretrainedStart, TrainRefusesAPretrainedFileThatMissesTheEncoder) {
    TempDir dir;
    DemoOptions demo;
    demo.images = 8;
    demo.width = demo.height = 64;
    writeDemoDataset(dir / "demo", demo);
    writeSafetensors(dir / "unet.safetensors", seededStateDict("unet-resnet18", 2, 1));
    const nlohmann::json experiment = {
        {"version", 1},
        {"name", "pretrained-refused"},
        {"dataset", {{"kind", "voc"}, {"root", (dir / "demo").string()}}},
        {"model",
         {{"id", "segformer-b0"}, {"pretrained", (dir / "unet.safetensors").string()}, {"pretrained_strict", false}}},
        {"transforms", {{"height", 64}, {"width", 64}}},
        {"training", {{"iterations", 1}, {"batch_size", 2}}},
        {"runtime", {{"device", "cpu"}, {"threads", 1}, {"workers", 1}, {"seed", 0}}},
    };
    std::ofstream(dir / "exp.json") << experiment.dump(2);
    const auto result = segscope::test::runCli("--threads 1 train --config '" + (dir / "exp.json").string() +
                                               "' --workspace '" + (dir / "ws").string() + "' 2>&1");
    EXPECT_NE(result.exitCode, 0) << result.output;
    EXPECT_NE(result.output.find("refusing a pretrained start that leaves 192 of 192 encoder tensors of segformer-b0"),
              std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("segformer.encoder.block.0.0.attention.output.dense.bias"), std::string::npos)
        << result.output;
}
