// Weights I/O against the Python side: safetensors of every dtype and torch.save state dicts
// written by make_weights_fixtures.py, SegScope-written safetensors read by safetensors.torch,
// corrupt files, the load report, exports round-tripped through the reference packages, and the
// timm ViT checkpoint mapping.
#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <iostream>

using namespace segscope;
using segscope::test::TempDir;

namespace {

std::filesystem::path fixture(const std::string& name) {
    return test::testData() / "reference" / "weights" / name;
}

std::string shellQuote(const std::string& s) {
    return "'" + s + "'";
}

// The message of the FileError `f` throws (empty, with a test failure, when it throws none).
template <typename F>
std::string fileErrorMessage(F&& f) {
    try {
        f();
    } catch (const core::FileError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a FileError: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception";
    return {};
}

void writeBytes(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

// A safetensors file with the given header and `dataBytes` zero bytes of data.
std::string safetensorsBytes(const std::string& header, std::size_t dataBytes) {
    std::string bytes(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return bytes + header + std::string(dataBytes, '\0');
}

std::string readBytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// ------------------------------------------------------------------------------ reading

TEST(WeightsIo, ReadsEveryDtypeExactly) {
    const auto t = core::readSafetensors(fixture("dtypes.safetensors"));
    ASSERT_EQ(t.size(), 9u);
    const std::vector<double> floats{0.5, -1.25, 3.0, 1024.0, -0.0078125, 7.0};
    const std::vector<std::pair<std::string, torch::Dtype>> floatTypes{
        {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16}};
    for (const auto& [name, dtype] : floatTypes) {
        const auto& x = t.at(name);
        EXPECT_EQ(x.scalar_type(), dtype) << name;
        ASSERT_EQ(x.sizes(), (std::vector<std::int64_t>{2, 3})) << name;
        const auto flat = x.to(torch::kFloat64).flatten();
        for (std::int64_t i = 0; i < 6; ++i) EXPECT_EQ(flat[i].item<double>(), floats[i]) << name << "[" << i << "]";
    }
    {
        const auto& x = t.at("F64");
        EXPECT_EQ(x.scalar_type(), torch::kFloat64);
        const auto flat = x.flatten();
        const std::vector<double> want{0.1, -1e300, 3.0, std::ldexp(1.0, -1000), -0.0, 123456789.123456789};
        for (std::int64_t i = 0; i < 6; ++i) EXPECT_EQ(flat[i].item<double>(), want[i]) << "F64[" << i << "]";
        EXPECT_TRUE(std::signbit(flat[4].item<double>()));
    }
    const std::vector<std::tuple<std::string, torch::Dtype, std::vector<std::int64_t>>> ints{
        {"I64",
         torch::kInt64,
         {-(std::int64_t{1} << 40), 5, 0, (std::int64_t{1} << 40) + 3, -1, std::int64_t{1} << 62}},
        {"I32", torch::kInt32, {-2147483648LL, 2147483647LL, 0, 5, -7, 100000}},
        {"I8", torch::kInt8, {-128, 127, 0, 1, -1, 5}},
        {"U8", torch::kUInt8, {0, 255, 1, 128, 7, 64}},
        {"BOOL", torch::kBool, {1, 0, 1, 1, 0, 0}}};
    for (const auto& [name, dtype, want] : ints) {
        const auto& x = t.at(name);
        EXPECT_EQ(x.scalar_type(), dtype) << name;
        ASSERT_EQ(x.sizes(), (std::vector<std::int64_t>{2, 3})) << name;
        const auto flat = x.to(torch::kInt64).flatten();
        for (std::int64_t i = 0; i < 6; ++i)
            EXPECT_EQ(flat[i].item<std::int64_t>(), want[i]) << name << "[" << i << "]";
    }
}

namespace {

void expectFixtureState(const core::TensorMap& t) {
    ASSERT_EQ(t.size(), 5u);
    const auto conv = t.at("conv.weight");
    EXPECT_EQ(conv.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(conv, (torch::arange(24, torch::kFloat32) / 8.0 - 1.0).reshape({2, 3, 2, 2})));
    EXPECT_TRUE(torch::equal(t.at("conv.bias"), torch::tensor({0.25f, -0.5f})));
    EXPECT_TRUE(torch::equal(t.at("bn.running_var"), torch::tensor({1.5, 2.5}, torch::kFloat64)));
    EXPECT_EQ(t.at("bn.num_batches_tracked").scalar_type(), torch::kInt64);
    EXPECT_EQ(t.at("bn.num_batches_tracked").dim(), 0);
    EXPECT_EQ(t.at("bn.num_batches_tracked").item<std::int64_t>(), 7);
    EXPECT_EQ(t.at("head.weight").scalar_type(), torch::kFloat16);
    EXPECT_TRUE(torch::equal(t.at("head.weight").to(torch::kFloat32), torch::tensor({{1.f, 2.f}, {3.f, 4.f}})));
}

}  // namespace

TEST(WeightsIo, ReadsTorchSaveStateDicts) {
    SCOPED_TRACE("state.pth");
    expectFixtureState(core::readTorchStateDict(fixture("state.pth")));
    expectFixtureState(core::readWeightsFile(fixture("state.pth")));
    SCOPED_TRACE("wrapped.pth");
    // {"state_dict": ..., "epoch": 3}: only the wrapped tensors, without the "state_dict." prefix.
    expectFixtureState(core::readWeightsFile(fixture("wrapped.pth")));
}

TEST(WeightsIo, ReadsModuleStateDictWithMetadata) {
    // Module.state_dict() pickles an OrderedDict carrying `_metadata` (a BUILD in the pickle).
    const auto fromPth = core::readWeightsFile(fixture("module.pth"));
    const auto expected = core::readSafetensors(fixture("module.safetensors"));
    ASSERT_EQ(fromPth.size(), 7u);
    ASSERT_EQ(fromPth.size(), expected.size());
    for (const auto& [name, value] : expected) {
        ASSERT_TRUE(fromPth.count(name)) << name;
        EXPECT_EQ(fromPth.at(name).scalar_type(), value.scalar_type()) << name;
        EXPECT_TRUE(torch::equal(fromPth.at(name), value)) << name;
    }
    EXPECT_EQ(fromPth.at("1.num_batches_tracked").item<std::int64_t>(), 5);
}

TEST(WeightsIo, RejectsLegacyTorchSave) {
    const auto path = fixture("legacy.pth").string();
    const std::string expected = path +
                                 ": not a torch.save zip archive (legacy pickle files are not supported; "
                                 "re-save with torch.save in PyTorch >= 1.6)";
    EXPECT_EQ(fileErrorMessage([&] { core::readTorchStateDict(path); }), expected);
    EXPECT_EQ(fileErrorMessage([&] { core::readWeightsFile(path); }), expected);
}

TEST(WeightsIo, MissingFileIsNamed) {
    TempDir dir;
    const auto path = (dir / "absent.safetensors").string();
    EXPECT_EQ(fileErrorMessage([&] { core::readWeightsFile(path); }), path + ": does not exist");
}

TEST(WeightsIo, CorruptSafetensorsNameTheFile) {
    TempDir dir;
    const auto good = readBytes(fixture("dtypes.safetensors"));
    ASSERT_GT(good.size(), 100u);
    struct Case {
        std::string name, bytes, reason;
    };
    const std::vector<Case> cases{
        {"short.safetensors", good.substr(0, 5), "not a safetensors file (shorter than its header length)"},
        {"header_cut.safetensors", good.substr(0, 40), "not a safetensors file (header length exceeds file)"},
        // The last tensor's data stops short: its byte range runs past the end of the file.
        {"data_cut.safetensors", good.substr(0, good.size() - 3), "lies outside the file (truncated?)"},
        {"not_json.safetensors", std::string("\x04\0\0\0\0\0\0\0{{{{", 12), "safetensors header is not valid JSON"},
        {"array.safetensors", std::string("\x02\0\0\0\0\0\0\0[]", 10), "safetensors header is not a JSON object"},
        {"dtype.safetensors", safetensorsBytes(R"({"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8),
         "tensor 'x' has unsupported dtype C64"},
        {"negative.safetensors", safetensorsBytes(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
         "tensor 'x' has a negative dimension"},
        {"size.safetensors", safetensorsBytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
         "tensor 'x' has 8 bytes, its shape needs 12"},
        {"entry.safetensors", safetensorsBytes(R"({"x":{"dtype":"F32","shape":[2]}})", 8),
         "tensor 'x' has a malformed header entry"}};
    for (const auto& c : cases) {
        const auto path = dir / c.name;
        writeBytes(path, c.bytes);
        const auto message = fileErrorMessage([&] { core::readSafetensors(path); });
        EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << c.name << ": " << message;
        EXPECT_NE(message.find(c.reason), std::string::npos) << c.name << ": " << message;
        // Through the dispatcher too (none of these starts with "PK" or a pickle opcode).
        EXPECT_EQ(fileErrorMessage([&] { core::readWeightsFile(path); }), message) << c.name;
    }
}

// ------------------------------------------------------------------------------ writing

TEST(WeightsIo, PythonReadsWrittenSafetensors) {
    TempDir dir;
    core::TensorMap t;
    t["f32"] = torch::tensor({0.5f, -1.25f, 3.0f, 1024.0f, -0.0078125f, 7.0f}).reshape({2, 3});
    t["f16"] = torch::tensor({0.5, -1.25, 3.0}).to(torch::kFloat16);
    t["bf16"] = torch::tensor({1024.0, -0.0078125}).to(torch::kBFloat16);
    t["f64"] = torch::tensor({0.1, -1e300}, torch::kFloat64);
    t["i64"] = torch::tensor({-(std::int64_t{1} << 40), std::int64_t{1} << 62}, torch::kInt64);
    t["i32"] = torch::tensor({std::int64_t{-2147483648LL}, std::int64_t{2147483647LL}}, torch::kInt64)
                   .to(torch::kInt32)
                   .reshape({2, 1});
    t["i8"] = torch::tensor({-128, 127}).to(torch::kInt8);
    t["u8"] = torch::tensor({0, 255, 7}).to(torch::kUInt8);
    t["bool"] = torch::tensor({1, 0, 1}).to(torch::kBool);
    t["scalar"] = torch::tensor(2.5f);
    t["transposed"] = torch::arange(6, torch::kFloat32).reshape({2, 3}).t();  // not contiguous
    ASSERT_FALSE(t["transposed"].is_contiguous());
    const auto path = dir / "written.safetensors";
    core::writeSafetensors(path, t, {{"model", "segformer-b0"}, {"note", "round trip"}});

    const auto result =
        test::runCommand(shellQuote(test::pythonExecutable()) + " " +
                         shellQuote((test::sourceDir() / "tests/parity/check_written_safetensors.py").string()) + " " +
                         shellQuote(path.string()) + " 2>&1");
    EXPECT_EQ(result.exitCode, 0) << result.output;
    EXPECT_EQ(result.output, "ok\n");

    // And back in C++: same values, metadata and dtypes.
    std::map<std::string, std::string> metadata;
    const auto back = core::readSafetensors(path, &metadata);
    EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"model", "segformer-b0"}, {"note", "round trip"}}));
    ASSERT_EQ(back.size(), t.size());
    for (const auto& [name, value] : t) {
        EXPECT_EQ(back.at(name).scalar_type(), value.scalar_type()) << name;
        EXPECT_TRUE(torch::equal(back.at(name), value)) << name;
    }
}

// ------------------------------------------------------------------------------ load report

namespace {

struct Small : torch::nn::Module {
    Small() {
        conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 2, 2)));
        bn = register_module("bn", torch::nn::BatchNorm2d(2));
    }
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
};

}  // namespace

TEST(WeightsIo, LoadReportListsExactKeys) {
    Small model;
    // The torch.save fixture: conv.*, bn.running_var and the counter load; head.weight is extra.
    const auto report = core::loadStateDict(model, core::readWeightsFile(fixture("state.pth")));
    EXPECT_EQ(report.loaded,
              (std::vector<std::string>{"bn.num_batches_tracked", "bn.running_var", "conv.bias", "conv.weight"}));
    EXPECT_EQ(report.missing, (std::vector<std::string>{"bn.bias", "bn.running_mean", "bn.weight"}));
    EXPECT_EQ(report.unexpected, (std::vector<std::string>{"head.weight"}));
    EXPECT_TRUE(report.skippedShape.empty());
    EXPECT_FALSE(report.complete());
    EXPECT_TRUE(torch::equal(model.bn->running_var, torch::tensor({1.5f, 2.5f})));  // converted from float64
    EXPECT_TRUE(torch::equal(model.conv->bias, torch::tensor({0.25f, -0.5f})));
    EXPECT_EQ(model.bn->num_batches_tracked.item<std::int64_t>(), 7);

    core::TensorMap tensors{{"conv.weight", torch::ones({2, 3, 2, 2})},
                            {"conv.bias", torch::zeros({3})},
                            {"bn.weight", torch::zeros({2, 1})},
                            {"extra.x", torch::zeros({1})},
                            {"ignored.y", torch::zeros({1})}};
    core::LoadOptions options;
    options.ignorePrefixes = {"ignored."};
    const auto partial = core::loadStateDict(model, tensors, options);
    EXPECT_EQ(partial.loaded, (std::vector<std::string>{"conv.weight"}));
    EXPECT_EQ(partial.skippedShape,
              (std::vector<std::string>{"bn.weight: file [2,1] vs model [2]", "conv.bias: file [3] vs model [2]"}));
    EXPECT_EQ(partial.unexpected, (std::vector<std::string>{"extra.x"}));
    // num_batches_tracked is never reported missing (older checkpoints lack it).
    EXPECT_EQ(partial.missing, (std::vector<std::string>{"bn.bias", "bn.running_mean", "bn.running_var"}));
    EXPECT_EQ(partial.summary(),
              "1 loaded, 3 missing, 1 unexpected, 2 skipped for shape\n"
              "  missing: bn.bias, bn.running_mean, bn.running_var\n"
              "  unexpected: extra.x\n"
              "  skipped for shape: bn.weight: file [2,1] vs model [2], conv.bias: file [3] vs model [2]");

    options.strict = true;
    try {
        core::loadStateDict(model, tensors, options);
        ADD_FAILURE() << "strict load of an incomplete file did not throw";
    } catch (const core::Error& e) {
        const std::string message = e.what();
        EXPECT_EQ(message, "strict weight load failed: " + partial.summary());
    }
    // Complete: strict passes.
    options.ignorePrefixes.clear();
    EXPECT_TRUE(core::loadStateDict(model, core::stateDict(Small()), options).complete());
}

// ------------------------------------------------------------------------------ round trip

namespace {

// Seeded init, then non-trivial norm affine parameters, biases and BN statistics (left at 1/0
// by default initialisation, where a swapped name would go unnoticed).
std::shared_ptr<core::SegmentationModel> seededModel(const std::string& id, int classes) {
    torch::manual_seed(7);
    auto model = core::createModel(id, classes);
    torch::NoGradGuard noGrad;
    for (auto& item : core::stateDict(*model)) {
        const std::string& name = item.first;
        torch::Tensor& tensor = item.second;
        if (!tensor.is_floating_point()) continue;
        const auto ends = [&name](const std::string& s) {
            return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
        };
        if (ends("running_var"))
            tensor.uniform_(0.5, 1.5);
        else if (ends("running_mean") || ends("bias"))
            tensor.normal_(0.0, 0.1);
        else if (tensor.dim() == 1 && ends("weight"))
            tensor.normal_(1.0, 0.1);
    }
    model->eval();
    return model;
}

}  // namespace

// One Python process checks all four (its imports take longer than the checks).
TEST(ExportRoundTrip, ReferencesLoadStrictlyAndMatchLogits) {
    const std::vector<std::string> ids{"segformer-b0", "unet-resnet18", "fcn-resnet50",
                                       "segmenter-linear-vit-tiny-p16"};
    constexpr int kClasses = 5;
    TempDir dir;
    for (const auto& id : ids) {
        const auto model = seededModel(id, kClasses);
        const auto input = torch::randn({1, 3, 64, 64});
        torch::Tensor logits;
        {
            torch::NoGradGuard noGrad;
            logits = model->forward(input);
        }
        ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{1, kClasses, 64, 64})) << id;
        core::writeSafetensors(dir / (id + ".weights.safetensors"), core::stateDict(*model), {{"model", id}});
        core::writeSafetensors(dir / (id + ".io.safetensors"), {{"input", input}, {"logits", logits}});
    }
    const auto result =
        test::runCommand("OMP_NUM_THREADS=1 " + shellQuote(test::pythonExecutable()) + " " +
                         shellQuote((test::sourceDir() / "tests/parity/check_roundtrip.py").string()) + " --classes " +
                         std::to_string(kClasses) + " " + shellQuote(dir.path().string()) + " 2>&1");
    std::cout << result.output;
    EXPECT_EQ(result.exitCode, 0) << result.output;
    for (const auto& id : ids) {
        const auto line = result.output.find(id + ": max |diff| ");
        ASSERT_NE(line, std::string::npos) << id << "\n" << result.output;
        const auto lineEnd = result.output.find('\n', line);
        EXPECT_EQ(result.output.substr(lineEnd - 3, 3), " ok") << result.output.substr(line, lineEnd - line);
    }
}

// ------------------------------------------------------------------------------ timm ViT

namespace {

const core::TensorMap& timmVit() {
    static const core::TensorMap tensors = core::readSafetensors(fixture("timm_vit.safetensors"));
    return tensors;
}

std::vector<std::string> withPrefix(const core::TensorMap& tensors, const std::string& prefix) {
    std::vector<std::string> names;
    for (const auto& [name, value] : tensors)
        if (name.rfind(prefix, 0) == 0) names.push_back(name);
    return names;
}

}  // namespace

TEST(TimmVitMapping, SegmenterLoadsEverythingButTheDecoder) {
    const std::string id = "segmenter-linear-vit-tiny-p16";
    const auto mapped = core::mapPretrained(id, timmVit());
    EXPECT_EQ(mapped.count("head.weight") + mapped.count("encoder.head.weight"), 0u);
    auto model = core::createModel(id, 3);
    const auto report = core::loadStateDict(*model, mapped);
    EXPECT_EQ(report.missing, (std::vector<std::string>{"decoder.head.bias", "decoder.head.weight"}));
    EXPECT_TRUE(report.unexpected.empty()) << report.summary();
    EXPECT_TRUE(report.skippedShape.empty()) << report.summary();
    // Every timm tensor but the 1000-class head lands under encoder. (norm included).
    EXPECT_EQ(report.loaded.size(), timmVit().size() - 2);

    const auto expected = core::readSafetensors(fixture("timm_vit_expected.safetensors")).at("pos_embed_32");
    const auto state = core::stateDict(*model);
    ASSERT_EQ(state.at("encoder.pos_embed").sizes(), expected.sizes());
    EXPECT_LE((state.at("encoder.pos_embed") - expected).abs().max().item<double>(), 1e-6);
    EXPECT_TRUE(torch::equal(state.at("encoder.pos_embed").narrow(1, 0, 1), timmVit().at("pos_embed").narrow(1, 0, 1)));
    EXPECT_TRUE(torch::equal(state.at("encoder.blocks.11.mlp.fc2.weight"), timmVit().at("blocks.11.mlp.fc2.weight")));
    EXPECT_TRUE(torch::equal(state.at("encoder.norm.weight"), timmVit().at("norm.weight")));
}

TEST(TimmVitMapping, SetrDropsTheFinalNorm) {
    const std::string id = "setr-naive-vit-tiny-p16";
    const auto mapped = core::mapPretrained(id, timmVit());
    EXPECT_EQ(mapped.count("backbone.norm.weight"), 0u);
    auto model = core::createModel(id, 3);
    const auto report = core::loadStateDict(*model, mapped);
    EXPECT_TRUE(report.unexpected.empty()) << report.summary();
    EXPECT_TRUE(report.skippedShape.empty()) << report.summary();
    EXPECT_FALSE(report.missing.empty());
    for (const auto& name : report.missing) EXPECT_TRUE(model->isHeadParameter(name)) << name;
    EXPECT_EQ(report.loaded.size(), timmVit().size() - 4);  // head.{weight,bias}, norm.{weight,bias}
    EXPECT_EQ(withPrefix(mapped, "backbone.blocks.").size(), withPrefix(timmVit(), "blocks.").size());
    const auto expected = core::readSafetensors(fixture("timm_vit_expected.safetensors")).at("pos_embed_32");
    EXPECT_LE((core::stateDict(*model).at("backbone.pos_embed") - expected).abs().max().item<double>(), 1e-6);
}

TEST(TimmVitMapping, RejectsPatchOrWidthMismatch) {
    // A ViT-Tiny/16 checkpoint onto patch-8 and ViT-Small models.
    for (const std::string id : {"segmenter-linear-vit-tiny-p8", "setr-naive-vit-small-p16"}) {
        try {
            core::mapPretrained(id, timmVit());
            ADD_FAILURE() << id << ": no error";
        } catch (const core::Error& e) {
            const std::string message = e.what();
            EXPECT_NE(message.find("timm ViT checkpoint does not fit '" + id + "': patch embedding [192, 3, 16, 16]"),
                      std::string::npos)
                << message;
        }
    }
    EXPECT_THROW(core::mapPretrainedVit("segformer-b0", timmVit()), core::Error);
    // A pos_embed without a square grid plus cls position.
    auto broken = timmVit();
    broken["pos_embed"] = broken["pos_embed"].narrow(1, 0, 196);
    EXPECT_THROW(core::mapPretrainedVit("segmenter-linear-vit-tiny-p16", broken), core::Error);
}

// ------------------------------------------------------------------------------ pretrained starts

// Every kind of backbone checkpoint the presets use starts a run: only the head stays unloaded.
TEST(PretrainedStartBackbones, TorchvisionResNetAndTimmVitLoadTheWholeEncoder) {
    TempDir dir;
    // A torchvision ResNet-50 state dict: smp's encoder names without "encoder.", plus fc.
    core::TensorMap torchvision;
    for (const auto& [name, tensor] : core::stateDict(*core::createModel("unet-resnet50", 2)))
        if (name.rfind("encoder.", 0) == 0) torchvision.emplace(name.substr(8), tensor);
    torchvision["fc.weight"] = torch::zeros({1000, 2048});
    torchvision["fc.bias"] = torch::zeros({1000});
    core::writeSafetensors(dir / "resnet50.safetensors", torchvision);
    // (FPN and DeepLabV3+ share the smp encoder and its prefix with the U-Net.)
    for (const std::string id : {"unet-resnet50", "fcn-resnet50", "unet-seed-resnet50"}) {
        auto model = core::createModel(id, 3);
        const std::string log = core::loadPretrainedStart(*model, id, dir / "resnet50.safetensors", true);
        EXPECT_NE(log.find("(torchvision ResNet names (an ImageNet backbone: conv1, layer1-4, fc))"), std::string::npos)
            << id << ": " << log;
        EXPECT_NE(log.find(" encoder tensors loaded"), std::string::npos) << id << ": " << log;
    }
    for (const std::string id : {"segmenter-linear-vit-tiny-p16", "setr-naive-vit-tiny-p16", "setr-mla-vit-tiny-p16"}) {
        auto model = core::createModel(id, 3);
        const std::string log = core::loadPretrainedStart(*model, id, fixture("timm_vit.safetensors"), true);
        EXPECT_NE(log.find("(timm ViT names (patch_embed, pos_embed, blocks))"), std::string::npos)
            << id << ": " << log;
        EXPECT_NE(log.find("outside the encoder, not in the file"), std::string::npos) << id << ": " << log;
    }
    // A ViT-Tiny checkpoint for a ViT-Small model names both shapes (mapPretrainedVit's check).
    auto small = core::createModel("setr-naive-vit-small-p16", 3);
    try {
        core::loadPretrainedStart(*small, "setr-naive-vit-small-p16", fixture("timm_vit.safetensors"), false);
        ADD_FAILURE() << "no error";
    } catch (const core::FileError& e) {
        EXPECT_NE(std::string(e.what()).find("patch embedding [192, 3, 16, 16]"), std::string::npos) << e.what();
    }
}
