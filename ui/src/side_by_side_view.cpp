#include "segscope/ui/side_by_side_view.h"

#include "prediction_text.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/runs_panel.h"

#include <QtWidgets>
#include <opencv2/imgproc.hpp>

namespace segscope::ui {

SideBySideView::SideBySideView(QWidget* parent) : QWidget(parent) {
    auto* compareLayout = new QHBoxLayout(this);
    auto* compareColumn = new QVBoxLayout;
    compareColumn->addWidget(new QLabel(tr("Tick 2–4 runs:")));
    runs_ = new QListWidget;
    runs_->setMaximumWidth(300);
    compareColumn->addWidget(runs_, 1);
    auto* compareButton = new QPushButton(tr("Show side by side"));
    compareColumn->addWidget(compareButton);
    compareLayout->addLayout(compareColumn);
    grid_ = new QWidget;
    new QGridLayout(grid_);
    compareLayout->addWidget(grid_, 1);
    connect(compareButton, &QPushButton::clicked, this, [this] { Q_EMIT compareRequested(checkedRuns()); });
}

void SideBySideView::setRuns(const std::vector<core::RunSummary>& runs) {
    const QStringList checked = checkedRuns();
    runs_->clear();
    for (const auto& run : runs) {
        const QString id = QString::fromStdString(run.id);
        auto* item = new QListWidgetItem(runLabel(run), runs_);
        item->setData(Qt::UserRole, id);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(checked.contains(id) ? Qt::Checked : Qt::Unchecked);
    }
}

void SideBySideView::setChecked(const QStringList& runIds) {
    for (int row = 0; row < runs_->count(); ++row)
        runs_->item(row)->setCheckState(
            runIds.contains(runs_->item(row)->data(Qt::UserRole).toString()) ? Qt::Checked : Qt::Unchecked);
}

QStringList SideBySideView::checkedRuns() const {
    QStringList ids;
    for (int row = 0; row < runs_->count(); ++row)
        if (runs_->item(row)->checkState() == Qt::Checked) ids << runs_->item(row)->data(Qt::UserRole).toString();
    return ids;
}

void SideBySideView::setComparison(std::vector<Entry> entries) {
    entries_ = std::move(entries);
}

void SideBySideView::showImage(const core::PredictionSet* reference, std::optional<std::size_t> current,
                               const LabelStyle& style) {
    auto* grid = static_cast<QGridLayout*>(grid_->layout());
    while (QLayoutItem* item = grid->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    if (entries_.empty() || !reference) return;
    std::string id;
    if (current)
        id = reference->image(*current).id;
    else if (reference->size() > 0)
        id = reference->image(0).id;
    // The ground truth first, then each run's prediction.
    const int cells = int(entries_.size()) + 1;
    const int columns = cells > 3 ? (cells + 1) / 2 : cells;
    {
        auto* cell = new QWidget;
        auto* cellLayout = new QVBoxLayout(cell);
        auto* title = new QLabel;
        auto* picture = new QLabel;
        picture->setAlignment(Qt::AlignCenter);
        picture->setMinimumSize(200, 160);
        picture->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Ignored);
        try {
            const std::size_t index = current ? *current : 0;
            cv::Mat rgb = reference->loadImage(index);
            const cv::Mat truth = reference->loadGroundTruth(index);
            if (rgb.size() != truth.size()) cv::resize(rgb, rgb, truth.size());
            picture->setPixmap(QPixmap::fromImage(style.render(rgb, truth))
                                   .scaled(360, 300, Qt::KeepAspectRatio, Qt::SmoothTransformation));
            title->setText(tr("<b>Ground truth</b><br>%1").arg(QString::fromStdString(id)));
        } catch (const std::exception& error) {
            title->setText(QString::fromStdString(error.what()));
        }
        cellLayout->addWidget(title);
        cellLayout->addWidget(picture, 1);
        grid->addWidget(cell, 0, 0);
    }
    for (std::size_t r = 0; r < entries_.size(); ++r) {
        const auto& [runId, model, set] = entries_[r];
        auto* cell = new QWidget;
        auto* cellLayout = new QVBoxLayout(cell);
        auto* title = new QLabel;
        title->setWordWrap(true);
        auto* picture = new QLabel;
        picture->setAlignment(Qt::AlignCenter);
        picture->setMinimumSize(200, 160);
        picture->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Ignored);
        picture->setObjectName(QStringLiteral("side-by-side-%1").arg(r));
        std::optional<std::size_t> index;
        for (std::size_t i = 0; i < set->size(); ++i)
            if (set->image(i).id == id) index = i;
        if (!index) {
            title->setText(tr("%1 (%2): image %3 is not in its split").arg(model, runId, QString::fromStdString(id)));
        } else {
            try {
                cv::Mat rgb = set->loadImage(*index);
                const cv::Mat labels = set->loadPrediction(*index);
                if (rgb.size() != labels.size()) cv::resize(rgb, rgb, labels.size());
                const QImage image = style.render(rgb, labels);
                picture->setPixmap(
                    QPixmap::fromImage(image).scaled(360, 300, Qt::KeepAspectRatio, Qt::SmoothTransformation));
                title->setText(tr("<b>%1</b> · %2<br>%3 · image mIoU %4 · split mIoU %5")
                                   .arg(model, runId, QString::fromStdString(id),
                                        percentText(set->imageMeanIou(*index)), percentText(set->metrics().mIoU)));
            } catch (const std::exception& error) {
                title->setText(QString::fromStdString(error.what()));
            }
        }
        cellLayout->addWidget(title);
        cellLayout->addWidget(picture, 1);
        grid->addWidget(cell, int(r + 1) / columns, int(r + 1) % columns);
    }
}

}  // namespace segscope::ui
