// Interoperability with the newest releases of the Python references (scripts/requirements-newest.txt,
// in <pinned env>-newest, fixtures from newest_reference.py): SegFormer state dicts in transformers
// 5.x names and the hub's 4.x names through `segscope-cli forward`, bare SegformerModel backbones
// as pretrained starts, smp/timm/torchvision families, exports loaded strictly by transformers 5,
// and --hf-folder exports through from_pretrained under transformers 4.56 and 5.x.
#include "segscope/core/analysis/inference.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/segformer_naming.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>

using namespace segscope;
using segscope::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string quote(const fs::path& p) {
    return "'" + p.string() + "'";
}

// $SEGSCOPE_PYTHON_NEWEST, else <pinned env>-newest/bin/python (where scripts/setup.sh puts it).
std::string newestPython() {
    if (const char* env = std::getenv("SEGSCOPE_PYTHON_NEWEST")) return env;
    const fs::path pinned = test::pythonExecutable();
    return (pinned.parent_path().parent_path().string() + "-newest") + "/bin/python";
}

fs::path newestDir(const std::string& id = {}) {
    const fs::path dir = test::testData() / "reference" / "newest";
    return id.empty() ? dir : dir / id;
}

std::string installedVersion(const std::string& python, const std::string& package) {
    const auto result = test::runCommand(quote(python) + " -c 'import importlib.metadata as m; print(m.version(\"" +
                                         package + "\"))' 2>/dev/null");
    return result.exitCode == 0 && !result.output.empty() ? result.output.substr(0, result.output.size() - 1) : "";
}

double maxAbsDifference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>();
}

constexpr double kTolerance = 1e-4;
constexpr int kClasses = 5;  // newest_reference.py's CLASSES

// Seeded weights with non-trivial norms, biases and BN statistics (as test_weights_io.cpp).
std::shared_ptr<core::SegmentationModel> seededModel(const std::string& id, int classes) {
    torch::manual_seed(11);
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

#define REQUIRE_NEWEST_FIXTURES()                                                                        \
    if (!fs::exists(newestDir() / "stamp.json"))                                                         \
    GTEST_FAIL() << newestDir() << " missing: run `ctest -R reference_newest` (needs " << newestPython() \
                 << ", installed by scripts/setup.sh)"

}  // namespace

TEST(NewestInterop, FixturesComeFromTheNewestReleases) {
    REQUIRE_NEWEST_FIXTURES();
    std::ifstream in(newestDir() / "versions.json");
    const auto versions = nlohmann::json::parse(in);
    std::cout << "newest references: " << versions.dump() << "\n";
    // The SegFormer state dicts below are 5.x-named only if transformers 5 wrote them.
    EXPECT_GE(std::stoi(versions.at("transformers").get<std::string>()), 5) << versions.dump();
    EXPECT_EQ(versions.at("transformers"), installedVersion(newestPython(), "transformers"));
}

TEST(NewestInterop, SegFormerInBothNamingsThroughForwardB0AndB2) {
    REQUIRE_NEWEST_FIXTURES();
    TempDir dir;
    for (const std::string id : {"segformer-b0", "segformer-b2"}) {
        const auto io = core::readSafetensors(newestDir(id) / "io.safetensors");
        ASSERT_EQ(io.at("input").sizes(), (std::vector<std::int64_t>{1, 3, 65, 97}));
        for (const auto& [file, naming] : std::vector<std::pair<std::string, core::SegFormerNaming>>{
                 {"weights.safetensors", core::SegFormerNaming::Transformers5},
                 {"hub/model.safetensors", core::SegFormerNaming::Transformers4}}) {
            SCOPED_TRACE(id + " " + file);
            const fs::path weights = newestDir(id) / file;
            const auto layout = core::detectSegFormerLayout(core::readSafetensors(weights));
            ASSERT_TRUE(layout.naming);
            EXPECT_EQ(*layout.naming, naming);  // the fixture really carries that generation's names
            const fs::path out = dir / (id + "-" + fs::path(file).parent_path().string() + "out.safetensors");
            const auto result =
                test::runCli("--threads 2 forward --model " + id + " --classes " + std::to_string(kClasses) +
                             " --weights " + quote(weights) + " --input " + quote(newestDir(id) / "io.safetensors") +
                             " --output " + quote(out) + " 2>&1");
            ASSERT_EQ(result.exitCode, 0) << result.output;
            EXPECT_NE(result.output.find(" 0 missing, 0 unexpected, 0 skipped for shape"), std::string::npos)
                << result.output;
            const auto logits = core::readSafetensors(out).at("logits");
            ASSERT_EQ(logits.sizes(), io.at("logits").sizes());
            const double difference = maxAbsDifference(logits, io.at("logits"));
            std::cout << id << " " << file << ": max|delta| " << difference << "\n";
            EXPECT_LE(difference, kTolerance);
        }
    }
}

TEST(NewestInterop, BareSegformerModelBackbonesLoadTheWholeEncoder) {
    REQUIRE_NEWEST_FIXTURES();
    const auto reference =
        core::toSegScopeSegFormerNames(core::readSafetensors(newestDir("segformer-b0") / "weights.safetensors"));
    for (const std::string file : {"backbone.safetensors", "backbone-hub/model.safetensors"}) {
        SCOPED_TRACE(file);
        auto model = core::createModel("segformer-b0", 3);
        const std::string log =
            core::loadPretrainedStart(*model, "segformer-b0", newestDir("segformer-b0") / file, true);
        EXPECT_NE(log.find("192 loaded; all 192 encoder tensors loaded"), std::string::npos) << log;
        EXPECT_NE(log.find("bare SegformerModel/MiT backbone"), std::string::npos) << log;
        for (const auto& [name, tensor] : core::stateDict(*model))
            if (!model->isHeadParameter(name)) {
                EXPECT_TRUE(torch::equal(tensor, reference.at(name))) << name;
            }
    }
}

TEST(NewestInterop, OtherFamiliesMatchTheNewestReferences) {
    REQUIRE_NEWEST_FIXTURES();
    for (const std::string id : {"unet-resnet18", "fpn-resnet50", "deeplabv3plus-resnet50", "fcn-resnet50",
                                 "segmenter-linear-vit-tiny-p16", "setr-naive-vit-tiny-p16"}) {
        auto model = core::createModel(id, kClasses);
        const auto report = core::loadWeightsForModel(*model, id, newestDir(id) / "weights.safetensors", false);
        EXPECT_TRUE(report.complete()) << id << ": " << report.summary();
        model->eval();
        const auto io = core::readSafetensors(newestDir(id) / "io.safetensors");
        torch::NoGradGuard noGrad;
        const auto logits = model->forward(io.at("input"));
        ASSERT_EQ(logits.sizes(), io.at("logits").sizes()) << id;
        const double difference = maxAbsDifference(logits, io.at("logits"));
        std::cout << id << ": max|delta| " << difference << "\n";
        EXPECT_LE(difference, kTolerance * std::max(1.0, io.at("logits").abs().max().item<double>())) << id;
    }
}

// SegScope -> Python under the newest releases: load_state_dict(strict=True) and the same logits.
TEST(NewestInterop, ExportsLoadStrictlyUnderTheNewestReleases) {
    const std::vector<std::string> ids{"segformer-b0", "unet-resnet18", "fcn-resnet50",
                                       "segmenter-linear-vit-tiny-p16"};
    TempDir dir;
    for (const auto& id : ids) {
        const auto model = seededModel(id, kClasses);
        const auto input = torch::randn({1, 3, 64, 64});
        torch::Tensor logits;
        {
            torch::NoGradGuard noGrad;
            logits = model->forward(input);
        }
        core::TensorMap weights = core::stateDict(*model);
        // transformers 5's SegformerForSemanticSegmentation.load_state_dict takes the 5.x names.
        if (id.rfind("segformer", 0) == 0)
            weights = core::segFormerStateDictIn(weights, core::SegFormerNaming::Transformers5);
        core::writeSafetensors(dir / (id + ".weights.safetensors"), weights, {{"model", id}});
        core::writeSafetensors(dir / (id + ".io.safetensors"), {{"input", input}, {"logits", logits}});
    }
    const auto result = test::runCommand("OMP_NUM_THREADS=1 " + quote(newestPython()) + " " +
                                         quote(test::sourceDir() / "tests/parity/check_roundtrip.py") + " --classes " +
                                         std::to_string(kClasses) + " " + quote(dir.path()) + " 2>&1");
    std::cout << result.output;
    EXPECT_EQ(result.exitCode, 0) << result.output;
    for (const auto& id : ids) {
        const auto line = result.output.find(id + ": max |diff| ");
        ASSERT_NE(line, std::string::npos) << id << "\n" << result.output;
        const auto lineEnd = result.output.find('\n', line);
        EXPECT_EQ(result.output.substr(lineEnd - 3, 3), " ok") << result.output.substr(line, lineEnd - line);
    }
}

TEST(NewestInterop, HfFolderLoadsThroughFromPretrainedUnderTransformers4And5) {
    TempDir dir;
    const auto model = seededModel("segformer-b0", 3);
    const auto input = torch::randn({1, 3, 65, 97});
    torch::Tensor logits;
    {
        torch::NoGradGuard noGrad;
        logits = model->forward(input);
    }
    core::writeSegFormerHfFolder(dir / "hf", core::stateDict(*model), {"background", "cat", "dog"});
    core::writeSafetensors(dir / "io.safetensors", {{"input", input}, {"logits", logits}});
    for (const auto& python : {test::pythonExecutable(), newestPython()}) {
        const std::string version = installedVersion(python, "transformers");
        SCOPED_TRACE(python + " (transformers " + version + ")");
        const auto result = test::runCommand("OMP_NUM_THREADS=1 " + quote(python) + " " +
                                             quote(test::sourceDir() / "tests/parity/check_hf_folder.py") + " " +
                                             quote(dir / "hf") + " " + quote(dir / "io.safetensors") + " 2>&1");
        std::cout << result.output;
        EXPECT_EQ(result.exitCode, 0) << result.output;
        EXPECT_NE(result.output.find("transformers " + version + ": 208 tensors, 3 labels, max |diff| "),
                  std::string::npos)
            << result.output;
    }
    EXPECT_NE(installedVersion(test::pythonExecutable(), "transformers").substr(0, 2), "5.");
    EXPECT_EQ(installedVersion(newestPython(), "transformers").substr(0, 2), "5.");
}

TEST(ExportCli, NamingHfFolderAndOverwriteGuards) {
    TempDir dir;
    core::DemoOptions demo;
    demo.images = 8;
    demo.width = demo.height = 64;
    core::writeDemoDataset(dir / "demo", demo);
    const nlohmann::json experiment = {
        {"version", 1},
        {"name", "export-cli"},
        {"dataset", {{"kind", "voc"}, {"root", (dir / "demo").string()}}},
        {"model", {{"id", "segformer-b0"}}},
        {"transforms", {{"height", 64}, {"width", 64}}},
        {"training", {{"iterations", 1}, {"batch_size", 2}}},
        {"runtime", {{"device", "cpu"}, {"threads", 1}, {"workers", 1}, {"seed", 0}}},
    };
    std::ofstream(dir / "exp.json") << experiment.dump(2);
    const fs::path workspace = dir / "ws";
    const std::string ws = " --workspace " + quote(workspace);
    const auto trained = test::runCli("--threads 1 train --config " + quote(dir / "exp.json") + ws + " 2>&1");
    ASSERT_EQ(trained.exitCode, 0) << trained.output;
    const std::string runId = core::RunStore::open(workspace)->listRuns().at(0).id;
    const std::string exportRun = "export --run " + runId + ws;

    // --naming 5: the exported names are transformers 5's.
    const auto five = test::runCli(exportRun + " --naming 5 --out " + quote(dir / "five.safetensors") + " 2>&1");
    ASSERT_EQ(five.exitCode, 0) << five.output;
    EXPECT_NE(five.output.find("transformers 5.x names"), std::string::npos) << five.output;
    std::map<std::string, std::string> metadata;
    const auto fiveTensors = core::readSafetensors(dir / "five.safetensors", &metadata);
    EXPECT_EQ(metadata.at("naming"), "transformers5");
    EXPECT_EQ(*core::detectSegFormerLayout(fiveTensors).naming, core::SegFormerNaming::Transformers5);
    EXPECT_TRUE(fiveTensors.count("segformer.stages.3.blocks.1.attention.o_proj.weight"));
    EXPECT_EQ(fiveTensors.size(), 208u);

    // --hf-folder: from_pretrained loads it under both generations with the run's logits.
    const auto hf = test::runCli(exportRun + " --hf-folder " + quote(dir / "hf") + " 2>&1");
    ASSERT_EQ(hf.exitCode, 0) << hf.output;
    auto model = core::createModel("segformer-b0", 5);
    core::loadWeightsForModel(*model, "segformer-b0", dir / "five.safetensors", false);
    model->eval();
    const auto input = torch::randn({1, 3, 64, 80});
    torch::Tensor logits;
    {
        torch::NoGradGuard noGrad;
        logits = model->forward(input);
    }
    core::writeSafetensors(dir / "io.safetensors", {{"input", input}, {"logits", logits}});
    const auto config = nlohmann::json::parse(std::ifstream(dir / "hf" / "config.json"));
    EXPECT_EQ(config.at("id2label").at("1"), "circle");
    for (const auto& python : {test::pythonExecutable(), newestPython()}) {
        const auto result = test::runCommand("OMP_NUM_THREADS=1 " + quote(python) + " " +
                                             quote(test::sourceDir() / "tests/parity/check_hf_folder.py") + " " +
                                             quote(dir / "hf") + " " + quote(dir / "io.safetensors") + " 2>&1");
        EXPECT_EQ(result.exitCode, 0) << python << ": " << result.output;
    }

    // Never over the workspace's files, the run's checkpoint, or an existing file without --force.
    const fs::path database = workspace / ".segscope" / "segscope.db";
    ASSERT_TRUE(fs::exists(database));
    const auto databaseSize = fs::file_size(database);
    const auto overDatabase = test::runCli(exportRun + " --force --out " + quote(database) + " 2>&1");
    EXPECT_EQ(overDatabase.exitCode, 1);
    EXPECT_NE(overDatabase.output.find("is a file of the SegScope workspace"), std::string::npos)
        << overDatabase.output;
    EXPECT_EQ(fs::file_size(database), databaseSize);
    const fs::path checkpoint = core::resolveCheckpoint(*core::RunStore::open(workspace), runId, "latest");
    const auto overCheckpoint = test::runCli(exportRun + " --force --out " + quote(checkpoint) + " 2>&1");
    EXPECT_EQ(overCheckpoint.exitCode, 1);
    EXPECT_NE(overCheckpoint.output.find("is also an input of this command"), std::string::npos)
        << overCheckpoint.output;
    const auto again = test::runCli(exportRun + " --out " + quote(dir / "five.safetensors") + " 2>&1");
    EXPECT_EQ(again.exitCode, 1);
    EXPECT_NE(again.output.find("five.safetensors: exists; pass --force to replace it"), std::string::npos)
        << again.output;
    EXPECT_EQ(core::readSafetensors(dir / "five.safetensors").count("segformer.stages.0.layer_norm.weight"), 1u);
    const auto forced = test::runCli(exportRun + " --force --out " + quote(dir / "five.safetensors") + " 2>&1");
    EXPECT_EQ(forced.exitCode, 0) << forced.output;
    EXPECT_EQ(core::readSafetensors(dir / "five.safetensors").count("segformer.encoder.layer_norm.0.weight"), 1u);
    const auto hfAgain = test::runCli(exportRun + " --hf-folder " + quote(dir / "hf") + " 2>&1");
    EXPECT_EQ(hfAgain.exitCode, 1);
    EXPECT_NE(hfAgain.output.find("config.json: exists; pass --force"), std::string::npos) << hfAgain.output;
    EXPECT_EQ(test::runCli(exportRun + " --naming 6 --out x.safetensors 2>/dev/null").exitCode, 2);
}
