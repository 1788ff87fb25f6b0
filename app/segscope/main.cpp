// segscope: the workbench GUI. Argument parsing only; everything else lives in segscope_ui.
#include "segscope/core/runtime.h"
#include "segscope/ui/dataset_panel.h"
#include "segscope/ui/main_window.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/workspace.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QIcon>
#include <QPixmap>
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
    QCommandLineOption workspace(QStringLiteral("workspace"), QStringLiteral("Workspace folder."), QStringLiteral("DIR"),
                                 segscope::ui::defaultWorkspace());
    QCommandLineOption start(QStringLiteral("start"), QStringLiteral("Start the loaded experiment at once."));
    QCommandLineOption check(QStringLiteral("check"), QStringLiteral("Run the dataset check once the demo is open."));
    QCommandLineOption tab(QStringLiteral("tab"), QStringLiteral("Tab to show first (0-3)."), QStringLiteral("N"));
    QCommandLineOption compareAll(QStringLiteral("compare-all"),
                                  QStringLiteral("Select every run of the workspace and compare them (Runs tab)."));
    QCommandLineOption presenter(QStringLiteral("presenter"), QStringLiteral("Start in presenter mode."));
    QCommandLineOption screenshot(QStringLiteral("screenshot"),
                                  QStringLiteral("Save a PNG of the window after --screenshot-delay ms, then quit."),
                                  QStringLiteral("PNG"));
    QCommandLineOption screenshotDelay(QStringLiteral("screenshot-delay"), QStringLiteral("Delay before --screenshot."),
                                       QStringLiteral("MS"), QStringLiteral("3000"));
    for (const auto& option : {workspace, start, check, tab, compareAll, presenter, screenshot, screenshotDelay}) parser.addOption(option);
    parser.process(app);

    const QString workspaceDir = parser.value(workspace);
    QDir().mkpath(workspaceDir);
    segscope::ui::MainWindow window(workspaceDir);
    window.show();
    QString experiment = parser.positionalArguments().value(0);
    if (experiment.isEmpty()) {
        const QString demo = QStringLiteral(SEGSCOPE_SOURCE_PRESETS "/demo.json");
        const QString installed = QCoreApplication::applicationDirPath() + QStringLiteral("/../share/segscope/presets/demo.json");
        experiment = QFileInfo::exists(installed) ? installed : demo;
    }
    const bool loaded = window.openExperiment(experiment);
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
            runs->diffSelected();
            window.tabs()->setCurrentWidget(runs);
        });
    }
    if (parser.isSet(tab)) {
        const int index = parser.value(tab).toInt();
        QTimer::singleShot(0, &window, [&window, index] { window.tabs()->setCurrentIndex(index); });
    }
    if (parser.isSet(screenshot)) {
        const QString path = parser.value(screenshot);
        QTimer::singleShot(parser.value(screenshotDelay).toInt(), &window, [&window, path] {
            const bool saved = window.grab().save(path);
            QCoreApplication::exit(saved ? 0 : 1);
        });
    }
    return app.exec();
}
