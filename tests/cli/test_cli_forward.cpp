// segscope-cli forward, and erf --weights: weights must fit the model unless --allow-partial.
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

using namespace segscope::core;
using segscope::test::quoted;
using segscope::test::TempDir;
namespace fs = std::filesystem;

TEST(ForwardCli, StrictByDefaultAndRefusesToOverwrite) {
    TempDir dir;
    torch::manual_seed(1);
    writeSafetensors(dir / "unet.safetensors", stateDict(*createModel("unet-resnet18", 2)));
    writeSafetensors(dir / "in.safetensors", {{"input", torch::zeros({1, 3, 32, 32})}});
    const std::string io =
        " --input " + quoted(dir / "in.safetensors") + " --output " + quoted(dir / "out.safetensors");
    const auto foreign = segscope::test::runCli("forward --model segformer-b0 --classes 2 --weights " +
                                                quoted(dir / "unet.safetensors") + io + " 2>&1");
    EXPECT_EQ(foreign.exitCode, 1);
    EXPECT_NE(foreign.output.find("unet.safetensors: does not fit segformer-b0 with 2 classes: 0 loaded, 207 missing, "
                                  "182 unexpected"),
              std::string::npos)
        << foreign.output;
    EXPECT_NE(foreign.output.find("missing: decode_head.batch_norm.bias"), std::string::npos) << foreign.output;
    EXPECT_NE(foreign.output.find("unexpected: decoder.blocks.0.conv1.0.weight"), std::string::npos) << foreign.output;
    EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
    // --allow-partial runs with what matches (nothing here).
    const auto partial = segscope::test::runCli("forward --model segformer-b0 --classes 2 --allow-partial --weights " +
                                                quoted(dir / "unet.safetensors") + io + " 2>&1");
    EXPECT_EQ(partial.exitCode, 0) << partial.output;
    EXPECT_TRUE(fs::exists(dir / "out.safetensors"));
    // Now out.safetensors exists: --force to replace; never over the weights or the input.
    const auto again = segscope::test::runCli("forward --model segformer-b0 --classes 2" + io + " 2>&1");
    EXPECT_EQ(again.exitCode, 1);
    EXPECT_NE(again.output.find("out.safetensors: exists; pass --force to replace it"), std::string::npos)
        << again.output;
    EXPECT_EQ(segscope::test::runCli("forward --model segformer-b0 --classes 2 --force" + io + " 2>&1").exitCode, 0);
    const auto overInput = segscope::test::runCli("forward --model segformer-b0 --classes 2 --force --input " +
                                                  quoted(dir / "in.safetensors") + " --output " +
                                                  quoted(dir / "in.safetensors") + " 2>&1");
    EXPECT_EQ(overInput.exitCode, 1);
    EXPECT_NE(overInput.output.find("is also an input of this command"), std::string::npos) << overInput.output;
    EXPECT_EQ(readSafetensors(dir / "in.safetensors").count("input"), 1u);
}

TEST(ErfWeightsCli, WeightsMustFitTheModel) {
    TempDir dir;
    torch::manual_seed(1);
    writeSafetensors(dir / "unet.safetensors", stateDict(*createModel("unet-resnet18", 2)));
    writeSafetensors(dir / "in.safetensors", {{"input", torch::zeros({1, 3, 64, 64})}});
    const auto result = segscope::test::runCli(
        "erf --model segformer-b0 --classes 2 --weights " + quoted(dir / "unet.safetensors") + " --input " +
        quoted(dir / "in.safetensors") + " --out " + quoted(dir / "erf") + " 2>&1");
    EXPECT_EQ(result.exitCode, 1) << result.output;
    EXPECT_NE(result.output.find("unet.safetensors: does not fit segformer-b0 with 2 classes: 0 loaded, 207 missing"),
              std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("--allow-partial"), std::string::npos) << result.output;
}
