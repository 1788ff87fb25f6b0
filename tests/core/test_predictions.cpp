// Split predictions: the cache (writer, validity, atomicity), PredictionSet's rankings, filters and
// click-through on hand-made masks whose confusion is known, pixel-level error maps, and
// predictSplit()/`segscope-cli predict-split` on a randomly initialised model.
#include "segscope/core/analysis/inference.h"
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace segscope::core;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Indices = std::vector<std::size_t>;

namespace {

// A label image from rows of characters: '0'..'9' are classes, 'x' is void (255).
cv::Mat labels(std::initializer_list<const char*> rows) {
    const int height = int(rows.size());
    const int width = int(std::strlen(*rows.begin()));
    cv::Mat out(height, width, CV_8UC1);
    int y = 0;
    for (const char* row : rows) {
        for (int x = 0; x < width; ++x) out.at<std::uint8_t>(y, x) = row[x] == 'x' ? 255 : std::uint8_t(row[x] - '0');
        ++y;
    }
    return out;
}

std::vector<ClassInfo> petClasses() {
    return {{"background", {0, 0, 0}}, {"cat", {200, 0, 0}}, {"dog", {0, 0, 200}}};
}

PredictionKey handKey(const std::string& split = "val") {
    PredictionKey key;
    key.checkpoint = "/nowhere/epoch_001.safetensors";
    key.checkpointBytes = 1234;
    key.checkpointModifiedNs = 42;
    key.modelId = "hand-made";
    key.classes = 3;
    key.datasetKind = DatasetKind::Folder;
    key.datasetRoot = "/nowhere/data";
    key.split = split;
    key.height = key.width = 4;
    return key;
}

struct HandImage {
    std::string id;
    cv::Mat prediction;
    cv::Mat groundTruth;
};

// Six 4x4 images over background (0), cat (1), dog (2); their matrices (rows = ground truth):
//   0 "c": cat block found exactly        [[12,0,0],[0,4,0],[0,0,0]]  mIoU 1
//   1 "a": cat block predicted as dog     [[12,0,0],[0,0,4],[0,0,0]]  mIoU (1+0+0)/3
//   2 "e": dog block half found, half cat, a void row predicted cat (not counted)
//                                         [[8,0,0],[0,0,0],[0,2,2]]   mIoU (1+0+0.5)/3
//   3 "b": the same masks as "c"          [[12,0,0],[0,4,0],[0,0,0]]  mIoU 1
//   4 "d": all void                       all zero                    mIoU undefined
//   5 "f": background, 3 pixels predicted cat
//                                         [[13,3,0],[0,0,0],[0,0,0]]  mIoU (13/16+0)/2
std::vector<HandImage> handImages() {
    const cv::Mat catGt = labels({"0000", "0110", "0110", "0000"});
    const cv::Mat catAsDog = labels({"0000", "0220", "0220", "0000"});
    return {
        {"c", catGt.clone(), catGt.clone()},
        {"a", catAsDog, catGt.clone()},
        {"e", labels({"0000", "2200", "1100", "1111"}), labels({"0000", "2200", "2200", "xxxx"})},
        {"b", catGt.clone(), catGt.clone()},
        {"d", labels({"0000", "0000", "0000", "0000"}), labels({"xxxx", "xxxx", "xxxx", "xxxx"})},
        {"f", labels({"1000", "0100", "0010", "0000"}), labels({"0000", "0000", "0000", "0000"})},
    };
}

PredictionSet writeHandSet(const fs::path& folder, const PredictionKey& key = handKey()) {
    PredictionCacheWriter writer(folder, key, petClasses());
    for (const auto& im : handImages()) writer.add(im.id, im.prediction, im.groundTruth);
    return writer.commit();
}

std::vector<std::int64_t> matrixOf(const PredictionSet& set, std::size_t index) {
    std::vector<std::int64_t> out;
    for (int t = 0; t < set.classes(); ++t)
        for (int p = 0; p < set.classes(); ++p) out.push_back(set.count(index, t, p));
    return out;
}

std::vector<std::int64_t> matrixOf(const ConfusionMatrix& m) {
    std::vector<std::int64_t> out;
    for (int t = 0; t < m.classes(); ++t)
        for (int p = 0; p < m.classes(); ++p) out.push_back(m.count(t, p));
    return out;
}

bool sameMat(const cv::Mat& a, const cv::Mat& b) {
    return a.type() == b.type() && a.size() == b.size() && cv::countNonZero(a != b) == 0;
}

std::vector<fs::path> folderEntries(const fs::path& folder) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(folder, ec)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST(Predictions, PerImageMatricesAndTotalsAreExact) {
    segscope::test::TempDir dir;
    const PredictionSet set = writeHandSet(dir / "predictions" / "epoch_001__val");
    ASSERT_EQ(set.size(), 6u);
    ASSERT_EQ(set.classes(), 3);
    EXPECT_EQ(set.classNames(), (std::vector<std::string>{"background", "cat", "dog"}));
    EXPECT_EQ(matrixOf(set, 0), (std::vector<std::int64_t>{12, 0, 0, 0, 4, 0, 0, 0, 0}));
    EXPECT_EQ(matrixOf(set, 1), (std::vector<std::int64_t>{12, 0, 0, 0, 0, 4, 0, 0, 0}));
    EXPECT_EQ(matrixOf(set, 2), (std::vector<std::int64_t>{8, 0, 0, 0, 0, 0, 0, 2, 2}));
    EXPECT_EQ(matrixOf(set, 3), (std::vector<std::int64_t>{12, 0, 0, 0, 4, 0, 0, 0, 0}));
    EXPECT_EQ(matrixOf(set, 4), (std::vector<std::int64_t>(9, 0)));
    EXPECT_EQ(matrixOf(set, 5), (std::vector<std::int64_t>{13, 3, 0, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(matrixOf(set.imageConfusion(2)), matrixOf(set, 2));
    EXPECT_EQ(matrixOf(set.totals()), (std::vector<std::int64_t>{57, 3, 0, 0, 8, 4, 0, 2, 2}));

    const SegmentationMetrics metrics = set.metrics();
    ASSERT_EQ(metrics.perClass.size(), 3u);
    EXPECT_EQ(metrics.perClass[1].name, "cat");
    EXPECT_DOUBLE_EQ(*metrics.perClass[0].iou, 57.0 / 60.0);
    EXPECT_DOUBLE_EQ(*metrics.perClass[1].iou, 8.0 / 17.0);
    EXPECT_DOUBLE_EQ(*metrics.perClass[2].iou, 2.0 / 8.0);
    EXPECT_EQ(metrics.pixels, 76);

    // Per-image IoU (tolerance 1e-12: sums of fractions).
    EXPECT_NEAR(*set.imageMeanIou(1), 1.0 / 3.0, 1e-12);
    EXPECT_NEAR(*set.imageMeanIou(2), 0.5, 1e-12);
    EXPECT_NEAR(*set.imageMeanIou(5), (13.0 / 16.0) / 2.0, 1e-12);
    EXPECT_FALSE(set.imageMeanIou(4).has_value());
    EXPECT_DOUBLE_EQ(*set.imageClassIou(2, 2), 0.5);
    EXPECT_DOUBLE_EQ(*set.imageClassIou(2, 1), 0.0);
    EXPECT_FALSE(set.imageClassIou(0, 2).has_value());  // no dog in ground truth or prediction
    EXPECT_THROW(set.imageClassIou(0, 3), Error);
    EXPECT_THROW(set.count(6, 0, 0), Error);

    // Sizes, ids and the masks as they went in (void kept in the ground truth).
    const auto hand = handImages();
    for (std::size_t i = 0; i < hand.size(); ++i) {
        EXPECT_EQ(set.image(i).id, hand[i].id);
        EXPECT_EQ(set.image(i).width, 4);
        EXPECT_EQ(set.image(i).height, 4);
        EXPECT_TRUE(sameMat(set.loadPrediction(i), hand[i].prediction)) << i;
        EXPECT_TRUE(sameMat(set.loadGroundTruth(i), hand[i].groundTruth)) << i;
    }
    // No image file was recorded for these.
    EXPECT_THROW(set.loadImage(0), Error);
}

TEST(Predictions, RankingsFiltersAndCellClickThroughAreExact) {
    segscope::test::TempDir dir;
    const PredictionSet set = writeHandSet(dir / "set");
    // mIoU: a 1/3, f 13/32, e 1/2, b = c = 1 (tie: id b before c), d undefined (always last).
    EXPECT_EQ(set.rankByMeanIou(SortOrder::Ascending), (Indices{1, 5, 2, 3, 0, 4}));
    EXPECT_EQ(set.rankByMeanIou(SortOrder::Descending), (Indices{3, 0, 2, 5, 1, 4}));

    // Cat IoU: union > 0 in c (1), a (0), e (0), b (1), f (0); d has none.
    EXPECT_EQ(set.rankByClassIou(1, SortOrder::Ascending), (Indices{1, 2, 5, 3, 0}));
    EXPECT_EQ(set.rankByClassIou(1, SortOrder::Descending), (Indices{3, 0, 1, 2, 5}));
    // Dog IoU: a (0, only predicted), e (0.5).
    EXPECT_EQ(set.rankByClassIou(2, SortOrder::Ascending), (Indices{1, 2}));
    EXPECT_EQ(set.rankByClassIou(2, SortOrder::Descending), (Indices{2, 1}));
    // Background IoU: f 13/16, then a, b, c, e at 1.
    EXPECT_EQ(set.rankByClassIou(0, SortOrder::Ascending), (Indices{5, 1, 3, 0, 2}));

    // Ground truth contains the class, in index order.
    EXPECT_EQ(set.containingClass(0), (Indices{0, 1, 2, 3, 5}));
    EXPECT_EQ(set.containingClass(1), (Indices{0, 1, 3}));
    EXPECT_EQ(set.containingClass(2), (Indices{2}));

    // Confused pixels = FN + FP of the class in the image.
    EXPECT_EQ(set.confusedPixels(1, 1), 4);  // cat predicted as dog
    EXPECT_EQ(set.confusedPixels(2, 1), 2);  // dog predicted as cat
    EXPECT_EQ(set.confusedPixels(5, 1), 3);  // background predicted as cat
    EXPECT_EQ(set.confusedPixels(0, 1), 0);
    EXPECT_EQ(set.confusedPixels(1, 2), 4);
    EXPECT_EQ(set.mostConfused(1), (Indices{1, 5, 2}));
    EXPECT_EQ(set.mostConfused(2), (Indices{1, 2}));
    EXPECT_EQ(set.mostConfused(0), (Indices{5}));

    // Cell (i, j): images with M[i][j] > 0 by that count descending, ties by id.
    EXPECT_EQ(set.imagesForCell(1, 2), (Indices{1}));
    EXPECT_EQ(set.imagesForCell(2, 1), (Indices{2}));
    EXPECT_EQ(set.imagesForCell(0, 1), (Indices{5}));
    EXPECT_EQ(set.imagesForCell(0, 0), (Indices{5, 1, 3, 0, 2}));  // 13, 12 (a, b, c), 8
    EXPECT_EQ(set.imagesForCell(1, 1), (Indices{3, 0}));
    EXPECT_EQ(set.imagesForCell(2, 0), (Indices{}));
    EXPECT_THROW(set.imagesForCell(3, 0), Error);
    EXPECT_THROW(set.mostConfused(-1), Error);
}

TEST(Predictions, InMemorySetChecksItsCounts) {
    std::vector<PredictionImage> images(2);
    images[0].id = "x";
    images[1].id = "y";
    const std::vector<std::int64_t> counts = {1, 2, 3, 4, 0, 0, 0, 5};
    const PredictionSet set(handKey(), {{"a", {}}, {"b", {}}}, images, counts);
    EXPECT_EQ(matrixOf(set.totals()), (std::vector<std::int64_t>{1, 2, 3, 9}));
    EXPECT_EQ(set.imagesForCell(1, 1), (Indices{1, 0}));  // 5, 4
    EXPECT_THROW(PredictionSet(handKey(), {{"a", {}}, {"b", {}}}, images, {1, 2, 3}), Error);
    EXPECT_THROW(PredictionSet(handKey(), {{"a", {}}, {"b", {}}}, images, {1, 2, 3, 4, 0, 0, 0, -5}), Error);
}

TEST(Predictions, ErrorMapCellMaskAndColours) {
    // Image "e" for dog (2): TP at (1,0),(1,1); FN at (2,0),(2,1); the void row Ignored.
    const auto hand = handImages();
    const cv::Mat dog = errorMap(hand[2].prediction, hand[2].groundTruth, 2);
    const auto O = std::uint8_t(PixelOutcome::Other), T = std::uint8_t(PixelOutcome::TruePositive),
               P = std::uint8_t(PixelOutcome::FalsePositive), N = std::uint8_t(PixelOutcome::FalseNegative),
               I = std::uint8_t(PixelOutcome::Ignored);
    auto grid = [](std::initializer_list<std::initializer_list<std::uint8_t>> rows) {
        cv::Mat out(int(rows.size()), int(rows.begin()->size()), CV_8UC1);
        int y = 0;
        for (const auto& row : rows) {
            int x = 0;
            for (std::uint8_t v : row) out.at<std::uint8_t>(y, x++) = v;
            ++y;
        }
        return out;
    };
    EXPECT_TRUE(sameMat(dog, grid({{O, O, O, O}, {T, T, O, O}, {N, N, O, O}, {I, I, I, I}})));
    // For cat: the dog pixels predicted cat are FP; the void row predicted cat stays Ignored.
    const cv::Mat cat = errorMap(hand[2].prediction, hand[2].groundTruth, 1);
    EXPECT_TRUE(sameMat(cat, grid({{O, O, O, O}, {O, O, O, O}, {P, P, O, O}, {I, I, I, I}})));
    // Image "a" for dog: the whole cat block is FP.
    const cv::Mat dogOnA = errorMap(hand[1].prediction, hand[1].groundTruth, 2);
    EXPECT_TRUE(sameMat(dogOnA, grid({{O, O, O, O}, {O, P, P, O}, {O, P, P, O}, {O, O, O, O}})));

    const cv::Mat cell = cellMask(hand[2].prediction, hand[2].groundTruth, 2, 1);
    EXPECT_TRUE(sameMat(cell, grid({{0, 0, 0, 0}, {0, 0, 0, 0}, {255, 255, 0, 0}, {0, 0, 0, 0}})));

    EXPECT_EQ(outcomeColor(PixelOutcome::Other), (Rgb{0, 0, 0}));
    EXPECT_EQ(outcomeColor(PixelOutcome::TruePositive), (Rgb{0, 200, 0}));
    EXPECT_EQ(outcomeColor(PixelOutcome::FalsePositive), (Rgb{230, 0, 0}));
    EXPECT_EQ(outcomeColor(PixelOutcome::FalseNegative), (Rgb{0, 90, 255}));
    EXPECT_EQ(outcomeColor(PixelOutcome::Ignored), (Rgb{255, 255, 255}));
    const cv::Mat colored = colorErrorMap(dog);
    ASSERT_EQ(colored.type(), CV_8UC3);
    EXPECT_EQ(colored.at<cv::Vec3b>(1, 0), cv::Vec3b(0, 200, 0));
    EXPECT_EQ(colored.at<cv::Vec3b>(2, 1), cv::Vec3b(0, 90, 255));
    EXPECT_EQ(colored.at<cv::Vec3b>(3, 2), cv::Vec3b(255, 255, 255));
    EXPECT_EQ(colored.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));

    // Overlay: Other keeps the image; the rest is (1 - a) * image + a * colour, rounded half up.
    const cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar(100, 50, 11));
    const cv::Mat over = overlayErrorMap(rgb, dog, 0.5);
    EXPECT_EQ(over.at<cv::Vec3b>(0, 0), cv::Vec3b(100, 50, 11));
    EXPECT_EQ(over.at<cv::Vec3b>(1, 0), cv::Vec3b(50, 125, 6));   // TP: (50, 125, 5.5 -> 6)
    EXPECT_EQ(over.at<cv::Vec3b>(2, 0), cv::Vec3b(50, 70, 133));  // FN: (50, 70, 133)

    EXPECT_THROW(errorMap(hand[0].prediction, labels({"00", "00"}), 1), Error);
    EXPECT_THROW(errorMap(hand[0].prediction, hand[0].groundTruth, 255), Error);
    EXPECT_THROW(colorErrorMap(grid({{5}})), Error);
}

TEST(Predictions, CacheReopensOnlyWithTheSameKeyAndNeverHalfWritten) {
    segscope::test::TempDir dir;
    const fs::path folder = dir / "predictions" / "epoch_001__val";
    EXPECT_EQ(openPredictions(folder, handKey()).state, CacheState::Missing);
    writeHandSet(folder);
    EXPECT_EQ(folderEntries(dir / "predictions"), (std::vector<fs::path>{"epoch_001__val"}));

    const CacheLookup valid = openPredictions(folder, handKey());
    ASSERT_EQ(valid.state, CacheState::Valid) << valid.reason;
    ASSERT_TRUE(valid.set.has_value());
    EXPECT_EQ(valid.set->key(), handKey());
    EXPECT_EQ(valid.set->folder(), folder);
    EXPECT_EQ(valid.set->classInfo()[1].color, (Rgb{200, 0, 0}));
    const PredictionSet written = writeHandSet(dir / "again");
    for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(matrixOf(*valid.set, i), matrixOf(written, i));
    EXPECT_EQ(valid.set->imagesForCell(0, 0), (Indices{5, 1, 3, 0, 2}));
    EXPECT_TRUE(sameMat(valid.set->loadGroundTruth(2), handImages()[2].groundTruth));

    // Every key field matters.
    PredictionKey touched = handKey();
    touched.checkpointModifiedNs += 1;
    const CacheLookup stale = openPredictions(folder, touched);
    EXPECT_EQ(stale.state, CacheState::Stale);
    EXPECT_FALSE(stale.set.has_value());
    EXPECT_NE(stale.reason.find("checkpoint file changed"), std::string::npos) << stale.reason;
    EXPECT_EQ(openPredictions(folder, handKey("train")).state, CacheState::Stale);
    PredictionKey resized = handKey();
    resized.width = 8;
    EXPECT_EQ(openPredictions(folder, resized).state, CacheState::Stale);

    // A writer that never commits leaves nothing, and an earlier cache stays valid.
    {
        PredictionCacheWriter writer(folder, handKey(), petClasses());
        writer.add("c", handImages()[0].prediction, handImages()[0].groundTruth);
        EXPECT_EQ(folderEntries(dir / "predictions").size(), 2u);  // the cache and the partial folder
    }
    EXPECT_EQ(folderEntries(dir / "predictions"), (std::vector<fs::path>{"epoch_001__val"}));
    EXPECT_EQ(openPredictions(folder, handKey()).state, CacheState::Valid);

    // A commit replaces the earlier cache.
    {
        PredictionCacheWriter writer(folder, handKey(), petClasses());
        writer.add("only", handImages()[1].prediction, handImages()[1].groundTruth);
        const PredictionSet replaced = writer.commit();
        EXPECT_EQ(replaced.size(), 1u);
    }
    const CacheLookup replaced = openPredictions(folder, handKey());
    ASSERT_EQ(replaced.state, CacheState::Valid);
    EXPECT_EQ(replaced.set->size(), 1u);
    EXPECT_EQ(replaced.set->image(0).id, "only");

    // A corrupt confusion file is stale, not an exception.
    std::ofstream(folder / "confusion.safetensors") << "garbage";
    const CacheLookup corrupt = openPredictions(folder, handKey());
    EXPECT_EQ(corrupt.state, CacheState::Stale);
    EXPECT_FALSE(corrupt.reason.empty());

    // The writer checks labels.
    PredictionCacheWriter writer(dir / "predictions" / "bad", handKey(), petClasses());
    EXPECT_THROW(writer.add("p", labels({"03"}), labels({"00"})), Error);
    EXPECT_THROW(writer.add("g", labels({"00"}), labels({"07"})), Error);
    EXPECT_THROW(writer.add("s", labels({"00"}), labels({"0", "0"})), Error);
    EXPECT_THROW(PredictionCacheWriter(dir / "p2", handKey(), {{"only", {}}}), Error);  // 1 class, key says 3

    EXPECT_EQ(predictionFolder("/w/runs/r1", "/w/runs/r1/checkpoints/epoch_002.safetensors", "val"),
              fs::path("/w/runs/r1/predictions/epoch_002__val"));
    EXPECT_EQ(predictionFolder("/w/runs/r1", "/x/best.safetensors", "sub/set"),
              fs::path("/w/runs/r1/predictions/best__sub_set"));
}

namespace {

// A run recorded in a workspace with a randomly initialised checkpoint: no training needed.
struct TinyRun {
    std::unique_ptr<RunStore> store;
    std::string runId;
    fs::path folder;
    fs::path checkpoint;
};

TinyRun makeRun(const fs::path& workspace, const Experiment& experiment, int classes) {
    TinyRun run;
    run.store = RunStore::open(workspace);
    NewRun created;
    created.name = "tiny";
    created.model = experiment.model.id;
    created.experimentJson = toJson(experiment).dump();
    created.status = RunStatus::Finished;
    run.runId = run.store->createRun(created);
    run.folder = run.store->run(run.runId)->folder;
    torch::manual_seed(3);
    const auto model = createModel(experiment.model.id, classes);
    run.checkpoint = run.folder / "checkpoints" / "epoch_001.safetensors";
    fs::create_directories(run.checkpoint.parent_path());
    writeSafetensors(run.checkpoint, stateDict(*model), {{"classes", std::to_string(classes)}});
    CheckpointRecord record;
    record.epoch = 1;
    record.step = 4;
    record.path = run.checkpoint;
    run.store->addCheckpoint(run.runId, record);
    return run;
}

// The shared tiny experiment on a dataset of `source`, one epoch of batch 2 (never trained here:
// makeRun writes a random checkpoint).
Experiment tinyExperiment(DataSource source, const fs::path& root) {
    Experiment e = segscope::test::tinyExperiment(root);
    e.dataset.kind = source;
    e.training.epochs = 1;
    e.training.batchSize = 2;
    return e;
}

}  // namespace

// One run, every predictSplit path (ctest runs each TEST in its own process).
TEST(Predictions, PredictSplitCachesReopensCancelsAndMatchesEvaluate) {
    segscope::test::TempDir dir;
    DemoOptions demo;
    demo.images = 12;
    demo.width = 72;
    demo.height = 56;  // not the transform size: predictions must come back at this size
    writeDemoDataset(dir / "demo", demo);
    const Experiment experiment = tinyExperiment(DataSource::Voc, dir / "demo");
    TinyRun tiny = makeRun(dir / "ws", experiment, 5);
    const LoadedRun run = loadRun(*tiny.store, tiny.runId, "latest", "cpu");
    const auto dataset = Dataset::open(datasetSpec(experiment, "val"));
    ASSERT_EQ(dataset->size(), 3u);

    std::vector<std::pair<std::size_t, std::size_t>> progress;
    PredictionOptions options;
    options.progress = [&](std::size_t done, std::size_t total) { progress.emplace_back(done, total); };
    const SplitPrediction first = predictSplit(run, tiny.folder, "val", options);
    ASSERT_TRUE(first.set.has_value());
    EXPECT_FALSE(first.fromCache);
    EXPECT_FALSE(first.cancelled);
    EXPECT_EQ(first.folder, tiny.folder / "predictions" / "epoch_001__val");
    EXPECT_EQ(progress, (std::vector<std::pair<std::size_t, std::size_t>>{{2, 3}, {3, 3}}));  // batches of 2
    const PredictionSet& set = *first.set;
    ASSERT_EQ(set.size(), 3u);
    EXPECT_EQ(set.classNames(), (std::vector<std::string>{"background", "circle", "square", "triangle", "cross"}));
    EXPECT_EQ(set.classInfo()[1].color, demoClasses()[1].color);

    // The same figures as evaluate() at the original resolution, image by image.
    EvaluationOptions evalOptions;
    evalOptions.resolution = EvalResolution::Original;
    const Evaluation evaluation = evaluate(*run.model, dataset, transformConfig(experiment), 5, 2, 1, evalOptions);
    ASSERT_EQ(evaluation.imageIds.size(), 3u);
    const SegmentationMetrics metrics = set.metrics();
    EXPECT_EQ(metrics.pixels, evaluation.metrics.pixels);
    EXPECT_EQ(metrics.mIoU, evaluation.metrics.mIoU);
    EXPECT_EQ(metrics.aAcc, evaluation.metrics.aAcc);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(set.image(i).id, evaluation.imageIds[i]);
        EXPECT_EQ(set.image(i).id, dataset->samples()[i].id);
        EXPECT_EQ(set.image(i).image, fs::absolute(dataset->samples()[i].image).lexically_normal());
        EXPECT_EQ(set.imageMeanIou(i), evaluation.images[i].meanIou) << i;
        EXPECT_EQ(set.imageIou(i).perClass, evaluation.images[i].perClass) << i;
        // Masks on disk at the original size, consistent with the stored matrix.
        const cv::Mat prediction = set.loadPrediction(i);
        const cv::Mat truth = set.loadGroundTruth(i);
        ASSERT_EQ(prediction.cols, 72);
        ASSERT_EQ(prediction.rows, 56);
        EXPECT_TRUE(sameMat(truth, dataset->load(i).label));
        ConfusionMatrix rescored(5);
        rescored.update(prediction, truth);
        EXPECT_EQ(matrixOf(rescored), matrixOf(set, i));
        EXPECT_EQ(set.loadImage(i).size(), cv::Size(72, 56));
    }
    // A batch of one gives exactly predictImage()'s labels.
    {
        PredictionOptions single;
        single.batchSize = 1;
        single.force = true;
        const SplitPrediction again = predictSplit(run, tiny.folder, "val", single);
        ASSERT_TRUE(again.set.has_value());
        EXPECT_FALSE(again.fromCache);
        for (std::size_t i = 0; i < 3; ++i) {
            const cv::Mat expected =
                predictImage(*run.model, dataset->load(i).image, transformConfig(experiment), run.device);
            EXPECT_TRUE(sameMat(again.set->loadPrediction(i), expected)) << i;
        }
    }

    // Reopening: no prediction, same figures; the store-only key (no model built) matches.
    const PredictionKey storeKey = predictionKey(*tiny.store, tiny.runId, "latest", "val");
    EXPECT_EQ(storeKey, predictionKey(run, "val"));
    progress.clear();
    const SplitPrediction reopened = predictSplit(run, tiny.folder, "val", options);
    ASSERT_TRUE(reopened.set.has_value());
    EXPECT_TRUE(reopened.fromCache);
    EXPECT_TRUE(progress.empty());
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(matrixOf(*reopened.set, i), matrixOf(set, i));

    // Cancelled before the first batch: nothing written, the valid cache untouched.
    std::atomic<bool> cancel{true};
    PredictionOptions cancelled;
    cancelled.cancel = &cancel;
    cancelled.force = true;
    const SplitPrediction stopped = predictSplit(run, tiny.folder, "val", cancelled);
    EXPECT_TRUE(stopped.cancelled);
    EXPECT_FALSE(stopped.set.has_value());
    EXPECT_EQ(openPredictions(first.folder, storeKey).state, CacheState::Valid);
    // Cancelled after the first batch of a new split: no cache appears, no partial folder is left.
    cancel = false;
    cancelled.progress = [&](std::size_t, std::size_t) { cancel = true; };
    const SplitPrediction stoppedTrain = predictSplit(run, tiny.folder, "train", cancelled);
    EXPECT_TRUE(stoppedTrain.cancelled);
    EXPECT_EQ(openPredictions(stoppedTrain.folder, predictionKey(run, "train")).state, CacheState::Missing);
    EXPECT_EQ(folderEntries(tiny.folder / "predictions"), (std::vector<fs::path>{"epoch_001__val"}));

    // A rewritten checkpoint makes the cache stale.
    fs::last_write_time(tiny.checkpoint, fs::last_write_time(tiny.checkpoint) + std::chrono::seconds(5));
    const CacheLookup stale = openPredictions(first.folder, predictionKey(*tiny.store, tiny.runId, "latest", "val"));
    EXPECT_EQ(stale.state, CacheState::Stale);
    EXPECT_NE(stale.reason.find("checkpoint file changed"), std::string::npos) << stale.reason;

    // The CLI: predicts (stale), then reuses; both report the library's metrics.
    const std::string args = "--threads 1 predict-split --run " + tiny.runId + " --workspace '" +
                             (dir / "ws").string() + "' --checkpoint latest --json";
    const auto predicted = segscope::test::runCli(args);
    ASSERT_EQ(predicted.exitCode, 0) << predicted.output;
    const json made = json::parse(predicted.output);
    EXPECT_EQ(made.at("cached"), false);
    EXPECT_EQ(made.at("images"), 3);
    EXPECT_EQ(made.at("split"), "val");
    EXPECT_EQ(made.at("folder"), first.folder.string());
    EXPECT_NEAR(made.at("metrics").at("mIoU").get<double>(), *metrics.mIoU, 1e-12);
    const auto reused = segscope::test::runCli(args);
    ASSERT_EQ(reused.exitCode, 0) << reused.output;
    EXPECT_EQ(json::parse(reused.output).at("cached"), true);
    EXPECT_EQ(json::parse(reused.output).at("metrics"), made.at("metrics"));
    const auto text =
        segscope::test::runCli("predict-split --run " + tiny.runId + " --workspace '" + (dir / "ws").string() + "'");
    ASSERT_EQ(text.exitCode, 0);
    EXPECT_NE(text.output.find("split val (3 images): reused the cache"), std::string::npos) << text.output;
    EXPECT_NE(text.output.find("predictions: " + first.folder.string()), std::string::npos) << text.output;
    const auto missing =
        segscope::test::runCli("predict-split --run nope --workspace '" + (dir / "ws").string() + "' 2>&1");
    EXPECT_EQ(missing.exitCode, 1);
    EXPECT_NE(missing.output.find("no run 'nope'"), std::string::npos) << missing.output;
}

// A folder dataset of images of different, non-square sizes with its own class table.
TEST(Predictions, PredictSplitOnAFolderDatasetKeepsSizesNamesAndColours) {
    segscope::test::TempDir dir;
    const fs::path root = dir / "data";
    fs::create_directories(root / "images");
    fs::create_directories(root / "masks");
    fs::create_directories(root / "splits");
    writeClassesFile(root / "classes.txt", {{"sky", {10, 20, 30}}, {"tree", {40, 50, 60}}, {"road", {70, 80, 90}}});
    const std::vector<std::pair<std::string, cv::Size>> files = {{"one", {40, 30}}, {"two", {50, 20}}};
    for (const auto& [id, size] : files) {
        cv::Mat rgb(size, CV_8UC3, cv::Scalar(30, 120, 200));
        writeImageRgb(root / "images" / (id + ".png"), rgb);
        cv::Mat mask(size, CV_8UC1, cv::Scalar(0));
        mask(cv::Rect(0, 0, size.width / 2, size.height)).setTo(2);
        mask.at<std::uint8_t>(0, size.width - 1) = 255;
        writeGrayPng(root / "masks" / (id + ".png"), mask);
    }
    std::ofstream(root / "splits" / "test.txt") << "two\none\n";
    const Experiment experiment = tinyExperiment(DataSource::Folder, root);
    TinyRun tiny = makeRun(dir / "ws", experiment, 3);
    const LoadedRun run = loadRun(*tiny.store, tiny.runId, "latest", "cpu");
    const SplitPrediction result = predictSplit(run, tiny.folder, "test");
    ASSERT_TRUE(result.set.has_value());
    const PredictionSet& set = *result.set;
    EXPECT_EQ(result.folder, tiny.folder / "predictions" / "epoch_001__test");
    EXPECT_EQ(set.classNames(), (std::vector<std::string>{"sky", "tree", "road"}));
    EXPECT_EQ(set.classInfo()[2].color, (Rgb{70, 80, 90}));
    ASSERT_EQ(set.size(), 2u);
    EXPECT_EQ(set.image(0).id, "two");
    EXPECT_EQ(set.image(0).width, 50);
    EXPECT_EQ(set.image(0).height, 20);
    EXPECT_EQ(set.image(1).id, "one");
    EXPECT_EQ(set.loadPrediction(1).size(), cv::Size(40, 30));
    // "two" (50x20): the left half road (500 pixels), the right half sky less one void pixel.
    std::int64_t sky = 0, road = 0, tree = 0;
    for (int p = 0; p < 3; ++p) {
        sky += set.count(0, 0, p);
        tree += set.count(0, 1, p);
        road += set.count(0, 2, p);
    }
    EXPECT_EQ(sky, 499);
    EXPECT_EQ(tree, 0);
    EXPECT_EQ(road, 500);
    EXPECT_EQ(set.containingClass(2), (Indices{0, 1}));
    EXPECT_EQ(set.containingClass(1), (Indices{}));
    EXPECT_EQ(set.loadGroundTruth(1).at<std::uint8_t>(0, 39), 255);
}

// Oxford-IIIT Pets, trimap and binary: the dataset's class table, and border pixels scored as
// class 2 (trimap) or ignored (binary).
TEST(Predictions, PredictSplitOnPetsTrimapAndBinary) {
    segscope::test::TempDir dir;
    const fs::path root = dir / "pets";
    fs::create_directories(root / "images");
    fs::create_directories(root / "annotations" / "trimaps");
    // 30x20: left third pet (1), middle third border (3), right third background (2).
    cv::Mat trimap(20, 30, CV_8UC1, cv::Scalar(2));
    trimap(cv::Rect(0, 0, 10, 20)).setTo(1);
    trimap(cv::Rect(10, 0, 10, 20)).setTo(3);
    writeGrayPng(root / "annotations" / "trimaps" / "Abyssinian_1.png", trimap);
    writeImageRgb(root / "images" / "Abyssinian_1.jpg", cv::Mat(20, 30, CV_8UC3, cv::Scalar(90, 60, 30)));
    std::ofstream(root / "annotations" / "test.txt") << "Abyssinian_1 1 1 1\n";

    for (const PetsMode mode : {PetsMode::Trimap, PetsMode::Binary}) {
        SCOPED_TRACE(petsModeName(mode));
        Experiment experiment = tinyExperiment(DataSource::Pets, root);
        experiment.dataset.petsMode = mode;
        const int classes = mode == PetsMode::Trimap ? 3 : 2;
        TinyRun tiny = makeRun(dir / (std::string("ws-") + petsModeName(mode)), experiment, classes);
        const LoadedRun run = loadRun(*tiny.store, tiny.runId, "latest", "cpu");
        const SplitPrediction result = predictSplit(run, tiny.folder, "test");
        ASSERT_TRUE(result.set.has_value());
        const PredictionSet& set = *result.set;
        ASSERT_EQ(set.size(), 1u);
        EXPECT_EQ(set.key().petsMode, mode);
        std::vector<std::int64_t> rows(std::size_t(classes), 0);
        for (int t = 0; t < classes; ++t)
            for (int p = 0; p < classes; ++p) rows[std::size_t(t)] += set.count(0, t, p);
        const cv::Mat truth = set.loadGroundTruth(0);
        if (mode == PetsMode::Trimap) {
            EXPECT_EQ(set.classNames(), (std::vector<std::string>{"background", "pet", "border"}));
            EXPECT_EQ(rows, (std::vector<std::int64_t>{200, 200, 200}));
            EXPECT_EQ(truth.at<std::uint8_t>(5, 15), 2);
        } else {
            EXPECT_EQ(set.classNames(), (std::vector<std::string>{"background", "pet"}));
            EXPECT_EQ(rows, (std::vector<std::int64_t>{200, 200}));
            EXPECT_EQ(truth.at<std::uint8_t>(5, 15), 255);
        }
        EXPECT_EQ(truth.at<std::uint8_t>(5, 5), 1);
        EXPECT_EQ(truth.at<std::uint8_t>(5, 25), 0);
        EXPECT_EQ(set.loadPrediction(0).size(), cv::Size(30, 20));
    }
}
