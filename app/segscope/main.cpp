// segscope: the workbench GUI. Argument parsing only; everything else lives in segscope_ui.
#include "segscope/core/runtime.h"
#include "segscope/ui/main_window.h"
#include "segscope/ui/workspace.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QTimer>

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("SegScope"));
    QApplication::setApplicationVersion(QString::fromStdString(segscope::core::segscopeVersion()));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Semantic-segmentation workbench"));
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption workspace(QStringLiteral("workspace"), QStringLiteral("Workspace folder."), QStringLiteral("DIR"),
                                 segscope::ui::defaultWorkspace());
    QCommandLineOption check(QStringLiteral("check"), QStringLiteral("Run the dataset check once the demo is open."));
    parser.addOption(workspace);
    parser.addOption(check);
    parser.process(app);

    const QString workspaceDir = parser.value(workspace);
    QDir().mkpath(workspaceDir);
    segscope::ui::MainWindow window(workspaceDir);
    window.show();
    if (parser.isSet(check))
        QObject::connect(&window, &segscope::ui::MainWindow::datasetOpened, &window, [&window] { window.startCheck(); });
    QTimer::singleShot(0, &window, [&window] { window.openDemoDataset(); });
    return app.exec();
}
