// segscope-cli erf: from a zoo model on a tensor file, and from a recorded run's checkpoint.
#include "segscope/core/analysis/erf.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <fstream>

namespace core = segscope::core;
using namespace segscope::core;
using segscope::test::TempDir;
using segscope::test::tinyExperiment;
using segscope::test::writeDemo;
namespace fs = std::filesystem;

namespace {

double maxRelativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
    const double scale = std::max(a.abs().max().item<double>(), 1e-30);
    return (a - b).abs().max().item<double>() / scale;
}

}  // namespace

TEST(Erf, CliWritesMapsPngsAndJsonForSegformer) {
    TempDir dir;
    torch::manual_seed(7);
    core::writeSafetensors(dir / "input.safetensors", {{"input", torch::randn({2, 3, 64, 64})}});
    const auto result =
        segscope::test::runCli("erf --model segformer-b0 --classes 3 --input '" + (dir / "input.safetensors").string() +
                               "' --out '" + (dir / "erf").string() + "' --json");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    const nlohmann::json printed = nlohmann::json::parse(result.output);
    EXPECT_EQ(printed["model"], "segformer-b0");
    EXPECT_EQ(printed["images"], 2);

    const core::TensorMap maps = core::readSafetensors(dir / "erf" / "erf.safetensors");
    std::vector<std::string> names;
    for (const auto& [name, map] : maps) {
        names.push_back(name);
        EXPECT_EQ(map.sizes(), (std::vector<std::int64_t>{64, 64})) << name;
        EXPECT_EQ(map.scalar_type(), torch::kFloat32) << name;
        EXPECT_GT(map.sum().item<double>(), 0.0) << name;
    }
    EXPECT_EQ(names, (std::vector<std::string>{"decoder", "stage1", "stage2", "stage3", "stage4"}));
    for (const auto& name : names) {
        const cv::Mat png = cv::imread((dir / "erf" / (name + ".png")).string(), cv::IMREAD_UNCHANGED);
        ASSERT_FALSE(png.empty()) << name;
        EXPECT_EQ(png.rows, 64);
        EXPECT_EQ(png.cols, 64);
        EXPECT_EQ(png.channels(), 3);
    }
    std::ifstream file(dir / "erf" / "erf.json");
    const nlohmann::json summary = nlohmann::json::parse(file);
    EXPECT_EQ(summary["model"], "segformer-b0");
    EXPECT_EQ(summary["stages"].size(), 5u);
    for (const auto& name : names) {
        const auto& stage = summary["stages"][name];
        EXPECT_EQ(stage["area_ratios"].size(), 4u) << name;
        EXPECT_DOUBLE_EQ(stage["sum"].get<double>(), maps.at(name).to(torch::kFloat64).sum().item<double>()) << name;
        EXPECT_GE(stage["effective_radius_pixels"].get<double>(), 0.0);
    }
    EXPECT_EQ(printed["stages"], summary["stages"]);

    EXPECT_EQ(segscope::test::runCli("erf --model segformer-b0 --out /tmp/x 2>/dev/null").exitCode, 2);
    EXPECT_EQ(segscope::test::runCli("erf --model segformer-b0 --classes 3 2>/dev/null").exitCode, 2);
}

TEST(Erf, CliRunUsesTheRunsCheckpointAndValidationImages) {
    TempDir dir;
    writeDemo(dir / "demo", 12);
    core::Experiment e = tinyExperiment(dir / "demo");
    e.name = "erf";
    e.training.epochs = 1;
    e.runtime.workers = 0;
    core::saveExperiment(dir / "exp.json", e);
    const std::string workspace = (dir / "ws").string();
    const auto trained = segscope::test::runCli("train --config '" + (dir / "exp.json").string() + "' --workspace '" +
                                                workspace + "' > /dev/null 2>&1");
    ASSERT_EQ(trained.exitCode, 0);
    std::string runId;
    core::TensorMap weights;
    {
        const auto store = core::RunStore::open(workspace);
        const auto runs = store->listRuns();
        ASSERT_EQ(runs.size(), 1u);
        runId = runs[0].id;
        const auto checkpoint = store->latestCheckpoint(runId);
        ASSERT_TRUE(checkpoint.has_value());
        std::string name = checkpoint->path.filename().string();
        name = name.substr(0, name.size() - std::string(".state.pt").size()) + ".safetensors";
        weights = core::readSafetensors(checkpoint->path.parent_path() / name);
    }
    const auto result =
        segscope::test::runCli("erf --run " + runId + " --workspace '" + workspace +
                               "' --images 2 --batch-size 2 --out '" + (dir / "erf").string() + "' --json");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    const nlohmann::json printed = nlohmann::json::parse(result.output);
    EXPECT_EQ(printed["images"], 2);
    EXPECT_NE(printed["source"].get<std::string>().find(runId), std::string::npos);

    // The same ERF in process, from the checkpoint's weights and the validation preprocessing.
    auto model = core::createModel("segformer-b0", 5);
    core::LoadOptions strict;
    strict.strict = true;
    core::loadStateDict(*model, weights, strict);
    const auto dataset = core::Dataset::open(core::datasetSpec(e, "val"));
    const core::ErfResult expected = core::computeErf(*model, dataset, core::transformConfig(e), 2);
    const core::TensorMap maps = core::readSafetensors(dir / "erf" / "erf.safetensors");
    ASSERT_EQ(maps.size(), 5u);
    for (const auto& stage : expected.stages)
        EXPECT_LT(maxRelativeDifference(maps.at(stage.stage), stage.map), 1e-5) << stage.stage;
}

// erf --checkpoint best uses the core's resolver (issue 14 item 11).
TEST(ErfCli, BestCheckpointIsMatchedByStepNotEpoch) {
    TempDir dir;
    writeDemo(dir / "demo", 12, 48);
    Experiment e = tinyExperiment(dir / "demo");
    e.transforms.height = e.transforms.width = 48;
    e.training.valEveryUnit = ScheduleUnit::Iteration;
    e.training.valEvery = 2;
    const std::string workspace = (dir / "ws").string();
    std::string runId;
    fs::path bestWeights;
    {
        auto store = RunStore::open(workspace);
        runId = createRecordedRun(*store, e);
        const fs::path folder = store->run(runId)->folder / "checkpoints";
        fs::create_directories(folder);
        torch::manual_seed(1);
        auto model = createModel("segformer-b0", 5);
        // Per-iteration evaluations 1, 2, 3 at steps 2, 4, 6, all within epoch 0; the best is the
        // second. Matching epochs would find no checkpoint of "epoch" 2 and fall back to step 6.
        const double miou[] = {0.2, 0.7, 0.4};
        for (int i = 0; i < 3; ++i) {
            const std::int64_t step = 2 * (i + 1);
            const fs::path weights = folder / (erfSnapshotName(0, step) + ".safetensors");
            writeSafetensors(weights, stateDict(*model), {{"model", "segformer-b0"}, {"classes", "5"}});
            std::ofstream(folder / (erfSnapshotName(0, step) + ".state.pt")) << "state";
            store->addCheckpoint(runId, {0, step, folder / (erfSnapshotName(0, step) + ".state.pt"), {}});
            EpochRecord record;
            record.epoch = i + 1;
            record.step = step;
            record.mIoU = miou[i];
            store->appendEpoch(runId, record, {}, {});
            if (i == 1) bestWeights = weights;
        }
        ASSERT_EQ(resolveCheckpoint(*store, runId, "best"), bestWeights);
    }
    const auto result = segscope::test::runCli("erf --run " + runId + " --workspace '" + workspace +
                                               "' --checkpoint best --images 1 --out '" + (dir / "erf").string() +
                                               "' --json 2>/dev/null");
    ASSERT_EQ(result.exitCode, 0) << result.output;
    const nlohmann::json printed = nlohmann::json::parse(result.output);
    EXPECT_NE(printed["source"].get<std::string>().find(bestWeights.string()), std::string::npos) << printed["source"];
}
