// Offscreen tests of the Predictions tab on predictions whose confusion is known in advance:
// gallery sorting and filters, the confusion-cell click-through, error maps, class visibility and
// colours saved with the workspace; and one end-to-end prediction of a trained run (cached).
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/trainer.h"
#include "segscope/ui/prediction_images_view.h"
#include "segscope/ui/predictions_panel.h"

#include "test_support.h"
#include "ui_test_support.h"

#include <gtest/gtest.h>
#include <QComboBox>
#include <QFile>
#include <QLabel>
#include <QListWidget>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTest>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

using namespace segscope;
namespace fs = std::filesystem;

namespace {

core::PredictionSet knownSet(const fs::path& dir) {
    return test::knownPredictionSet(dir);
}

std::vector<std::string> ids(const core::PredictionSet& set, const std::vector<std::size_t>& indices) {
    std::vector<std::string> out;
    for (std::size_t i : indices) out.push_back(set.image(i).id);
    return out;
}

using Ids = std::vector<std::string>;

}  // namespace

TEST(PredictionsPanel, GallerySortsAndFiltersExactly) {
    test::TempDir dir;
    ui::PredictionsPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.setPredictions(knownSet(dir.path()), QStringLiteral("known"));
    const core::PredictionSet& set = *panel.predictions();
    // Default: mIoU, worst first, all images.
    EXPECT_EQ(ids(set, panel.galleryList()), (Ids{"c", "a", "d", "b"}));
    ASSERT_EQ(panel.galleryWidget()->count(), 4);
    EXPECT_EQ(panel.galleryWidget()->item(0)->text(), QStringLiteral("c\nmIoU 25.00"));
    EXPECT_EQ(panel.galleryWidget()->item(3)->text(), QStringLiteral("b\nmIoU 100.00"));
    panel.setGallery(ui::GallerySort::MeanIouDescending, ui::GalleryFilter::All, 1);
    EXPECT_EQ(ids(set, panel.galleryList()), (Ids{"b", "d", "a", "c"}));
    // IoU of cat: b has no cat in truth or prediction and is left out; c predicted cat wrongly (IoU 0).
    panel.setGallery(ui::GallerySort::ClassIouAscending, ui::GalleryFilter::All, 1);
    EXPECT_EQ(ids(set, panel.galleryList()), (Ids{"c", "a", "d"}));
    EXPECT_EQ(panel.galleryWidget()->item(1)->text(), QStringLiteral("a\ncat IoU 75.00"));
    // Images containing cat (ground truth), in mIoU order.
    panel.setGallery(ui::GallerySort::MeanIouAscending, ui::GalleryFilter::ContainsClass, 1);
    EXPECT_EQ(ids(set, panel.galleryList()), (Ids{"a", "d"}));
    // Where cat was most confused: c (8 dog pixels called cat), a (4 cat pixels called dog), d (2).
    panel.setGallery(ui::GallerySort::ConfusedPixels, ui::GalleryFilter::All, 1);
    EXPECT_EQ(ids(set, panel.galleryList()), (Ids{"c", "a", "d"}));
    EXPECT_EQ(panel.galleryWidget()->item(0)->text(), QStringLiteral("c\n8 px confused"));
    // Dog confused, best mIoU first.
    panel.setGallery(ui::GallerySort::MeanIouDescending, ui::GalleryFilter::ClassConfused, 2);
    EXPECT_EQ(ids(set, panel.galleryList()), (Ids{"a", "c"}));
    // A click opens the image.
    panel.activateGalleryItem(1);
    ASSERT_TRUE(panel.currentImage().has_value());
    EXPECT_EQ(set.image(*panel.currentImage()).id, "c");
}

TEST(PredictionsPanel, ConfusionCellListsItsImagesAndHighlightsThePixels) {
    test::TempDir dir;
    ui::PredictionsPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.setPredictions(knownSet(dir.path()));
    const core::PredictionSet& set = *panel.predictions();
    // Totals in the heatmap: true cat predicted as cat = 12 (a) + 8 (d).
    ASSERT_EQ(panel.confusionTable()->rowCount(), 3);
    EXPECT_EQ(panel.confusionTable()->item(1, 1)->text(), QStringLiteral("20"));
    EXPECT_EQ(panel.confusionTable()->item(2, 1)->text(), QStringLiteral("8"));
    panel.setRowNormalised(true);
    // True dog: 8 (b) + 16 (c) pixels, 8 of them called cat.
    EXPECT_EQ(panel.confusionTable()->item(2, 1)->text(), QStringLiteral("33.3%"));

    panel.clickCell(1, 1);
    EXPECT_EQ(ids(set, panel.cellList()), (Ids{"a", "d"}));
    EXPECT_EQ(panel.cellListWidget()->item(0)->text(), QStringLiteral("a — 12 px"));
    panel.clickCell(2, 1);
    ASSERT_EQ(ids(set, panel.cellList()), (Ids{"c"}));
    EXPECT_EQ(panel.cellListWidget()->item(0)->text(), QStringLiteral("c — 8 px"));
    panel.setOpacity(1.0);
    panel.activateCellItem(0);
    ASSERT_TRUE(panel.currentImage().has_value());
    EXPECT_EQ(set.image(*panel.currentImage()).id, "c");
    // The 8 pixels of true dog predicted as cat (the bottom half) are highlighted in cyan.
    const QImage pane = panel.predictionPane();
    ASSERT_EQ(pane.size(), QSize(4, 4));
    int highlighted = 0;
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x)
            if (pane.pixelColor(x, y) == QColor(0, 255, 255))
                ++highlighted;
            else
                EXPECT_EQ(pane.pixelColor(x, y), QColor(100, 100, 100)) << x << "," << y;
    EXPECT_EQ(highlighted, 8);
    EXPECT_EQ(pane.pixelColor(0, 3), QColor(0, 255, 255));

    // The metrics table sorts by value: IoU ascending puts dog (16 / (16 + 8 + 4)) first, background last.
    panel.metricsTable()->sortItems(1, Qt::AscendingOrder);
    EXPECT_EQ(panel.metricsTable()->item(0, 0)->text(), QStringLiteral("dog"));
    EXPECT_EQ(panel.metricsTable()->item(0, 1)->text(), QStringLiteral("57.14"));
    EXPECT_EQ(panel.metricsTable()->item(2, 0)->text(), QStringLiteral("background"));
}

TEST(PredictionsPanel, ErrorViewVisibilityAndColoursSavedWithTheWorkspace) {
    test::TempDir dir;
    const QString workspace = QString::fromStdString((dir / "ws").string());
    {
        ui::PredictionsPanel panel(workspace);
        panel.setPredictions(knownSet(dir.path()));
        const core::PredictionSet& set = *panel.predictions();
        std::size_t a = 0;
        while (set.image(a).id != "a") ++a;
        panel.setOpacity(1.0);
        panel.showImage(a);
        panel.setErrorClass(1);  // cat: 12 TP (green), 4 FN (blue)
        EXPECT_EQ(panel.predictionPane().pixelColor(0, 0), QColor(0, 200, 0));
        EXPECT_EQ(panel.predictionPane().pixelColor(3, 3), QColor(0, 90, 255));
        panel.setErrorClass(-1);
        EXPECT_EQ(panel.predictionPane().pixelColor(0, 0), QColor(0, 0, 200)) << "cat's dataset colour";
        EXPECT_EQ(panel.groundTruthPane().pixelColor(3, 3), QColor(0, 0, 200));
        panel.setClassVisible(1, false);
        EXPECT_EQ(panel.groundTruthPane().pixelColor(3, 3), QColor(100, 100, 100)) << "hidden class shows the image";
        EXPECT_EQ(panel.predictionPane().pixelColor(3, 3), QColor(0, 200, 0)) << "dog stays visible";
        panel.setClassVisible(1, true);
        ASSERT_TRUE(panel.setClassColor(1, QColor(255, 0, 0)));
        EXPECT_EQ(panel.groundTruthPane().pixelColor(3, 3), QColor(255, 0, 0));
        const QString png = QString::fromStdString((dir / "overlay.png").string());
        ASSERT_TRUE(panel.exportOverlay(png));
        EXPECT_EQ(QImage(png).pixelColor(0, 0), QColor(255, 0, 0));
    }
    QFile file(workspace + QStringLiteral("/class_colors.json"));
    ASSERT_TRUE(file.open(QIODevice::ReadOnly));
    EXPECT_EQ(nlohmann::json::parse(file.readAll().toStdString())["colors"]["cat"], "#ff0000");
    // A new panel on the same workspace uses the saved colour.
    ui::PredictionsPanel again(workspace);
    again.setPredictions(knownSet(dir / "second"));
    again.setOpacity(1.0);
    const core::PredictionSet& set = *again.predictions();
    std::size_t a = 0;
    while (set.image(a).id != "a") ++a;
    again.showImage(a);
    EXPECT_EQ(again.groundTruthPane().pixelColor(0, 0), QColor(255, 0, 0));
}

TEST(PredictionsPanel, PredictsATrainedRunInTheWorkerAndReopensTheCache) {
    test::TempDir dir;
    core::DemoOptions demo;
    demo.images = 16;
    demo.width = demo.height = 48;
    core::writeDemoDataset(dir / "demo", demo);
    core::Experiment e;
    e.name = "tiny";
    e.dataset.kind = core::DataSource::Voc;
    e.dataset.root = dir / "demo";
    e.model.id = "segformer-b0";
    e.transforms.height = e.transforms.width = 32;
    e.training.epochs = 1;
    e.training.batchSize = 4;
    e.runtime.device = "cpu";
    e.runtime.threads = 1;
    e.runtime.workers = 0;
    auto store = core::RunStore::open(dir / "ws");
    const std::string runId = core::createRecordedRun(*store, e);
    {
        core::RunRecorder recorder(*store, runId);
        core::TrainerOptions options;
        options.runFolder = store->run(runId)->folder;
        core::Trainer trainer(e, options, &recorder);
        ASSERT_EQ(trainer.run().outcome, core::TrainingOutcome::Finished);
    }
    ui::PredictionsPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.setSource(QString::fromStdString(runId), QStringLiteral("latest"), QStringLiteral("val"));
    QSignalSpy ready(&panel, &ui::PredictionsPanel::predictionsReady);
    ASSERT_TRUE(panel.predict());
    ASSERT_TRUE(ready.wait(120000));
    ASSERT_NE(panel.predictions(), nullptr);
    EXPECT_FALSE(panel.lastFromCache());
    EXPECT_EQ(panel.predictions()->size(), 4u);  // a quarter of 16 for validation
    EXPECT_EQ(panel.predictions()->classes(), 5);
    EXPECT_EQ(panel.galleryList().size(), 4u);
    // Reopening: instant, from the cache in the run folder.
    ASSERT_TRUE(panel.predict());
    ASSERT_TRUE(ready.wait(60000));
    EXPECT_TRUE(panel.lastFromCache());
    EXPECT_EQ(panel.predictions()->size(), 4u);
    // Any image file through the same model.
    QSignalSpy predicted(&panel, &ui::PredictionsPanel::imagePredicted);
    QSignalSpy messages(&panel, &ui::PredictionsPanel::statusMessage);
    const auto imageFile = panel.predictions()->image(0).image;
    ASSERT_TRUE(panel.openImageFile(QString::fromStdString(imageFile.string())));
    ASSERT_TRUE(predicted.wait(60000)) << (messages.isEmpty() ? std::string()
                                                              : messages.last().at(0).toString().toStdString());
    EXPECT_TRUE(messages.isEmpty());
    EXPECT_EQ(panel.predictionPane().size(), QSize(48, 48));
}

TEST(PredictionsPanel, ErrorClassResetsWhenTheRunOrThePredictionsChange) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    core::NewRun run;
    run.name = "tiny";
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const QString first = QString::fromStdString(store->createRun(run));
    const QString second = QString::fromStdString(store->createRun(run));
    ui::PredictionsPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.setSource(first);
    panel.setPredictions(knownSet(dir.path()));
    EXPECT_EQ(panel.imagesView()->errorClass(), -1);
    panel.setErrorClass(1);
    ASSERT_EQ(panel.imagesView()->errorClass(), 1);
    panel.setSource(second);
    EXPECT_EQ(panel.imagesView()->errorClass(), -1) << "another run's predictions start from the overlay";
    EXPECT_EQ(panel.imagesView()->errorClassCombo()->currentText(), QStringLiteral("(none: prediction overlay)"));
    panel.setErrorClass(2);
    panel.setPredictions(knownSet(dir / "second"));
    EXPECT_EQ(panel.imagesView()->errorClass(), -1);
}

TEST(PredictionsPanel, RunPickerNamesEachRunWithItsId) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    core::NewRun run;
    run.name = "tiny";
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const QString first = QString::fromStdString(store->createRun(run));
    const QString second = QString::fromStdString(store->createRun(run));
    ui::PredictionsPanel panel(QString::fromStdString((dir / "ws").string()));
    QComboBox* picker = panel.runPicker();
    ASSERT_EQ(picker->count(), 2);
    const QString a = picker->itemText(picker->findData(first));
    const QString b = picker->itemText(picker->findData(second));
    EXPECT_NE(a, b);
    EXPECT_TRUE(a.startsWith(QStringLiteral("tiny (%1) · segformer-b0").arg(first))) << a.toStdString();
    EXPECT_TRUE(b.startsWith(QStringLiteral("tiny (%1) · segformer-b0").arg(second))) << b.toStdString();
}

TEST(PredictionsPanel, SummaryElidesTheCachePathInTheMiddleAndTellsItAllInTheTooltip) {
    test::TempDir dir;
    const fs::path deep = dir / "a-rather-long-workspace-folder-name" / "runs" / "20261202-055500-segformer-b0" /
                          "predictions" / "best-val";
    fs::create_directories(deep);
    ui::PredictionsPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.resize(420, 500);
    panel.show();
    core::PredictionSet set = knownSet(deep);
    const QString full = QString::fromStdString(set.folder().string());
    panel.setPredictions(std::move(set), QStringLiteral("known"));
    QLabel* summary = panel.summaryLabel();
    const QStringList lines = summary->text().split(QLatin1Char('\n'));
    ASSERT_EQ(lines.size(), 2) << summary->text().toStdString();
    EXPECT_TRUE(lines[0].endsWith(QStringLiteral("cache:"))) << lines[0].toStdString();
    // The path line fits the label, so it never wraps, and keeps both ends of the path.
    EXPECT_LE(summary->fontMetrics().horizontalAdvance(lines[1]), summary->contentsRect().width());
    EXPECT_TRUE(lines[1].contains(QChar(0x2026))) << lines[1].toStdString();
    EXPECT_TRUE(lines[1].endsWith(full.section(QLatin1Char('/'), -1))) << lines[1].toStdString();
    EXPECT_TRUE(lines[1].startsWith(full.left(3))) << lines[1].toStdString();
    EXPECT_TRUE(summary->toolTip().endsWith(full)) << summary->toolTip().toStdString();
    // Wider, the whole path shows.
    panel.resize(1800, 500);
    QCoreApplication::processEvents();
    EXPECT_EQ(summary->text().split(QLatin1Char('\n')).value(1), full);
}
