#include "segscope/ui/workspace.h"

#include <QDir>
#include <QStandardPaths>

namespace segscope::ui {

QString defaultWorkspace() {
    return QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation) + QStringLiteral("/SegScope");
}

QString demoDatasetPath(const QString& workspace) {
    return QDir(workspace).filePath(QStringLiteral("datasets/demo"));
}

} // namespace segscope::ui
