// Weights that would load but be wrong (NaN/Inf, integer or bool for float parameters,
// overlapping safetensors tensors), forward's strict load, and the output guard of export and
// forward (output_guard.h). The strict weights of segscope-cli forward and erf:
// tests/cli/test_cli_forward.cpp.
#include "segscope/core/error.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/output_guard.h"

#include "test_support.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <limits>

using namespace segscope::core;
namespace fs = std::filesystem;
using segscope::test::TempDir;

namespace {

struct Tiny : torch::nn::Module {
    Tiny() {
        conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 1)));
        bn = register_module("bn", torch::nn::BatchNorm2d(2));
    }
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
};

std::string errorMessage(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    ADD_FAILURE() << "no exception";
    return {};
}

std::string safetensorsBytes(const std::string& header, std::size_t dataBytes) {
    std::string bytes(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return bytes + header + std::string(dataBytes, '\0');
}

}  // namespace

TEST(WeightsChecks, NanAndInfAreRefusedByName) {
    Tiny model;
    const auto before = model.conv->weight.clone();
    TensorMap tensors = stateDict(Tiny());
    tensors["conv.weight"] = torch::tensor({std::numeric_limits<float>::quiet_NaN(), 1.f}).reshape({2, 1, 1, 1});
    tensors["bn.running_var"] = torch::tensor({std::numeric_limits<float>::infinity(), 1.f});
    const std::string message = errorMessage([&] { loadStateDict(model, tensors); });
    EXPECT_EQ(message,
              "2 tensors hold NaN or Inf values (a model with them computes NaN): bn.running_var (0 NaN, 1 Inf "
              "of 2), conv.weight (1 NaN, 0 Inf of 2)");
    EXPECT_TRUE(torch::equal(model.conv->weight, before));  // nothing copied
    LoadOptions allow;
    allow.allowNonFinite = true;
    EXPECT_TRUE(loadStateDict(model, tensors, allow).complete());
}

TEST(WeightsChecks, IntegerAndBoolTensorsAreNotCastIntoFloatParameters) {
    Tiny model;
    TensorMap tensors = stateDict(Tiny());
    tensors["conv.weight"] = torch::ones({2, 1, 1, 1}, torch::kInt32);
    tensors["conv.bias"] = torch::ones({2}, torch::kBool);
    tensors["bn.num_batches_tracked"] = torch::tensor(2.5f);  // float for the int64 counter
    EXPECT_EQ(errorMessage([&] { loadStateDict(model, tensors); }),
              "3 tensors have a dtype that does not convert to the model's without changing their meaning (integer or "
              "bool for a float parameter, or the reverse): bn.num_batches_tracked (Float in the file, Long in the "
              "model), conv.bias (Bool in the file, Float in the model), conv.weight (Int in the file, Float in the "
              "model)");
    // Float widths convert (float16 and float64 checkpoints are common), and so do integer ones.
    TensorMap fine = stateDict(Tiny());
    fine["conv.weight"] = torch::full({2, 1, 1, 1}, 0.5, torch::kFloat16);
    fine["bn.running_mean"] = torch::zeros({2}, torch::kFloat64);
    fine["bn.num_batches_tracked"] = torch::tensor(7, torch::kInt32);
    EXPECT_TRUE(loadStateDict(model, fine).complete());
    EXPECT_EQ(model.bn->num_batches_tracked.item<std::int64_t>(), 7);
    EXPECT_EQ(model.conv->weight.flatten()[0].item<float>(), 0.5f);
}

TEST(WeightsChecks, OverlappingSafetensorsTensorsAreRefused) {
    TempDir dir;
    const fs::path path = dir / "overlap.safetensors";
    std::ofstream(path, std::ios::binary) << safetensorsBytes(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        12);
    EXPECT_EQ(errorMessage([&] { readSafetensors(path); }),
              path.string() + ": tensors 'a' and 'b' overlap in the file (bytes 0-8 and 4-12 of the data)");
    // Adjacent and empty tensors are fine.
    const fs::path fine = dir / "fine.safetensors";
    std::ofstream(fine, std::ios::binary) << safetensorsBytes(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        12);
    EXPECT_EQ(readSafetensors(fine).size(), 3u);
}

TEST(WeightsChecks, ZipEntryDeclaringMoreThanTheArchiveIsRefusedBeforeExtracting) {
    // A 1 MB tensor record whose central-directory entry declares 3.5 GB: the size a zip bomb's
    // deflated entry declares. Refused from the declared size, before anything is allocated.
    TempDir dir;
    const fs::path path = dir / "bomb.pth";
    {
        caffe2::serialize::PyTorchStreamWriter writer(path.string());
        const std::string pickle = "\x80\x02}q\x00.";
        writer.writeRecord("data.pkl", pickle.data(), pickle.size());
        const std::vector<char> payload(1 << 20, 0);
        writer.writeRecord("data/0", payload.data(), payload.size());
        writer.writeEndOfFile();
    }
    std::string zip;
    {
        std::ifstream in(path, std::ios::binary);
        zip.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    bool patched = false;
    for (std::size_t at = zip.find("PK\x01\x02", 0, 4); at != std::string::npos;
         at = zip.find("PK\x01\x02", at + 4, 4)) {
        const std::size_t nameLength = std::uint8_t(zip[at + 28]) | (std::uint8_t(zip[at + 29]) << 8);
        if (zip.compare(at + 46, nameLength, "bomb/data/0") != 0) continue;
        const std::uint32_t declared = 3'500'000'000u;
        for (int i = 0; i < 4; ++i) zip[at + 24 + std::size_t(i)] = char((declared >> (8 * i)) & 0xFF);
        patched = true;
    }
    ASSERT_TRUE(patched);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << zip;
    const std::string message = errorMessage([&] { readWeightsFile(path); });
    EXPECT_EQ(message.rfind(path.string() + ": zip entry 'bomb/data/0' declares 3500000000 bytes, more than the " +
                                std::to_string(zip.size()) + "-byte archive holds",
                            0),
              0u)
        << message;
}

TEST(OutputGuard, RefusesInputsWorkspaceFilesAndExistingFilesWithoutForce) {
    TempDir dir;
    const fs::path workspace = dir / "ws";
    fs::create_directories(workspace / ".segscope");
    std::ofstream(workspace / ".segscope" / "segscope.db") << "db";
    std::ofstream(dir / "weights.safetensors") << "w";
    OutputGuard guard;
    guard.inputs = {dir / "weights.safetensors"};
    const auto refused = [&](const fs::path& out) { return errorMessage([&] { checkOutputPath(out, guard); }); };
    EXPECT_EQ(refused(dir / "." / "weights.safetensors"),
              (dir / "." / "weights.safetensors").string() + ": is also an input of this command (" +
                  (dir / "weights.safetensors").string() + "); refusing to write over it");
    for (const fs::path& out : {workspace / ".segscope" / "segscope.db", workspace / ".segscope" / "new.safetensors",
                                workspace / "segscope.db-wal"}) {
        const std::string message = refused(out);
        EXPECT_NE(message.find(": is a file of the SegScope workspace " + fs::weakly_canonical(workspace).string()),
                  std::string::npos)
            << message;
    }
    guard.force = true;  // force never overrides those
    EXPECT_NE(refused(workspace / ".segscope" / "segscope.db").find("SegScope workspace"), std::string::npos);
    EXPECT_NE(refused(dir / "weights.safetensors").find("is also an input"), std::string::npos);
    guard.force = false;
    std::ofstream(dir / "old.safetensors") << "old";
    EXPECT_EQ(refused(dir / "old.safetensors"),
              (dir / "old.safetensors").string() + ": exists; pass --force to replace it");
    EXPECT_NE(refused(dir.path()).find(": is a folder"), std::string::npos);
    guard.force = true;
    EXPECT_NO_THROW(checkOutputPath(dir / "old.safetensors", guard));
    EXPECT_NO_THROW(
        checkOutputPath(workspace / "runs-export.safetensors", guard));  // the workspace folder itself is fine
    guard.force = false;
    EXPECT_NO_THROW(checkOutputPath(dir / "new.safetensors", guard));
}
