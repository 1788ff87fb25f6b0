// Offscreen tests of the main window's run controls: a toolbar reachable from every tab, with
// shortcuts listed in the Help menu, the mIoU readout, and a window that fits small screens.
#include "segscope/core/data/demo_data.h"
#include "segscope/core/runs/run_lock.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/curves_widget.h"
#include "segscope/ui/experiment_editor.h"
#include "segscope/ui/main_window.h"
#include "segscope/ui/runs_panel.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QAction>
#include <QApplication>
#include <QLabel>
#include <QListWidget>
#include <QSignalSpy>
#include <QStatusBar>
#include <QTabWidget>
#include <QTest>
#include <QToolBar>

#include <fstream>

using namespace segscope;

namespace {

core::Experiment tinyExperiment(const std::filesystem::path& demo, int epochs) {
    core::Experiment e;
    e.name = "tiny";
    e.dataset.kind = core::DataSource::Voc;
    e.dataset.root = demo;
    e.model.id = "segformer-b0";
    e.transforms.height = e.transforms.width = 48;
    e.optimizer.learningRate = 1e-3;
    e.training.epochs = epochs;
    e.training.batchSize = 4;
    e.runtime.device = "cpu";
    e.runtime.threads = 1;
    e.runtime.workers = 1;
    return e;
}

}  // namespace

TEST(MainWindow, EveryTabFitsA1280By720Screen) {
    test::TempDir dir;
    ui::MainWindow window(QString::fromStdString((dir / "ws").string()));
    window.show();
    QApplication::processEvents();
    for (int tab = 0; tab < window.tabs()->count(); ++tab) {
        window.tabs()->setCurrentIndex(tab);
        QApplication::processEvents();
        const QSize minimum = window.minimumSizeHint().expandedTo(window.minimumSize());
        EXPECT_LE(minimum.width(), 1280) << window.tabs()->tabText(tab).toStdString();
        EXPECT_LE(minimum.height(), 720 - 40) << window.tabs()->tabText(tab).toStdString() << ": the page needs "
                                              << window.tabs()->widget(tab)->minimumSizeHint().width() << "x"
                                              << window.tabs()->widget(tab)->minimumSizeHint().height();
    }
    EXPECT_LE(window.width(), 1366);
    EXPECT_LE(window.height(), 768);
}

TEST(MainWindow, RunControlsAreOnAToolbarWithShortcuts) {
    test::TempDir dir;
    ui::MainWindow window(QString::fromStdString((dir / "ws").string()));
    auto* toolbar = window.findChild<QToolBar*>(QStringLiteral("runToolbar"));
    ASSERT_NE(toolbar, nullptr);
    // On the window, not on a tab: visible whichever tab is current.
    EXPECT_EQ(toolbar->parentWidget(), &window);
    for (QAction* a : {window.startAction(), window.pauseAction(), window.stopAction()}) {
        EXPECT_TRUE(toolbar->actions().contains(a)) << a->text().toStdString();
        EXPECT_FALSE(a->shortcut().isEmpty()) << a->text().toStdString();
        EXPECT_FALSE(a->toolTip().isEmpty()) << a->text().toStdString();
    }
    EXPECT_TRUE(window.startAction()->isEnabled());
    EXPECT_FALSE(window.pauseAction()->isEnabled()) << "nothing to pause before a run";
    EXPECT_FALSE(window.stopAction()->isEnabled());
    const QStringList shortcuts = window.shortcutList();
    const QString all = shortcuts.join(QLatin1Char('\n'));
    for (QAction* a : {window.startAction(), window.pauseAction(), window.stopAction()})
        EXPECT_TRUE(all.contains(a->shortcut().toString(QKeySequence::NativeText))) << all.toStdString();
    EXPECT_TRUE(all.contains(QStringLiteral("Presenter mode"))) << all.toStdString();
}

TEST(MainWindow, StopFromAnotherTabAndTheMiouReadout) {
    test::TempDir dir;
    core::DemoOptions demo;
    demo.images = 24;
    demo.width = demo.height = 48;
    core::writeDemoDataset(dir / "demo", demo);
    ui::MainWindow window(QString::fromStdString((dir / "ws").string()));
    window.editor()->setExperiment(tinyExperiment(dir / "demo", 1));
    QSignalSpy finished(&window, &ui::MainWindow::runFinished);
    window.startAction()->trigger();
    ASSERT_TRUE(finished.wait(240000));
    ASSERT_EQ(finished.at(0).at(1).toInt(), int(core::TrainingOutcome::Finished))
        << finished.at(0).at(2).toString().toStdString();
    auto store = core::RunStore::open(dir / "ws");
    const auto run = store->run(finished.at(0).at(0).toString().toStdString());
    ASSERT_TRUE(run && run->bestMiou);
    const QString expected = QStringLiteral("best mIoU %1% (epoch 1) · last %1%").arg(*run->bestMiou * 100, 0, 'f', 1);
    EXPECT_EQ(window.miouReadout(), expected);

    // A long run stopped from the Runs tab with the toolbar.
    window.editor()->setExperiment(tinyExperiment(dir / "demo", 50));
    QSignalSpy started(&window, &ui::MainWindow::runStarted);
    window.startAction()->trigger();
    ASSERT_TRUE(started.wait(60000));
    window.tabs()->setCurrentWidget(window.runsPanel());
    EXPECT_TRUE(window.stopAction()->isEnabled());
    EXPECT_TRUE(window.pauseAction()->isEnabled());
    EXPECT_EQ(window.startAction()->text(), QStringLiteral("Queue run"));
    window.stopAction()->trigger();
    ASSERT_TRUE(finished.wait(60000));
    EXPECT_EQ(finished.at(1).at(1).toInt(), int(core::TrainingOutcome::Cancelled));
    EXPECT_FALSE(window.stopAction()->isEnabled());
}

TEST(CurvesWidget, ClassesAreShownAtOnceWithTheWorstMarked) {
    ui::CurvesWidget curves;
    curves.addRun(QStringLiteral("r"), QStringLiteral("r"));
    curves.setClassNames(QStringLiteral("r"),
                         {QStringLiteral("background"), QStringLiteral("circle"), QStringLiteral("square"),
                          QStringLiteral("triangle"), QStringLiteral("cross"), QStringLiteral("star")});
    core::ValidationEvent e;
    e.epoch = 1;
    e.step = 4;
    const double ious[] = {0.9, 0.2, 0.7, 0.1, 0.8, 0.5};
    const char* names[] = {"background", "circle", "square", "triangle", "cross", "star"};
    for (int c = 0; c < 6; ++c) {
        core::ClassMetrics m;
        m.name = names[c];
        m.iou = ious[c];
        e.metrics.perClass.push_back(m);
    }
    e.metrics.mIoU = 0.533;
    curves.appendValidation(QStringLiteral("r"), e);
    QListWidget* toggles = curves.classToggles();
    ASSERT_EQ(toggles->count(), 6);
    for (int i = 0; i < toggles->count(); ++i) EXPECT_EQ(toggles->item(i)->checkState(), Qt::Checked);
    // The worst third: triangle (0.1) and circle (0.2).
    EXPECT_EQ(curves.worstClasses(), (QStringList{QStringLiteral("triangle"), QStringLiteral("circle")}));
    for (int i = 0; i < toggles->count(); ++i) {
        const bool worst = curves.worstClasses().contains(toggles->item(i)->text());
        EXPECT_EQ(toggles->item(i)->font().bold(), worst) << toggles->item(i)->text().toStdString();
    }
    // A class the user unticks stays unticked when the classes are rebuilt.
    toggles->item(0)->setCheckState(Qt::Unchecked);
    curves.setClassNames(QStringLiteral("r"),
                         {QStringLiteral("background"), QStringLiteral("circle"), QStringLiteral("square"),
                          QStringLiteral("triangle"), QStringLiteral("cross"), QStringLiteral("star")});
    EXPECT_EQ(curves.classToggles()->item(0)->checkState(), Qt::Unchecked);
    EXPECT_EQ(curves.classToggles()->item(1)->checkState(), Qt::Checked);
}

TEST(MainWindow, ResumeOfARunTrainedElsewhereIsRefused) {
    test::TempDir dir;
    std::string id;
    std::filesystem::path folder;
    {
        auto store = core::RunStore::open(dir / "ws");
        core::NewRun run;
        run.name = "elsewhere";
        run.model = "segformer-b0";
        run.experimentJson = core::toJson(tinyExperiment(dir / "demo", 1)).dump();
        id = store->createRun(run);
        store->updateStatus(id, core::RunStatus::Interrupted);
        folder = store->run(id)->folder;
    }
    // Another trainer (here: a lock of this process) holds the run.
    core::RunLock held = core::RunLock::acquire(folder);
    ui::MainWindow window(QString::fromStdString((dir / "ws").string()));
    QSignalSpy finished(&window, &ui::MainWindow::runFinished);
    window.resumeRun(QString::fromStdString(id));
    ASSERT_TRUE(finished.wait(60000));
    EXPECT_EQ(finished.at(0).at(1).toInt(), int(core::TrainingOutcome::Failed));
    EXPECT_TRUE(finished.at(0).at(2).toString().contains(QStringLiteral("in use")))
        << finished.at(0).at(2).toString().toStdString();
    // Nothing was truncated or flipped by the refused resume.
    EXPECT_EQ(core::RunStore::open(dir / "ws")->run(id)->status, core::RunStatus::Interrupted);
}

TEST(MainWindow, InvalidExperimentNamesTheFirstProblemInTheStatusBar) {
    test::TempDir dir;
    std::ofstream(dir / "bad.json") << R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "segformer-b0"},
        "training": {"batch_size": 0, "epochs": 2}, "optimizer": {"lr": -1}})";
    ui::MainWindow window(QString::fromStdString((dir / "ws").string()));
    EXPECT_FALSE(window.openExperiment(QString::fromStdString((dir / "bad.json").string())));
    const QString shown = window.statusBar()->currentMessage();
    EXPECT_TRUE(shown.contains(QStringLiteral("invalid experiment: "))) << shown.toStdString();
    EXPECT_TRUE(shown.contains(QStringLiteral("optimizer.lr: ")) ||
                shown.contains(QStringLiteral("training.batch_size: ")))
        << shown.toStdString();
    EXPECT_TRUE(shown.endsWith(QStringLiteral("(and 1 more)"))) << shown.toStdString();
}
