// Offscreen tests of the runs panel: selecting runs shows their curves at once.
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/curves_widget.h"
#include "segscope/ui/runs_panel.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QTableView>
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
    QTest::qWait(20);
    ASSERT_EQ(panel.curves()->runs(), QStringList{first}) << "selecting one run shows it without Compare";
    EXPECT_EQ(panel.curves()->stepPointCount(first), 7);
    panel.selectRuns({first, second});
    QTest::qWait(20);
    EXPECT_EQ(panel.curves()->runs().size(), 2);
    EXPECT_EQ(panel.curves()->stepPointCount(second), 12);
    // The poll's refresh keeps the selection and does not reload what is shown.
    store->appendStep(second.toStdString(), {13, 0, 0.1, 0, 0, std::nullopt, 0});
    panel.refresh(true);
    QTest::qWait(20);
    EXPECT_EQ(panel.curves()->stepPointCount(second), 12);
}
