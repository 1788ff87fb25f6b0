#include "segscope/ui/class_colors.h"

#include <QDir>
#include <QFile>
#include <QSaveFile>
#include <nlohmann/json.hpp>

#include <optional>

namespace segscope::ui {

ClassColors::ClassColors(QString workspace) : workspace_(std::move(workspace)) {
    QFile file(path());
    if (!file.open(QIODevice::ReadOnly)) return;
    try {
        const nlohmann::json doc = nlohmann::json::parse(file.readAll().toStdString());
        for (const auto& [name, value] : doc.at("colors").items()) {
            const QColor colour(QString::fromStdString(value.get<std::string>()));
            if (!colour.isValid()) throw std::runtime_error("colors." + name + ": not a colour");
            colors_.insert(QString::fromStdString(name), colour);
        }
    } catch (const std::exception& e) {
        colors_.clear();
        error_ = QStringLiteral("%1: %2").arg(path(), QString::fromStdString(e.what()));
    }
}

QString ClassColors::path() const {
    return QDir(workspace_).filePath(QStringLiteral("class_colors.json"));
}

std::vector<core::ClassInfo> ClassColors::apply(std::vector<core::ClassInfo> classes) const {
    for (auto& c : classes) {
        const auto it = colors_.constFind(QString::fromStdString(c.name));
        if (it == colors_.constEnd()) continue;
        c.color = {std::uint8_t(it->red()), std::uint8_t(it->green()), std::uint8_t(it->blue())};
    }
    return classes;
}

std::optional<QColor> ClassColors::color(const QString& className) const {
    const auto it = colors_.constFind(className);
    if (it == colors_.constEnd()) return std::nullopt;
    return *it;
}

bool ClassColors::setColor(const QString& className, const QColor& color) {
    colors_.insert(className, color);
    return save();
}

bool ClassColors::resetColor(const QString& className) {
    colors_.remove(className);
    return save();
}

bool ClassColors::save() {
    nlohmann::json doc;
    doc["version"] = 1;
    doc["colors"] = nlohmann::json::object();
    for (auto it = colors_.constBegin(); it != colors_.constEnd(); ++it)
        doc["colors"][it.key().toStdString()] = it.value().name().toStdString();
    QDir().mkpath(workspace_);
    QSaveFile file(path());
    const std::string text = doc.dump(2) + "\n";
    if (!file.open(QIODevice::WriteOnly) || file.write(text.data(), qint64(text.size())) != qint64(text.size()) ||
        !file.commit()) {
        error_ = QStringLiteral("%1: %2").arg(path(), file.errorString());
        return false;
    }
    error_.clear();
    return true;
}

}  // namespace segscope::ui
