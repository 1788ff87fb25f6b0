#pragma once
// Text helpers shared by the Predictions views (private to ui/src).
#include "segscope/core/analysis/metrics.h"

#include <QString>

#include <optional>

namespace segscope::ui {

// "73.09", or "-" for an undefined value (core::formatPercent).
inline QString percentText(const std::optional<double>& value) {
    return QString::fromStdString(core::formatPercent(value));
}

}  // namespace segscope::ui
