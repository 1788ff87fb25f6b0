#pragma once
// The per-user workspace folder: the demo dataset, presets and (later) the run database.
#include <QString>

namespace segscope::ui {

// Default workspace: the per-user application data folder (e.g. ~/.local/share/SegScope).
QString defaultWorkspace();
// Folder of the built-in demo dataset inside a workspace.
QString demoDatasetPath(const QString& workspace);

} // namespace segscope::ui
