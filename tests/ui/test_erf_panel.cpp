// Offscreen tests of the ERF tab: the heatmap colouring, computing two sources side by side in
// the worker, cancel, and the slider over ERF snapshots recorded during training.
#include "segscope/core/analysis/erf.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/erf_panel.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <QLabel>
#include <QSignalSpy>
#include <QSlider>
#include <QTest>
#include <nlohmann/json.hpp>

using namespace segscope;

namespace {

core::Experiment demoExperiment(const std::filesystem::path& demo) {
    core::Experiment e;
    e.dataset.kind = core::DataSource::Voc;
    e.dataset.root = demo;
    e.transforms.height = e.transforms.width = 32;
    e.runtime.device = "cpu";
    e.runtime.seed = 3;
    return e;
}

}  // namespace

TEST(ErfPanel, HeatmapIsViridisOfTheMapNormalisedToItsMaximum) {
    ui::ErfStageView stage;
    stage.width = 3;
    stage.height = 2;
    stage.map = {0.0f, 2.0f, 4.0f, 1.0f, 0.0f, 0.0f};
    const QImage linear = ui::renderErfHeatmap(stage, 0.0);
    ASSERT_EQ(linear.size(), QSize(3, 2));
    // OpenCV's viridis: 0 -> (68, 1, 84), 1 -> (253, 231, 37).
    EXPECT_EQ(QColor(linear.pixel(0, 0)), QColor(68, 1, 84));
    EXPECT_EQ(QColor(linear.pixel(2, 0)), QColor(253, 231, 37));
    // Half the maximum is the middle of the table; with log scale k=100 it is brighter:
    // log1p(50) / log1p(100) = 0.852.
    const QImage logScaled = ui::renderErfHeatmap(stage, 100.0);
    EXPECT_EQ(QColor(logScaled.pixel(2, 0)), QColor(253, 231, 37));
    EXPECT_LT(QColor(linear.pixel(1, 0)).green(), QColor(logScaled.pixel(1, 0)).green());
    // A malformed view renders nothing rather than reading out of bounds.
    stage.map.pop_back();
    EXPECT_TRUE(ui::renderErfHeatmap(stage, 0.0).isNull());
}

TEST(ErfPanel, ComputesTwoUntrainedModelsSideBySideInTheWorker) {
    test::TempDir dir;
    test::writeDemo(dir / "demo", 12, 40);
    const core::Experiment experiment = demoExperiment(dir / "demo");
    ui::ErfPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.setExperimentProvider([experiment] { return std::optional<core::Experiment>(experiment); });
    ui::ErfSource cnn, transformer;
    cnn.kind = transformer.kind = ui::ErfSource::Kind::UntrainedModel;
    cnn.modelId = QStringLiteral("unet-resnet18");
    transformer.modelId = QStringLiteral("segformer-b0");
    panel.setSources({cnn, transformer});
    ASSERT_EQ(panel.sources().size(), 2u);
    EXPECT_EQ(panel.sources()[1].modelId, QStringLiteral("segformer-b0"));
    panel.setImages(2);
    QSignalSpy finished(&panel, &ui::ErfPanel::computationFinished);
    ASSERT_TRUE(panel.compute());
    EXPECT_TRUE(panel.busy());
    EXPECT_FALSE(panel.compute()) << "one computation at a time";
    ASSERT_TRUE(finished.wait(120000));
    EXPECT_EQ(finished.at(0).at(0).toString(), QString()) << finished.at(0).at(0).toString().toStdString();
    EXPECT_FALSE(panel.busy());
    ASSERT_EQ(panel.views().size(), 2u);
    for (std::size_t r = 0; r < 2; ++r) {
        const ui::ErfView& view = panel.views()[r];
        EXPECT_EQ(view.images, 2);
        ASSERT_EQ(view.stages.size(), 5);
        EXPECT_EQ(view.stages[0].stage, QStringLiteral("stage1"));
        EXPECT_EQ(view.stages[4].stage, QStringLiteral("decoder"));
        EXPECT_EQ(view.stages[0].width, 32);
        EXPECT_EQ(view.sample.size(), QSize(32, 32));
        EXPECT_NE(panel.findChild<QWidget*>(QStringLiteral("erf-%1-stage4").arg(r)), nullptr);
    }
    // The maps are those of the core on the same untrained model (same seed, same images).
    torch::manual_seed(experiment.runtime.seed);
    auto model = core::createModel("segformer-b0", 5);
    const auto dataset = core::Dataset::open(core::datasetSpec(experiment, "val"));
    core::ErfOptions options;
    options.batchSize = 4;
    const core::ErfResult expected = core::computeErf(*model, dataset, core::transformConfig(experiment), 2, options);
    const ui::ErfStageView& stage2 = panel.views()[1].stages[1];
    const torch::Tensor map = expected.find("stage2")->map;
    ASSERT_EQ(stage2.map.size(), map.numel());
    const double scale = map.abs().max().item<double>();
    double worst = 0;
    for (int i = 0; i < stage2.map.size(); ++i)
        worst = std::max(worst, std::abs(double(stage2.map[i]) - map.view(-1)[i].item<double>()));
    EXPECT_LT(worst, 1e-4 * scale);

    // Export writes the grid as a PNG.
    const QString png = QString::fromStdString((dir / "erf.png").string());
    ASSERT_TRUE(panel.exportPng(png));
    EXPECT_FALSE(QImage(png).isNull());
}

TEST(ErfPanel, CancelStopsTheComputationAndKeepsThePanelUsable) {
    test::TempDir dir;
    test::writeDemo(dir / "demo", 12, 40);
    const core::Experiment experiment = demoExperiment(dir / "demo");
    ui::ErfPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.setExperimentProvider([experiment] { return std::optional<core::Experiment>(experiment); });
    ui::ErfSource source;
    source.kind = ui::ErfSource::Kind::UntrainedModel;
    source.modelId = QStringLiteral("unet-resnet18");
    panel.setSources({source});
    panel.setImages(10000);
    QSignalSpy finished(&panel, &ui::ErfPanel::computationFinished);
    ASSERT_TRUE(panel.compute());
    panel.cancel();
    ASSERT_TRUE(finished.wait(120000));
    EXPECT_EQ(finished.at(0).at(0).toString(), QStringLiteral("cancelled"));
    EXPECT_TRUE(panel.views().at(0).stages.isEmpty());
    EXPECT_FALSE(panel.busy());
}

TEST(ErfPanel, SliderStepsThroughSnapshotsRecordedDuringTraining) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    core::NewRun run;
    run.name = "with-erf";
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const std::string id = store->createRun(run);
    const auto folder = store->run(id)->folder;
    for (int epoch : {0, 2, 4}) {
        core::ErfResult result;
        result.images = 5;
        core::StageErf stage;
        stage.stage = "stage1";
        stage.map = torch::full({4, 4}, float(epoch + 1));
        core::computeErfStatistics(stage);
        result.stages.push_back(stage);
        core::saveErf(folder / "erf" / core::erfSnapshotName(epoch, epoch * 10), result, "segformer-b0");
    }
    ui::ErfPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.showSnapshots(QString::fromStdString(id));
    ASSERT_EQ(panel.snapshotCount(), 3);
    panel.setSnapshotIndex(1);
    ASSERT_EQ(panel.views().size(), 1u);
    EXPECT_EQ(panel.views()[0].label, QStringLiteral("segformer-b0 · epoch 2 (step 20)"));
    EXPECT_EQ(panel.views()[0].images, 5);
    ASSERT_EQ(panel.views()[0].stages.size(), 1);
    EXPECT_FLOAT_EQ(panel.views()[0].stages[0].map[7], 3.0f);
    // A new snapshot while the run trains extends the slider.
    core::ErfResult later;
    later.images = 5;
    core::StageErf stage;
    stage.stage = "stage1";
    stage.map = torch::full({4, 4}, 9.0f);
    core::computeErfStatistics(stage);
    later.stages.push_back(stage);
    core::saveErf(folder / "erf" / core::erfSnapshotName(6, 60), later, "segformer-b0");
    panel.snapshotRecorded(QString::fromStdString(id));
    EXPECT_EQ(panel.snapshotCount(), 4);
}

TEST(ErfPanel, SnapshotSliderIsHiddenWithoutSnapshotsAndShownWithTwo) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    core::NewRun run;
    run.name = "no-erf";
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const std::string without = store->createRun(run);
    run.name = "two-erf";
    const std::string with = store->createRun(run);
    for (int epoch : {1, 2}) {
        core::ErfResult result;
        result.images = 2;
        core::StageErf stage;
        stage.stage = "stage1";
        stage.map = torch::full({4, 4}, 1.0f);
        core::computeErfStatistics(stage);
        result.stages.push_back(stage);
        core::saveErf(store->run(with)->folder / "erf" / core::erfSnapshotName(epoch, epoch * 10), result,
                      "segformer-b0");
    }
    ui::ErfPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.show();
    panel.showSnapshots(QString::fromStdString(without));
    EXPECT_EQ(panel.snapshotCount(), 0);
    EXPECT_FALSE(panel.snapshotSlider()->isVisible());
    EXPECT_FALSE(panel.snapshotLabel()->isVisible());
    panel.showSnapshots(QString::fromStdString(with));
    EXPECT_EQ(panel.snapshotCount(), 2);
    EXPECT_TRUE(panel.snapshotSlider()->isVisible());
    EXPECT_TRUE(panel.snapshotLabel()->isVisible());
    EXPECT_EQ(panel.snapshotSlider()->maximum(), 1);
    panel.showSnapshots(QString::fromStdString(without));
    EXPECT_FALSE(panel.snapshotSlider()->isVisible());
}

TEST(ErfPanel, LogColourBarTicksAreFractionsOfMaxNeverZero) {
    const QStringList log = ui::erfColorBarTickLabels(100.0);
    EXPECT_EQ(log, (QStringList{QStringLiteral("1"), QStringLiteral("0.3"), QStringLiteral("0.1"),
                                QStringLiteral("0.03"), QStringLiteral("0.01"), QStringLiteral("0.001")}));
    EXPECT_FALSE(log.contains(QStringLiteral("0")));
    for (double fraction : ui::erfColorBarTicks(100.0)) EXPECT_GT(fraction, 0.0);
    // The linear scale starts at 0, where 0 is a value the bar shows.
    EXPECT_EQ(ui::erfColorBarTickLabels(0.0).back(), QStringLiteral("0"));
}
