#pragma once
// The per-user workspace folder: the demo dataset, presets and the run database.
#include <QString>

class QWidget;

namespace segscope::ui {

// Default workspace: the per-user application data folder (e.g. ~/.local/share/SegScope).
QString defaultWorkspace();
// Folder of the built-in demo dataset inside a workspace.
QString demoDatasetPath(const QString& workspace);

// Opens the workspace's run database once, on the GUI thread, before any panel uses it. A
// corrupt, foreign or emptied database is moved aside and rebuilt from the run folders, and a
// message box (parent `parent`) says what happened; so does an older workspace's migration
// when it had something to report. Returns false, after a message box naming the problem, when
// the workspace cannot be used at all (unwritable, written by a newer SegScope). `summary`, when
// given, receives the text shown (empty when nothing was shown). Never throws.
bool prepareWorkspace(const QString& workspace, QWidget* parent, QString* summary = nullptr);

}  // namespace segscope::ui
