#include "segscope/ui/workspace.h"

#include "segscope/core/runs/run_store.h"

#include <QDir>
#include <QMessageBox>
#include <QStandardPaths>

namespace segscope::ui {

QString defaultWorkspace() {
    return QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation) + QStringLiteral("/SegScope");
}

QString demoDatasetPath(const QString& workspace) {
    return QDir(workspace).filePath(QStringLiteral("datasets/demo"));
}

bool prepareWorkspace(const QString& workspace, QWidget* parent, QString* summary) {
    namespace core = segscope::core;
    if (summary) summary->clear();
    const std::string path = workspace.toStdString();
    QString text;
    try {
        core::WorkspaceReport report;
        try {
            report = core::RunStore::open(path)->openReport();
        } catch (const core::DatabaseError& e) {
            report = core::repairWorkspace(path);
            if (report.reason.empty()) report.reason = e.reason();
        }
        if (report.nothingToReport()) return true;
        text = QString::fromStdString(report.summary());
        if (summary) *summary = text;
        QMessageBox::warning(parent, QObject::tr("Workspace repaired"),
                             QObject::tr("The workspace %1 needed attention:\n\n%2").arg(workspace, text));
        return true;
    } catch (const std::exception& e) {
        text = QString::fromStdString(e.what());
    } catch (...) {
        text = QObject::tr("unknown error");
    }
    if (summary) *summary = text;
    QMessageBox::critical(parent, QObject::tr("Cannot open the workspace"),
                          QObject::tr("SegScope cannot use the workspace %1:\n\n%2").arg(workspace, text));
    return false;
}

}  // namespace segscope::ui
