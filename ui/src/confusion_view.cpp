#include "segscope/ui/confusion_view.h"

#include "prediction_text.h"

#include <QtWidgets>

#include <algorithm>
#include <cmath>

namespace segscope::ui {

namespace {

// A table item that sorts by a number (percent columns show "-" for undefined: those sort last).
class NumberItem : public QTableWidgetItem {
public:
    NumberItem(const QString& text, double value) : QTableWidgetItem(text) { setData(Qt::UserRole, value); }
    bool operator<(const QTableWidgetItem& other) const override {
        return data(Qt::UserRole).toDouble() < other.data(Qt::UserRole).toDouble();
    }
};

QString noCellText() {
    return ConfusionView::tr("Click a cell to list its images.");
}

}  // namespace

ConfusionView::ConfusionView(QWidget* parent) : QWidget(parent) {
    auto* confusionLayout = new QHBoxLayout(this);
    auto* matrixColumn = new QVBoxLayout;
    rowNormalised_ = new QCheckBox(tr("Row-normalised (share of each true class)"));
    confusion_ = new QTableWidget;
    confusion_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    confusion_->setSelectionMode(QAbstractItemView::SingleSelection);
    metrics_ = new QTableWidget;
    metrics_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    metrics_->setSortingEnabled(true);
    matrixColumn->addWidget(new QLabel(tr("Confusion matrix (rows: ground truth, columns: prediction); click a cell")));
    matrixColumn->addWidget(rowNormalised_);
    matrixColumn->addWidget(confusion_, 3);
    matrixColumn->addWidget(new QLabel(tr("Per-class metrics (click a header to sort)")));
    matrixColumn->addWidget(metrics_, 2);
    confusionLayout->addLayout(matrixColumn, 3);
    auto* cellColumn = new QVBoxLayout;
    cellTitle_ = new QLabel(noCellText());
    cellTitle_->setWordWrap(true);
    cellView_ = new QListWidget;
    cellColumn->addWidget(cellTitle_);
    cellColumn->addWidget(cellView_, 1);
    confusionLayout->addLayout(cellColumn, 1);

    connect(rowNormalised_, &QCheckBox::toggled, this, [this] { rebuild(); });
    connect(confusion_, &QTableWidget::cellClicked, this, [this](int row, int column) { clickCell(row, column); });
    connect(cellView_, &QListWidget::itemClicked, this,
            [this](QListWidgetItem* item) { activateCellItem(cellView_->row(item)); });
}

void ConfusionView::setPredictions(std::shared_ptr<const core::PredictionSet> set) {
    set_ = std::move(set);
    cell_.reset();
    cellImages_.clear();
    cellView_->clear();
    cellTitle_->setText(noCellText());
    rebuild();
}

void ConfusionView::setRowNormalised(bool on) {
    rowNormalised_->setChecked(on);
}

void ConfusionView::rebuild() {
    confusion_->clear();
    metrics_->setSortingEnabled(false);
    metrics_->clear();
    if (!set_) return;
    const int k = set_->classes();
    const auto names = set_->classNames();
    QStringList headers;
    for (const auto& n : names) headers << QString::fromStdString(n);
    confusion_->setRowCount(k);
    confusion_->setColumnCount(k);
    confusion_->setHorizontalHeaderLabels(headers);
    confusion_->setVerticalHeaderLabels(headers);
    const core::ConfusionMatrix& totals = set_->totals();
    const bool normalised = rowNormalised_->isChecked();
    std::int64_t maximum = 1;
    for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j) maximum = std::max(maximum, totals.count(i, j));
    for (int i = 0; i < k; ++i) {
        const std::int64_t row = totals.groundTruthPixels(i);
        for (int j = 0; j < k; ++j) {
            const std::int64_t n = totals.count(i, j);
            const double share = row > 0 ? double(n) / double(row) : 0.0;
            const double heat = normalised ? share : std::log1p(double(n)) / std::log1p(double(maximum));
            auto* item = new QTableWidgetItem(normalised ? QStringLiteral("%1%").arg(100.0 * share, 0, 'f', 1)
                                                         : QLocale().toString(qlonglong(n)));
            item->setTextAlignment(Qt::AlignCenter);
            // White to dark blue; diagonal cells in green so errors stand out.
            const int level = int(std::lround(255 * (1.0 - 0.85 * heat)));
            item->setBackground(i == j ? QColor(level, 255 - int(0.35 * (255 - level)), level)
                                       : QColor(level, level, 255));
            item->setForeground(heat > 0.55 ? Qt::white : Qt::black);
            item->setToolTip(tr("true %1 predicted as %2: %3 pixels (%4% of the true class)")
                                 .arg(headers[i], headers[j])
                                 .arg(n)
                                 .arg(100.0 * share, 0, 'f', 2));
            confusion_->setItem(i, j, item);
        }
    }
    confusion_->resizeColumnsToContents();

    const core::SegmentationMetrics m = set_->metrics();
    const QStringList columns{tr("Class"),     tr("IoU"),    tr("Acc"),        tr("Dice"),
                              tr("Precision"), tr("Recall"), tr("Pixel share")};
    metrics_->setColumnCount(columns.size());
    metrics_->setHorizontalHeaderLabels(columns);
    metrics_->setRowCount(int(m.perClass.size()));
    for (int r = 0; r < int(m.perClass.size()); ++r) {
        const core::ClassMetrics& c = m.perClass[std::size_t(r)];
        metrics_->setItem(r, 0, new QTableWidgetItem(QString::fromStdString(c.name)));
        const std::optional<double> values[] = {c.iou, c.acc, c.dice, c.precision, c.recall, c.pixelShare};
        for (int col = 0; col < 6; ++col)
            metrics_->setItem(r, col + 1, new NumberItem(percentText(values[col]), values[col].value_or(-1.0)));
    }
    metrics_->resizeColumnsToContents();
    metrics_->setSortingEnabled(true);
}

void ConfusionView::clickCell(int target, int prediction) {
    if (!set_ || target < 0 || prediction < 0 || target >= set_->classes() || prediction >= set_->classes()) return;
    cellImages_ = set_->imagesForCell(target, prediction);
    const auto names = set_->classNames();
    cellTitle_->setText(tr("True %1 predicted as %2: %n image(s), most pixels first", "", int(cellImages_.size()))
                            .arg(QString::fromStdString(names[std::size_t(target)]),
                                 QString::fromStdString(names[std::size_t(prediction)])));
    cellView_->clear();
    for (std::size_t index : cellImages_) {
        auto* item = new QListWidgetItem(tr("%1 — %2 px")
                                             .arg(QString::fromStdString(set_->image(index).id))
                                             .arg(set_->count(index, target, prediction)),
                                         cellView_);
        item->setData(Qt::UserRole, qulonglong(index));
    }
    cell_ = std::make_pair(target, prediction);
}

void ConfusionView::activateCellItem(int row) {
    if (!cell_ || row < 0 || row >= cellView_->count()) return;
    Q_EMIT cellImageActivated(int(cellView_->item(row)->data(Qt::UserRole).toULongLong()), cell_->first, cell_->second);
}

}  // namespace segscope::ui
