#pragma once
// The Predictions tab's side-by-side view: the ground truth of the current image, then its
// prediction by each of 2-4 runs on the same split (found by image id), with each run's image
// and split mIoU. The runs are ticked in a list; "Show side by side" asks the panel to predict
// (or reopen) them. GUI thread only.
#include "segscope/core/analysis/predictions.h"
#include "segscope/ui/label_style.h"

#include <QStringList>
#include <QWidget>

#include <memory>
#include <optional>
#include <vector>

class QListWidget;

namespace segscope::core {
struct RunSummary;
}

namespace segscope::ui {

class SideBySideView : public QWidget {
    Q_OBJECT
public:
    struct Entry {
        QString runId;
        QString model;
        std::shared_ptr<const core::PredictionSet> set;
    };

    explicit SideBySideView(QWidget* parent = nullptr);

    // The runs to tick, labelled by runLabel(); runs ticked before stay ticked.
    void setRuns(const std::vector<core::RunSummary>& runs);
    void setChecked(const QStringList& runIds);
    QStringList checkedRuns() const;

    void setComparison(std::vector<Entry> entries);
    int compared() const { return int(entries_.size()); }
    // Redraws the grid for image `index` of `reference` (the first image without one).
    void showImage(const core::PredictionSet* reference, std::optional<std::size_t> index, const LabelStyle& style);

Q_SIGNALS:
    void compareRequested(const QStringList& runIds);

private:
    std::vector<Entry> entries_;
    QListWidget* runs_ = nullptr;
    QWidget* grid_ = nullptr;
};

}  // namespace segscope::ui
