// segscope: the workbench GUI. Argument parsing only; everything else lives in segscope_ui.
#include "segscope/core/runtime.h"
#include "segscope/ui/main_window.h"
#include "segscope/ui/workspace.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QTimer>
#include <QPixmap>

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
    QCommandLineOption screenshot(QStringLiteral("screenshot"),
                                  QStringLiteral("Save a PNG of the window after --screenshot-delay ms, then quit."),
                                  QStringLiteral("PNG"));
    QCommandLineOption screenshotDelay(QStringLiteral("screenshot-delay"), QStringLiteral("Delay before --screenshot."),
                                       QStringLiteral("MS"), QStringLiteral("3000"));
    parser.addOption(workspace);
    parser.addOption(check);
    parser.addOption(screenshot);
    parser.addOption(screenshotDelay);
    parser.process(app);

    const QString workspaceDir = parser.value(workspace);
    QDir().mkpath(workspaceDir);
    segscope::ui::MainWindow window(workspaceDir);
    window.show();
    if (parser.isSet(check))
        QObject::connect(&window, &segscope::ui::MainWindow::datasetOpened, &window, [&window] { window.startCheck(); });
    QTimer::singleShot(0, &window, [&window] { window.openDemoDataset(); });
    if (parser.isSet(screenshot)) {
        const QString path = parser.value(screenshot);
        QTimer::singleShot(parser.value(screenshotDelay).toInt(), &window, [&window, path] {
            const bool saved = window.grab().save(path);
            QCoreApplication::exit(saved ? 0 : 1);
        });
    }
    return app.exec();
}
