// segscope-cli eval, export and predict on a recorded run, and the errors they name.
#include "segscope/core/analysis/inference.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

using namespace segscope::core;
using segscope::test::quoted;
using segscope::test::readFileText;
using segscope::test::runCli;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A tiny experiment file as a user would write it (only what differs from the defaults).
void writeTinyExperiment(const fs::path& file, const fs::path& demoRoot) {
    const json document = {
        {"version", 1},
        {"name", "run-tools"},
        {"dataset", {{"kind", "voc"}, {"root", demoRoot.string()}}},
        {"model", {{"id", "segformer-b0"}}},
        {"transforms", {{"height", 64}, {"width", 64}}},
        {"optimizer", {{"type", "adamw"}, {"lr", 0.001}}},
        {"training", {{"epochs", 2}, {"batch_size", 4}}},
        {"runtime", {{"device", "cpu"}, {"threads", 1}, {"workers", 1}, {"seed", 0}}},
    };
    std::ofstream(file) << document.dump(2);
}

double jsonMiou(const std::string& output) {
    return json::parse(output).at("mIoU").get<double>();
}

}  // namespace

// One training, then every tool on it (ctest runs each TEST in its own process, so sections
// share the run instead of training once per test).
TEST(RunTools, EvalExportPredictOnATrainedRun) {
    segscope::test::TempDir dir;
    segscope::test::writeDemo(dir / "demo");
    writeTinyExperiment(dir / "exp.json", dir / "demo");
    const fs::path workspace = dir / "ws";
    const std::string ws = " --workspace " + quoted(workspace);

    const auto trained = runCli("--threads 1 train --config " + quoted(dir / "exp.json") + ws +
                                " --set training.checkpoint_every=1 > /dev/null 2>&1");
    ASSERT_EQ(trained.exitCode, 0);
    auto store = RunStore::open(workspace);
    const std::string runId = store->listRuns().at(0).id;
    const auto epochs = store->epochs(runId);
    ASSERT_EQ(epochs.size(), 2u);
    ASSERT_TRUE(epochs.back().mIoU.has_value());

    {
        SCOPED_TRACE("eval of the latest checkpoint reproduces the final validation");
        const auto eval = runCli("--threads 1 eval --run " + runId + ws + " --json");
        ASSERT_EQ(eval.exitCode, 0) << eval.output;
        EXPECT_NEAR(jsonMiou(eval.output), *epochs.back().mIoU, 1e-9);
        const json document = json::parse(eval.output);
        EXPECT_NEAR(document.at("aAcc").get<double>(), *epochs.back().aAcc, 1e-9);
        EXPECT_EQ(document.at("per_class").size(), 5u);
        EXPECT_EQ(document.at("per_class").at(1).at("name"), "circle");
    }
    {
        SCOPED_TRACE("eval of the best checkpoint reproduces the best validation");
        const auto best = std::max_element(epochs.begin(), epochs.end(),
                                           [](const auto& a, const auto& b) { return *a.mIoU < *b.mIoU; });
        const auto eval = runCli("--threads 1 eval --run " + runId + ws + " --checkpoint best --json");
        ASSERT_EQ(eval.exitCode, 0) << eval.output;
        EXPECT_NEAR(jsonMiou(eval.output), *best->mIoU, 1e-9);
        // An explicit path to the first epoch's checkpoint gives the first validation.
        const auto checkpoints = store->checkpoints(runId);
        const auto first = std::find_if(checkpoints.begin(), checkpoints.end(),
                                        [&](const CheckpointRecord& c) { return c.step == epochs.front().step; });
        ASSERT_NE(first, checkpoints.end());
        const auto byPath =
            runCli("--threads 1 eval --run " + runId + ws + " --checkpoint " + quoted(first->path) + " --json");
        ASSERT_EQ(byPath.exitCode, 0) << byPath.output;
        EXPECT_NEAR(jsonMiou(byPath.output), *epochs.front().mIoU, 1e-9);
    }
    {
        SCOPED_TRACE("the text table names the run and the checkpoint");
        const auto text = runCli("--threads 1 eval --run " + runId + ws);
        ASSERT_EQ(text.exitCode, 0);
        EXPECT_NE(text.output.find("run " + runId), std::string::npos) << text.output;
        EXPECT_NE(text.output.find("split val (10 images)"), std::string::npos) << text.output;
        EXPECT_NE(text.output.find("circle"), std::string::npos) << text.output;
    }
    {
        SCOPED_TRACE("export writes the checkpoint's tensors with metadata");
        const fs::path out = dir / "exported.safetensors";
        const auto exported = runCli("export --run " + runId + ws + " --out " + quoted(out));
        ASSERT_EQ(exported.exitCode, 0) << exported.output;
        std::map<std::string, std::string> metadata;
        const TensorMap tensors = readSafetensors(out, &metadata);
        const fs::path latest = resolveCheckpoint(*store, runId, "latest");
        EXPECT_EQ(latest.extension().string(), ".safetensors");
        const TensorMap checkpoint = readSafetensors(latest);
        ASSERT_EQ(tensors.size(), checkpoint.size());
        for (const auto& [name, tensor] : checkpoint) {
            ASSERT_TRUE(tensors.count(name)) << name;
            EXPECT_TRUE(torch::equal(tensors.at(name), tensor)) << name;
        }
        EXPECT_TRUE(tensors.count("decode_head.classifier.weight"));
        EXPECT_EQ(metadata.at("model"), "segformer-b0");
        EXPECT_EQ(metadata.at("classes"), "5");
        EXPECT_EQ(json::parse(metadata.at("class_names")),
                  json::parse(R"(["background","circle","square","triangle","cross"])"));
        EXPECT_EQ(metadata.at("run"), runId);
    }
    {
        SCOPED_TRACE("predict writes an overlay and a palette mask at the image's size");
        const fs::path image = dir / "input.png";
        // A non-square size different from the training size: the mask must come back at it.
        cv::Mat rgb = readImageRgb(dir / "demo" / "JPEGImages" / "demo_00000.jpg");
        cv::resize(rgb, rgb, cv::Size(90, 50), 0, 0, cv::INTER_LINEAR);
        writeImageRgb(image, rgb);
        const fs::path overlay = dir / "overlay.png";
        const fs::path mask = dir / "mask.png";
        const auto predicted = runCli("--threads 1 predict --run " + runId + ws + " --image " + quoted(image) +
                                      " --out " + quoted(overlay) + " --mask " + quoted(mask));
        ASSERT_EQ(predicted.exitCode, 0) << predicted.output;
        const StoredMask stored = readMaskPng(mask);
        EXPECT_EQ(stored.encoding, MaskEncoding::Indexed);
        ASSERT_EQ(stored.values.cols, 90);
        ASSERT_EQ(stored.values.rows, 50);
        double minValue = 0, maxValue = 0;
        cv::minMaxLoc(stored.values, &minValue, &maxValue);
        EXPECT_GE(minValue, 0);
        EXPECT_LT(maxValue, 5);

        // The same labels from the library, and the overlay is the 50/50 blend with the colours.
        const LoadedRun run = loadRun(*store, runId);
        const cv::Mat labels =
            predictImage(*run.model, readImageRgb(image), transformConfig(run.experiment), run.device);
        EXPECT_EQ(cv::countNonZero(labels != stored.values), 0);
        const cv::Mat blended = readImageRgb(overlay);
        const cv::Mat input = readImageRgb(image);
        ASSERT_EQ(blended.size(), input.size());
        const auto classes = demoClasses();
        int mismatches = 0;
        for (int y = 0; y < input.rows; ++y)
            for (int x = 0; x < input.cols; ++x) {
                const Rgb c = classes.at(labels.at<std::uint8_t>(y, x)).color;
                const cv::Vec3b in = input.at<cv::Vec3b>(y, x), out = blended.at<cv::Vec3b>(y, x);
                const int expected[3] = {int(0.5 * in[0] + 0.5 * c.r + 0.5), int(0.5 * in[1] + 0.5 * c.g + 0.5),
                                         int(0.5 * in[2] + 0.5 * c.b + 0.5)};
                for (int k = 0; k < 3; ++k)
                    if (int(out[k]) != expected[k]) ++mismatches;
            }
        EXPECT_EQ(mismatches, 0);

        // Never over the input image; an existing file only with --force.
        const std::string image0 = readFileText(image);
        const auto overInput = runCli("--threads 1 predict --run " + runId + ws + " --image " + quoted(image) +
                                      " --out " + quoted(image) + " 2>&1");
        EXPECT_EQ(overInput.exitCode, 1) << overInput.output;
        EXPECT_NE(overInput.output.find(image.string()), std::string::npos) << overInput.output;
        EXPECT_EQ(readFileText(image), image0) << "the input image was written over";
        const auto existing = runCli("--threads 1 predict --run " + runId + ws + " --image " + quoted(image) +
                                     " --out " + quoted(overlay) + " 2>&1");
        EXPECT_EQ(existing.exitCode, 1) << existing.output;
        EXPECT_NE(existing.output.find("--force"), std::string::npos) << existing.output;
        const auto forced = runCli("--threads 1 predict --run " + runId + ws + " --image " + quoted(image) + " --out " +
                                   quoted(overlay) + " --force 2>&1");
        EXPECT_EQ(forced.exitCode, 0) << forced.output;
    }
    {
        SCOPED_TRACE("a missing checkpoint file is named");
        const auto missing = runCli("eval --run " + runId + ws + " --checkpoint /nonexistent/weights.safetensors 2>&1");
        EXPECT_EQ(missing.exitCode, 1);
        EXPECT_NE(missing.output.find("/nonexistent/weights.safetensors"), std::string::npos) << missing.output;
    }
}

TEST(RunTools, MissingRunImageAndWorkspaceAreNamedErrors) {
    segscope::test::TempDir dir;
    RunStore::open(dir / "ws");  // an empty workspace
    const std::string ws = " --workspace " + quoted(dir / "ws");

    const auto eval = runCli("eval --run no-such-run" + ws + " 2>&1");
    EXPECT_EQ(eval.exitCode, 1);
    EXPECT_NE(eval.output.find("no run 'no-such-run'"), std::string::npos) << eval.output;

    const auto exported = runCli("export --run no-such-run" + ws + " --out " + quoted(dir / "x.safetensors") + " 2>&1");
    EXPECT_EQ(exported.exitCode, 1);
    EXPECT_NE(exported.output.find("no run 'no-such-run'"), std::string::npos) << exported.output;
    EXPECT_FALSE(fs::exists(dir / "x.safetensors"));

    const auto predict = runCli("predict --run no-such-run" + ws + " --image " + quoted(dir / "missing.jpg") +
                                " --out " + quoted(dir / "o.png") + " 2>&1");
    EXPECT_EQ(predict.exitCode, 1);
    EXPECT_NE(predict.output.find((dir / "missing.jpg").string() + ": does not exist"), std::string::npos)
        << predict.output;

    // A workspace folder that is not one is not created as a side effect.
    const auto noWorkspace = runCli("eval --run x --workspace " + quoted(dir / "nowhere") + " 2>&1");
    EXPECT_EQ(noWorkspace.exitCode, 1);
    EXPECT_NE(noWorkspace.output.find("not a SegScope workspace"), std::string::npos) << noWorkspace.output;
    EXPECT_FALSE(fs::exists(dir / "nowhere"));

    EXPECT_EQ(runCli("eval" + ws + " 2>/dev/null").exitCode, 2);  // --run is required
}
