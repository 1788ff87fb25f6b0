// Offscreen widget tests of the main window: dataset browsing and the dataset check.
#include "segscope/core/data/demo_data.h"
#include "segscope/ui/dataset_panel.h"
#include "segscope/ui/qcustomplot_include.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QApplication>
#include <QListWidget>
#include <QSignalSpy>

using namespace segscope;

TEST(DatasetPanel, OpensDatasetAndCheckFillsTheFrequencyChart) {
    test::TempDir dir;
    test::writeDemo(dir / "demo", 12, 40);

    ui::DatasetPanel window(QString::fromStdString(dir.path().string()));
    core::DatasetSpec spec;
    spec.root = dir / "demo";
    spec.split = "train";
    ASSERT_TRUE(window.openDataset(spec));
    EXPECT_EQ(window.sampleList()->count(), 9);
    EXPECT_EQ(window.sampleList()->item(0)->text(), QStringLiteral("demo_00000"));

    QSignalSpy finished(&window, &ui::DatasetPanel::checkFinished);
    window.startCheck();
    ASSERT_TRUE(finished.wait(20000));
    EXPECT_TRUE(finished.at(0).at(0).toBool());
    EXPECT_EQ(window.lastReport().images, 9u);
    ASSERT_EQ(window.frequencyPlot()->plottableCount(), 1);
    auto* bars = qobject_cast<QCPBars*>(window.frequencyPlot()->plottable(0));
    ASSERT_NE(bars, nullptr);
    EXPECT_EQ(bars->data()->size(), 5);
}

TEST(DatasetPanel, UnusableDatasetIsReportedNotFatal) {
    test::TempDir dir;
    ui::DatasetPanel window(QString::fromStdString(dir.path().string()));
    core::DatasetSpec spec;
    spec.root = dir / "missing";
    EXPECT_FALSE(window.openDataset(spec));
    EXPECT_EQ(window.sampleList()->count(), 0);
}
