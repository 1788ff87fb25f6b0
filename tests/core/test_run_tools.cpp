// Using a recorded run: loadRun/resolveCheckpoint/evaluate/predictImage (segscope-cli eval,
// export and predict: tests/cli/test_cli_run_tools.cpp).
#include "segscope/core/analysis/inference.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/data/overlay.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"

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
namespace fs = std::filesystem;
using json = nlohmann::json;

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
    stop.cancel = CancelToken([] { return true; });
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
