// segscope: the workbench GUI. Argument parsing only; everything else lives in segscope_ui.
#include "segscope/core/runtime.h"
#include "segscope/ui/dataset_panel.h"
#include "segscope/ui/erf_panel.h"
#include "segscope/ui/main_window.h"
#include "segscope/ui/predictions_panel.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/workspace.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QIcon>
#include <QPixmap>
#include <QSpinBox>
#include <QTabWidget>
#include <QTimer>

int main(int argc, char** argv) {
    segscope::core::preferPassiveOpenMpWait(argv);
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("SegScope"));
    QApplication::setApplicationVersion(QString::fromStdString(segscope::core::segscopeVersion()));
    // The desktop entry and icon installed by packaging/ (share/applications, share/icons/hicolor);
    // the build tree falls back to the icon in the sources.
    QApplication::setDesktopFileName(QStringLiteral("segscope"));
    const QString installedIcon =
        QCoreApplication::applicationDirPath() + QStringLiteral("/../share/icons/hicolor/256x256/apps/segscope.png");
    QApplication::setWindowIcon(QIcon::fromTheme(
        QStringLiteral("segscope"),
        QIcon(QFileInfo::exists(installedIcon) ? installedIcon : QStringLiteral(SEGSCOPE_SOURCE_ICON))));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Semantic-segmentation workbench"));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("experiment"), QStringLiteral("Experiment file to load."),
                                 QStringLiteral("[EXPERIMENT.json]"));
    QCommandLineOption workspace(QStringLiteral("workspace"), QStringLiteral("Workspace folder."),
                                 QStringLiteral("DIR"), segscope::ui::defaultWorkspace());
    QCommandLineOption start(QStringLiteral("start"), QStringLiteral("Start the loaded experiment at once."));
    QCommandLineOption check(QStringLiteral("check"), QStringLiteral("Run the dataset check once the demo is open."));
    QCommandLineOption tab(QStringLiteral("tab"), QStringLiteral("Tab to show first (0-4)."), QStringLiteral("N"));
    QCommandLineOption compareAll(QStringLiteral("compare-all"),
                                  QStringLiteral("Select every run of the workspace and compare them (Runs tab)."));
    QCommandLineOption erfCompare(
        QStringLiteral("erf-compare"),
        QStringLiteral("ERF tab: compute 'cnn-vs-transformer', or untrained vs trained of run ID."),
        QStringLiteral("WHAT"));
    QCommandLineOption erfImages(QStringLiteral("erf-images"), QStringLiteral("Images averaged by --erf-compare."),
                                 QStringLiteral("N"), QStringLiteral("16"));
    QCommandLineOption predict(QStringLiteral("predict"),
                               QStringLiteral("Predictions tab: predict (or reopen) run ID's best checkpoint on val."),
                               QStringLiteral("ID"));
    QCommandLineOption predictionsView(QStringLiteral("predictions-view"),
                                       QStringLiteral("With --predict: images, gallery, confusion (clicks the worst "
                                                      "off-diagonal cell), cell (opens that cell's first image, "
                                                      "its pixels highlighted) or side-by-side (with --compare-runs)."),
                                       QStringLiteral("VIEW"), QStringLiteral("images"));
    QCommandLineOption compareRuns(QStringLiteral("compare-runs"), QStringLiteral("Runs for the side-by-side view."),
                                   QStringLiteral("ID,ID"));
    QCommandLineOption presenter(QStringLiteral("presenter"), QStringLiteral("Start in presenter mode."));
    QCommandLineOption screenshot(QStringLiteral("screenshot"),
                                  QStringLiteral("Save a PNG of the window after --screenshot-delay ms, then quit."),
                                  QStringLiteral("PNG"));
    QCommandLineOption screenshotDelay(QStringLiteral("screenshot-delay"), QStringLiteral("Delay before --screenshot."),
                                       QStringLiteral("MS"), QStringLiteral("3000"));
    for (const auto& option : {workspace, start, check, tab, compareAll, erfCompare, erfImages, predict,
                               predictionsView, compareRuns, presenter, screenshot, screenshotDelay})
        parser.addOption(option);
    parser.process(app);

    const QString workspaceDir = parser.value(workspace);
    QDir().mkpath(workspaceDir);
    // A corrupt database is repaired (with a message) before any panel opens it.
    if (!segscope::ui::prepareWorkspace(workspaceDir, nullptr)) return 1;
    segscope::ui::MainWindow window(workspaceDir);
    window.show();
    // The last session of the workspace comes back (experiment as edited, tab, geometry, selected
    // runs); an experiment named on the command line replaces its experiment.
    const bool restored = window.restoreSession();
    QString experiment = parser.positionalArguments().value(0);
    bool loaded = restored;
    if (!experiment.isEmpty() || !restored) {
        if (experiment.isEmpty()) {
            const QString demo = QStringLiteral(SEGSCOPE_SOURCE_PRESETS "/demo.json");
            const QString installed =
                QCoreApplication::applicationDirPath() + QStringLiteral("/../share/segscope/presets/demo.json");
            experiment = QFileInfo::exists(installed) ? installed : demo;
        }
        loaded = window.openExperiment(experiment);
    }
    if (parser.isSet(presenter)) window.setPresenterMode(true);
    if (parser.isSet(check))
        QObject::connect(window.datasetPanel(), &segscope::ui::DatasetPanel::datasetOpened, &window,
                         [&window] { window.datasetPanel()->startCheck(); });
    QTimer::singleShot(0, &window, [&window] { window.datasetPanel()->openDemoDataset(); });
    if (loaded && parser.isSet(start)) QTimer::singleShot(0, &window, [&window] { window.startRun(); });
    if (parser.isSet(compareAll)) {
        QTimer::singleShot(200, &window, [&window] {
            auto* runs = window.runsPanel();
            QStringList ids;
            for (int row = 0; row < runs->model()->rowCount(); ++row)
                ids << QString::fromStdString(runs->model()->run(row).id);
            runs->selectRuns(ids);
            runs->compareSelected();
            window.tabs()->setCurrentWidget(runs);
        });
    }
    if (parser.isSet(tab)) {
        const int index = parser.value(tab).toInt();
        QTimer::singleShot(0, &window, [&window, index] { window.tabs()->setCurrentIndex(index); });
    }
    if (parser.isSet(erfCompare)) {
        const QString what = parser.value(erfCompare);
        const int images = parser.value(erfImages).toInt();
        QTimer::singleShot(100, &window, [&window, what, images] {
            auto* erf = window.erfPanel();
            window.tabs()->setCurrentWidget(erf);
            erf->setImages(images);
            if (what == QStringLiteral("cnn-vs-transformer"))
                erf->compareCnnVsTransformer();
            else
                erf->compareUntrainedVsTrained(what);
        });
    }
    if (parser.isSet(predict)) {
        auto* panel = window.predictionsPanel();
        const QString run = parser.value(predict), view = parser.value(predictionsView);
        const QStringList others = parser.value(compareRuns).split(QLatin1Char(','), Qt::SkipEmptyParts);
        QObject::connect(panel, &segscope::ui::PredictionsPanel::predictionsReady, &window, [panel, view, others] {
            if (view == QStringLiteral("gallery")) {
                panel->views()->setCurrentIndex(1);
            } else if (view == QStringLiteral("confusion") || view == QStringLiteral("cell")) {
                // The largest off-diagonal cell: the model's most common confusion.
                const auto& totals = panel->predictions()->totals();
                int bestI = 0, bestJ = 1;
                for (int i = 0; i < totals.classes(); ++i)
                    for (int j = 0; j < totals.classes(); ++j)
                        if (i != j && totals.count(i, j) > totals.count(bestI, bestJ)) bestI = i, bestJ = j;
                panel->views()->setCurrentIndex(2);
                panel->clickCell(bestI, bestJ);
                if (view == QStringLiteral("cell")) panel->activateCellItem(0);
            } else if (view == QStringLiteral("side-by-side")) {
                QTimer::singleShot(0, panel, [panel, others] { panel->compareRuns(others); });
            } else {
                // The worst image, with the error view of the class it confused most.
                const auto* set = panel->predictions();
                const auto worst = set->rankByMeanIou(segscope::core::SortOrder::Ascending);
                if (!worst.empty()) {
                    int worstClass = set->classes() > 1 ? 1 : 0;
                    for (int c = worstClass + 1; c < set->classes(); ++c)
                        if (set->confusedPixels(worst.front(), c) > set->confusedPixels(worst.front(), worstClass))
                            worstClass = c;
                    panel->showImage(worst.front());
                    panel->setErrorClass(worstClass);
                }
            }
        });
        QTimer::singleShot(100, &window, [&window, panel, run] {
            window.tabs()->setCurrentWidget(panel);
            panel->setSource(run);
            panel->predict();
        });
    }
    if (parser.isSet(screenshot)) {
        const QString path = parser.value(screenshot);
        const auto save = [&window, path] {
            const bool saved = window.grab().save(path);
            QCoreApplication::exit(saved ? 0 : 1);
        };
        // With an ERF computation the picture is taken once it is done.
        if (parser.isSet(erfCompare))
            QObject::connect(window.erfPanel(), &segscope::ui::ErfPanel::computationFinished, &window,
                             [&window, save] { QTimer::singleShot(800, &window, save); });
        else if (parser.isSet(predict) && parser.value(predictionsView) == QStringLiteral("side-by-side"))
            QObject::connect(window.predictionsPanel(), &segscope::ui::PredictionsPanel::comparisonReady, &window,
                             [&window, save] { QTimer::singleShot(800, &window, save); });
        else if (parser.isSet(predict))
            QObject::connect(window.predictionsPanel(), &segscope::ui::PredictionsPanel::predictionsReady, &window,
                             [&window, save] { QTimer::singleShot(1500, &window, save); });
        else
            QTimer::singleShot(parser.value(screenshotDelay).toInt(), &window, save);
    }
    return app.exec();
}
