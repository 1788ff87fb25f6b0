// Using a recorded run: loadRun/resolveCheckpoint/evaluate/predictImage and segscope-cli eval,
// export and predict.
#include "segscope/core/data/demo_data.h"
#include "segscope/core/experiment.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

using namespace segscope::core;
using segscope::test::runCli;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string quoted(const fs::path& path) {
    return "'" + path.string() + "'";
}

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

std::string readFileText(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

double jsonMiou(const std::string& output) {
    return json::parse(output).at("mIoU").get<double>();
}

}  // namespace

// One training, then every tool on it (ctest runs each TEST in its own process, so sections
// share the run instead of training once per test).
TEST(RunTools, EvalExportPredictOnATrainedRun) {
    segscope::test::TempDir dir;
    DemoOptions demo;
    demo.images = 40;
    demo.width = demo.height = 64;
    writeDemoDataset(dir / "demo", demo);
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
        const auto forced = runCli("--threads 1 predict --run " + runId + ws + " --image " + quoted(image) +
                                   " --out " + quoted(overlay) + " --force 2>&1");
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

TEST(RunTools, ResolveCheckpointPicksLatestExistingAndBestByMiou) {
    segscope::test::TempDir dir;
    auto store = RunStore::open(dir / "ws");
    NewRun newRun;
    newRun.model = "segformer-b0";
    const std::string id = store->createRun(newRun);
    EXPECT_THROW(resolveCheckpoint(*store, id, "latest"), Error);
    EXPECT_THROW(resolveCheckpoint(*store, id, "best"), Error);
    EXPECT_THROW(resolveCheckpoint(*store, "nope", "latest"), Error);

    const fs::path folder = store->run(id)->folder / "checkpoints";
    fs::create_directories(folder);
    const double mious[3] = {0.2, 0.5, 0.4};
    for (int epoch = 1; epoch <= 3; ++epoch) {
        char stem[64];
        std::snprintf(stem, sizeof stem, "epoch-%04d-step-%08d", epoch, epoch * 5);
        std::ofstream(folder / (std::string(stem) + ".safetensors")) << "x";
        std::ofstream(folder / (std::string(stem) + ".state.pt")) << "x";
        SegmentationMetrics metrics;
        metrics.mIoU = mious[epoch - 1];
        store->appendEpoch(id, epochRecord(metrics, epoch, epoch * 5, std::nullopt, 0.0), {}, {});
        store->addCheckpoint(id, {epoch, epoch * 5, folder / (std::string(stem) + ".state.pt"), {}});
    }
    EXPECT_EQ(resolveCheckpoint(*store, id, "latest").string(),
              (folder / "epoch-0003-step-00000015.safetensors").string());
    EXPECT_EQ(resolveCheckpoint(*store, id, "").string(), (folder / "epoch-0003-step-00000015.safetensors").string());
    EXPECT_EQ(resolveCheckpoint(*store, id, "best").string(),
              (folder / "epoch-0002-step-00000010.safetensors").string());
    EXPECT_EQ(resolveCheckpoint(*store, id, (folder / "epoch-0001-step-00000005.state.pt").string()).string(),
              (folder / "epoch-0001-step-00000005.safetensors").string());

    // The trainer deletes old checkpoints; their rows stay. Latest skips to one that exists,
    // best names the missing file.
    fs::remove(folder / "epoch-0003-step-00000015.safetensors");
    EXPECT_EQ(resolveCheckpoint(*store, id, "latest").string(),
              (folder / "epoch-0002-step-00000010.safetensors").string());
    fs::remove(folder / "epoch-0002-step-00000010.safetensors");
    try {
        resolveCheckpoint(*store, id, "best");
        ADD_FAILURE() << "no error for a deleted best checkpoint";
    } catch (const FileError& e) {
        EXPECT_EQ(e.path(), (folder / "epoch-0002-step-00000010.safetensors").string());
    }
    try {
        resolveCheckpoint(*store, id, (dir / "missing.safetensors").string());
        ADD_FAILURE() << "no error for a missing file";
    } catch (const FileError& e) {
        EXPECT_EQ(e.path(), (dir / "missing.safetensors").string());
    }
}

TEST(RunTools, OverlayBlendsEveryPixelWithItsClassColour) {
    cv::Mat rgb(2, 3, CV_8UC3, cv::Scalar(100, 50, 200));
    cv::Mat labels = (cv::Mat_<std::uint8_t>(2, 3) << 0, 1, 2, 1, 0, 7);
    const std::vector<Rgb> palette = {{0, 0, 0}, {255, 255, 255}, {10, 20, 30}};
    const cv::Mat out = overlayLabels(rgb, labels, palette, 0.5);
    EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(50, 25, 100));
    EXPECT_EQ(out.at<cv::Vec3b>(0, 1), cv::Vec3b(178, 153, 228));  // halves round up
    EXPECT_EQ(out.at<cv::Vec3b>(0, 2), cv::Vec3b(55, 35, 115));
    const Rgb seven = vocColor(7);  // beyond the palette: the VOC colour map
    EXPECT_EQ(out.at<cv::Vec3b>(1, 2),
              cv::Vec3b(std::uint8_t(0.5 * 100 + 0.5 * seven.r + 0.5), std::uint8_t(0.5 * 50 + 0.5 * seven.g + 0.5),
                        std::uint8_t(0.5 * 200 + 0.5 * seven.b + 0.5)));
    const cv::Mat plain = overlayLabels(rgb, labels, palette, 0.0);
    EXPECT_EQ(cv::norm(plain, rgb, cv::NORM_INF), 0.0);
    EXPECT_THROW(overlayLabels(rgb, cv::Mat(3, 3, CV_8UC1, cv::Scalar(0)), palette), Error);
}

namespace {

// Predicts class 0 everywhere, so the confusion matrix is known from the labels alone.
class BackgroundModel : public SegmentationModel {
public:
    explicit BackgroundModel(int classes) : SegmentationModel(classes) {}
    torch::Tensor forwardStages(const torch::Tensor& input, StageMap*) override {
        torch::Tensor logits = torch::zeros({input.size(0), numClasses(), input.size(2), input.size(3)});
        logits.select(1, 0).fill_(1.0);
        return logits;
    }
    bool isHeadParameter(const std::string&) const override { return false; }
};

struct Counts {
    std::int64_t counted = 0;
    std::int64_t background = 0;
};

Counts countLabels(const cv::Mat& label, bool voidToBackground) {
    Counts counts;
    for (int y = 0; y < label.rows; ++y)
        for (int x = 0; x < label.cols; ++x) {
            const int v = label.at<std::uint8_t>(y, x);
            if (v == kIgnoreIndex && !voidToBackground) continue;
            ++counts.counted;
            if (v == 0 || v == kIgnoreIndex) ++counts.background;
        }
    return counts;
}

}  // namespace

TEST(RunTools, EvaluateScoresAtTrainAndOriginalResolution) {
    segscope::test::TempDir dir;
    DemoOptions demo;
    demo.images = 12;
    demo.width = 48;
    demo.height = 40;
    writeDemoDataset(dir / "demo", demo);
    DatasetSpec spec;
    spec.root = dir / "demo";
    spec.split = "val";
    const auto dataset = Dataset::open(spec);
    ASSERT_EQ(dataset->size(), 3u);
    TransformConfig transform;
    transform.height = transform.width = 32;
    BackgroundModel model(5);
    model.train();

    for (const bool original : {false, true})
        for (const bool voidToBackground : {false, true}) {
            SCOPED_TRACE(std::string(original ? "original" : "train") + (voidToBackground ? ", void->bg" : ""));
            TransformConfig config = transform;
            config.voidToBackground = voidToBackground;
            Counts expected;
            std::vector<std::string> ids;
            for (std::size_t i = 0; i < dataset->size(); ++i) {
                const LabeledImage sample = dataset->load(i);
                ids.push_back(sample.id);
                const cv::Mat label = original ? sample.label : applyEvalTransform(sample, config).label;
                const Counts c = countLabels(label, voidToBackground);
                expected.counted += c.counted;
                expected.background += c.background;
            }
            EvaluationOptions options;
            options.resolution = original ? EvalResolution::Original : EvalResolution::Train;
            options.voidToBackground = voidToBackground;
            std::vector<std::size_t> progress;
            options.progress = [&](std::size_t done, std::size_t total) {
                EXPECT_EQ(total, 3u);
                progress.push_back(done);
            };
            const Evaluation result = evaluate(model, dataset, config, 5, 2, 1, options);
            EXPECT_FALSE(result.cancelled);
            EXPECT_EQ(result.metrics.pixels, expected.counted);
            ASSERT_TRUE(result.metrics.aAcc.has_value());
            EXPECT_DOUBLE_EQ(*result.metrics.aAcc, double(expected.background) / double(expected.counted));
            EXPECT_DOUBLE_EQ(*result.metrics.perClass.at(0).iou,
                             double(expected.background) / double(expected.counted));
            EXPECT_EQ(result.imageIds, ids);
            EXPECT_EQ(result.images.size(), 3u);
            EXPECT_FALSE(result.meanLoss.has_value());
            EXPECT_EQ(progress, (std::vector<std::size_t>{2, 3}));
            EXPECT_TRUE(model.is_training()) << "the model's mode is restored";
        }
    EvaluationOptions stop;
    stop.shouldStop = [] { return true; };
    const Evaluation stopped = evaluate(model, dataset, transform, 5, 2, 1, stop);
    EXPECT_TRUE(stopped.cancelled);
    EXPECT_TRUE(stopped.imageIds.empty());
    EXPECT_EQ(stopped.metrics.pixels, 0);
}

TEST(RunTools, PredictImageReturnsLabelsAtTheImageSize) {
    BackgroundModel model(5);
    TransformConfig transform;
    transform.height = transform.width = 32;
    const cv::Mat rgb(23, 57, CV_8UC3, cv::Scalar(10, 20, 30));
    const cv::Mat labels = predictImage(model, rgb, transform, torch::kCPU);
    EXPECT_EQ(labels.type(), CV_8UC1);
    EXPECT_EQ(labels.rows, 23);
    EXPECT_EQ(labels.cols, 57);
    EXPECT_EQ(cv::countNonZero(labels), 0);
    EXPECT_THROW(predictImage(model, cv::Mat(), transform, torch::kCPU), Error);
    EXPECT_THROW(predictImage(model, cv::Mat(4, 4, CV_8UC1), transform, torch::kCPU), Error);
}
