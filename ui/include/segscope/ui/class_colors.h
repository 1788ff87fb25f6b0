#pragma once
// Class colours chosen by the user, saved with the workspace (WORKSPACE/class_colors.json,
// {"version": 1, "colors": {"class name": "#rrggbb"}}). Keyed by class name, so a colour picked
// for "person" applies to every run and dataset of the workspace that has a "person" class.
// GUI thread only.
#include "segscope/core/data/classes.h"

#include <QColor>
#include <QHash>
#include <QString>

#include <optional>
#include <vector>

namespace segscope::ui {

class ClassColors {
public:
    // Reads WORKSPACE/class_colors.json; a missing file is an empty table, an unreadable one is
    // reported through error() and left untouched on disk until the next save.
    explicit ClassColors(QString workspace);

    // `classes` with the user's colours applied by name.
    std::vector<core::ClassInfo> apply(std::vector<core::ClassInfo> classes) const;
    std::optional<QColor> color(const QString& className) const;
    // Sets one colour and saves the file atomically; false (and error()) when it cannot be written.
    bool setColor(const QString& className, const QColor& color);
    // Forgets one colour (the dataset's own applies again) and saves.
    bool resetColor(const QString& className);
    QString error() const { return error_; }
    QString path() const;

private:
    bool save();

    QString workspace_;
    QHash<QString, QColor> colors_;
    QString error_;
};

}  // namespace segscope::ui
