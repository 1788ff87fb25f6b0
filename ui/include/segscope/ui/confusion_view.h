#pragma once
// The Predictions tab's confusion view: the split's confusion matrix as a heatmap (counts, or
// row-normalised); a click on cell (i, j) lists the images where true i was predicted as j, most
// pixels first, and a click on one of them opens it with the cell's pixels highlighted. The
// per-class metrics table beside it is sortable. GUI thread only.
#include "segscope/core/analysis/predictions.h"

#include <QWidget>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

class QCheckBox;
class QLabel;
class QListWidget;
class QTableWidget;

namespace segscope::ui {

class ConfusionView : public QWidget {
    Q_OBJECT
public:
    explicit ConfusionView(QWidget* parent = nullptr);

    // A new set (or none): matrix and metrics rebuilt, the cell list emptied.
    void setPredictions(std::shared_ptr<const core::PredictionSet> set);
    void setRowNormalised(bool on);
    // Lists the images of cell (target, prediction).
    void clickCell(int target, int prediction);
    std::optional<std::pair<int, int>> clickedCell() const { return cell_; }
    const std::vector<std::size_t>& cellList() const { return cellImages_; }
    // Opens the image of `row` in the cell list (emits cellImageActivated).
    void activateCellItem(int row);

    QListWidget* cellListWidget() const { return cellView_; }
    QTableWidget* confusionTable() const { return confusion_; }
    QTableWidget* metricsTable() const { return metrics_; }

Q_SIGNALS:
    void cellImageActivated(int index, int target, int prediction);

private:
    void rebuild();

    std::shared_ptr<const core::PredictionSet> set_;
    std::optional<std::pair<int, int>> cell_;
    std::vector<std::size_t> cellImages_;

    QTableWidget* confusion_ = nullptr;
    QCheckBox* rowNormalised_ = nullptr;
    QListWidget* cellView_ = nullptr;
    QLabel* cellTitle_ = nullptr;
    QTableWidget* metrics_ = nullptr;
};

}  // namespace segscope::ui
