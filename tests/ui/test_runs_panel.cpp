// Offscreen tests of the runs panel: selecting runs shows their curves at once, overlay and diff
// of two runs, following the database, replay.
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/curves_widget.h"
#include "segscope/ui/qcustomplot_include.h"
#include "segscope/ui/runs_panel.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QCoreApplication>
#include <QSignalSpy>
#include <QTableView>
#include <QTableWidget>
#include <QTest>

using namespace segscope;

namespace {

QString recordRun(core::RunStore& store, const std::string& name, int steps) {
    core::NewRun run;
    run.name = name;
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const std::string id = store.createRun(run);
    for (int s = 1; s <= steps; ++s) {
        core::StepRecord step;
        step.step = s;
        step.loss = 1.0 / s;
        store.appendStep(id, step);
    }
    core::EpochRecord epoch;
    epoch.epoch = 1;
    epoch.step = steps;
    epoch.mIoU = 0.5;
    store.appendEpoch(id, epoch, {{0, "road", 0.5}}, {});
    store.updateStatus(id, core::RunStatus::Finished);
    return QString::fromStdString(id);
}

}  // namespace

TEST(RunsPanel, SelectingRunsShowsTheirCurves) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    const QString first = recordRun(*store, "first", 7);
    const QString second = recordRun(*store, "second", 12);
    ui::RunsPanel panel(QString::fromStdString((dir / "ws").string()));
    ASSERT_EQ(panel.model()->rowCount(), 2);
    EXPECT_TRUE(panel.curves()->runs().isEmpty());
    panel.selectRuns({first});
    // The selection is shown from the event loop.
    ASSERT_TRUE(QTest::qWaitFor([&] { return !panel.curves()->runs().isEmpty(); }, 5000));
    ASSERT_EQ(panel.curves()->runs(), QStringList{first}) << "selecting one run shows it without Compare";
    EXPECT_EQ(panel.curves()->stepPointCount(first), 7);
    panel.selectRuns({first, second});
    ASSERT_TRUE(QTest::qWaitFor([&] { return panel.curves()->runs().size() == 2; }, 5000));
    EXPECT_EQ(panel.curves()->runs().size(), 2);
    EXPECT_EQ(panel.curves()->stepPointCount(second), 12);
    // The poll's refresh keeps the selection and does not reload what is shown.
    core::StepRecord extra;
    extra.step = 13;
    extra.loss = 0.1;
    store->appendStep(second.toStdString(), extra);
    panel.refresh(true);
    QCoreApplication::processEvents();  // what the refresh posted has run
    EXPECT_EQ(panel.curves()->stepPointCount(second), 12);
}

TEST(RunsPanel, OverlaysAndDiffsTwoRecordedRuns) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    QStringList ids;
    for (int r = 0; r < 2; ++r) {
        core::NewRun run;
        run.name = r == 0 ? "first" : "second";
        run.model = "segformer-b0";
        run.experimentJson = "{}";
        const std::string id = store->createRun(run);
        ids << QString::fromStdString(id);
        for (int s = 1; s <= 10; ++s) {
            core::StepRecord step;
            step.step = s;
            step.loss = 1.0 / s + r;
            store->appendStep(id, step);
        }
        core::EpochRecord epoch;
        epoch.epoch = 1;
        epoch.step = 10;
        epoch.mIoU = 0.5 + 0.1 * r;
        // Class "sky" regresses in the second run, "road" improves.
        std::vector<core::ClassRecord> classes = {{0, "road", 0.4 + 0.2 * r}, {1, "sky", 0.9 - 0.3 * r}};
        store->appendEpoch(id, epoch, classes, {});
        store->updateStatus(id, core::RunStatus::Finished);
    }
    ui::RunsPanel panel(QString::fromStdString((dir / "ws").string()));
    ASSERT_EQ(panel.model()->rowCount(), 2);
    panel.selectRuns(ids);
    EXPECT_EQ(panel.selectedRunIds().size(), 2);
    panel.compareSelected();
    EXPECT_EQ(panel.curves()->runs().size(), 2);
    EXPECT_EQ(panel.curves()->stepPointCount(ids[0]), 10);
    EXPECT_EQ(panel.curves()->validationPointCount(ids[1]), 1);
    EXPECT_EQ(panel.classBars()->plottableCount(), 2);
    panel.diffSelected();
    ASSERT_EQ(panel.diffTable()->rowCount(), 2);
    EXPECT_EQ(panel.diffTable()->item(0, 0)->text(), QStringLiteral("road"));
    EXPECT_EQ(panel.diffTable()->item(0, 3)->text(), QStringLiteral("+0.2000"));
    EXPECT_EQ(panel.diffTable()->item(1, 3)->text(), QStringLiteral("-0.3000"));
    EXPECT_EQ(panel.diffTable()->item(1, 3)->foreground().color(), QColor(190, 30, 30));
}

TEST(RunsPanel, FollowsRunsWrittenByAnotherConnection) {
    test::TempDir dir;
    auto writer = core::RunStore::open(dir / "ws");
    ui::RunsPanel panel(QString::fromStdString((dir / "ws").string()));
    EXPECT_EQ(panel.model()->rowCount(), 0);
    core::NewRun run;
    run.name = "from-cli";
    run.model = "unet-resnet18";
    run.experimentJson = "{}";
    writer->createRun(run);
    panel.refresh();
    ASSERT_EQ(panel.model()->rowCount(), 1);
    EXPECT_EQ(panel.model()->run(0).name, "from-cli");
}

TEST(RunsPanel, ReplayPlaysARecordedRunInScaledTime) {
    test::TempDir dir;
    auto store = core::RunStore::open(dir / "ws");
    core::NewRun run;
    run.name = "recorded";
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const std::string id = store->createRun(run);
    for (int s = 1; s <= 40; ++s) {
        core::StepRecord step;
        step.step = s;
        step.loss = 1.0 / s;
        step.wallSeconds = 0.5 * s;  // 20 s of recorded training
        store->appendStep(id, step);
    }
    core::EpochRecord epoch;
    epoch.epoch = 1;
    epoch.step = 40;
    epoch.mIoU = 0.7;
    epoch.wallSeconds = 20.0;
    store->appendEpoch(id, epoch, {}, {});
    ui::RunsPanel panel(QString::fromStdString((dir / "ws").string()));
    panel.selectRuns({QString::fromStdString(id)});
    QSignalSpy done(&panel, &ui::RunsPanel::replayFinished);
    panel.replaySelected(20.0);  // 20 s recorded -> about 1 s
    ASSERT_TRUE(panel.replaying());
    // The first points, as soon as they are shown.
    ASSERT_TRUE(QTest::qWaitFor([&] { return panel.curves()->stepPointCount(QString::fromStdString(id)) > 0; }, 10000));
    const int partway = panel.curves()->stepPointCount(QString::fromStdString(id));
    EXPECT_LT(partway, 40) << "a replay must unfold over time, not all at once";
    ASSERT_TRUE(done.wait(10000));
    EXPECT_EQ(panel.curves()->stepPointCount(QString::fromStdString(id)), 40);
    EXPECT_EQ(panel.curves()->validationPointCount(QString::fromStdString(id)), 1);
    EXPECT_FALSE(panel.replaying());
}
