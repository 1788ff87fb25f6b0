#include "segscope/ui/runs_panel.h"

#include "segscope/ui/curves_widget.h"
#include "segscope/ui/qcustomplot_include.h"

#include <QtWidgets>

#include <cmath>

namespace segscope::ui {

QString runLabel(const core::RunSummary& run) {
    // The id as well as the name: runs of one experiment share their name.
    const QString id = QString::fromStdString(run.id);
    const QString name = run.name.empty() || run.name == run.id
                             ? id
                             : QStringLiteral("%1 (%2)").arg(QString::fromStdString(run.name), id);
    QString text =
        QStringLiteral("%1 · %2 · %3")
            .arg(name, QString::fromStdString(run.model), QString::fromLatin1(core::runStatusName(run.status)));
    if (run.bestMiou)
        text += QObject::tr(" · best mIoU %1").arg(QString::fromStdString(core::formatPercent(run.bestMiou)));
    return text;
}

namespace {

QVariant optionalNumber(const std::optional<double>& v) {
    return v ? QVariant(*v) : QVariant();
}

// Best evaluation's per-class IoU of a run.
std::vector<core::ClassRecord> bestClasses(core::RunStore& store, const std::string& runId) {
    const auto epochs = store.epochs(runId);
    int best = -1;
    double bestMiou = -1.0;
    for (const auto& e : epochs)
        if (e.mIoU && *e.mIoU > bestMiou) {
            bestMiou = *e.mIoU;
            best = e.epoch;
        }
    return best < 0 ? std::vector<core::ClassRecord>{} : store.classMetrics(runId, best);
}

}  // namespace

RunsModel::RunsModel(QObject* parent) : QAbstractTableModel(parent) {}

void RunsModel::setRuns(std::vector<core::RunSummary> runs) {
    beginResetModel();
    runs_ = std::move(runs);
    endResetModel();
}

int RunsModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : int(runs_.size());
}
int RunsModel::columnCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant RunsModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= int(runs_.size())) return {};
    const core::RunSummary& r = runs_[std::size_t(index.row())];
    if (role == Qt::TextAlignmentRole && index.column() >= Parameters && index.column() <= ImagesPerSecond)
        return int(Qt::AlignRight | Qt::AlignVCenter);
    if (role == Qt::ForegroundRole && index.column() == Status) {
        if (r.status == core::RunStatus::Failed) return QColor(190, 30, 30);
        if (r.status == core::RunStatus::Running) return QColor(20, 120, 20);
        if (r.status == core::RunStatus::Interrupted) return QColor(180, 110, 0);
    }
    if (role == Qt::ToolTipRole && index.column() == Status) return QString::fromStdString(r.statusMessage);
    // Qt::UserRole gives raw values for sorting; DisplayRole formatted text.
    const bool display = role == Qt::DisplayRole;
    if (role != Qt::DisplayRole && role != Qt::UserRole) return {};
    switch (index.column()) {
        case Name:
            return QString::fromStdString(r.name);
        case Model:
            return QString::fromStdString(r.model);
        case Dataset:
            return QString::fromStdString(r.dataset);
        case Status:
            return QString::fromLatin1(core::runStatusName(r.status));
        case Parameters:
            return display ? QLocale().toString(qlonglong(r.parameters)) : QVariant(qlonglong(r.parameters));
        case BestMiou:
            return display ? (r.bestMiou ? QString::number(*r.bestMiou, 'f', 4) : QString())
                           : optionalNumber(r.bestMiou);
        case FinalMiou:
            return display ? (r.finalMiou ? QString::number(*r.finalMiou, 'f', 4) : QString())
                           : optionalNumber(r.finalMiou);
        case Seconds:
            return display ? (r.seconds ? QString::number(*r.seconds, 'f', 1) : QString()) : optionalNumber(r.seconds);
        case ImagesPerSecond:
            return display ? (r.imagesPerSecond ? QString::number(*r.imagesPerSecond, 'f', 1) : QString())
                           : optionalNumber(r.imagesPerSecond);
        case Started:
            return QString::fromStdString(r.startedAt);
        case Id:
            return QString::fromStdString(r.id);
        default:
            return {};
    }
}

QVariant RunsModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
    static const char* const names[] = {"Name",       "Model",    "Dataset", "Status",  "Parameters", "Best mIoU",
                                        "Final mIoU", "Time (s)", "img/s",   "Started", "Id"};
    return section < ColumnCount ? tr(names[section]) : QVariant();
}

RunsPanel::RunsPanel(const QString& workspace, QWidget* parent) : QWidget(parent) {
    store_ = core::RunStore::open(workspace.toStdString());
    try {
        store_->markInterrupted();
    } catch (const std::exception&) {
        // Stale "running" rows stay as they are; the table still lists them.
    }
    model_ = new RunsModel(this);
    proxy_ = new QSortFilterProxyModel(this);
    proxy_->setSourceModel(model_);
    proxy_->setSortRole(Qt::UserRole);
    view_ = new QTableView;
    view_->setModel(proxy_);
    view_->setSortingEnabled(true);
    view_->setSelectionBehavior(QAbstractItemView::SelectRows);
    view_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    view_->horizontalHeader()->setStretchLastSection(true);
    view_->verticalHeader()->hide();
    view_->sortByColumn(RunsModel::Started, Qt::DescendingOrder);

    auto* compare = new QPushButton(tr("Compare selected"));
    auto* diff = new QPushButton(tr("Diff two"));
    auto* resume = new QPushButton(tr("Resume"));
    auto* replay = new QPushButton(tr("Replay"));
    auto* speed = new QDoubleSpinBox;
    speed->setRange(0.1, 1000.0);
    speed->setValue(20.0);
    speed->setSuffix(QStringLiteral("×"));
    speed->setToolTip(tr("Replay speed relative to the recorded wall time"));
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(compare);
    buttons->addWidget(diff);
    buttons->addWidget(resume);
    buttons->addWidget(replay);
    buttons->addWidget(speed);
    buttons->addStretch(1);

    curves_ = new CurvesWidget;
    classBars_ = new QCustomPlot;
    classBars_->setMinimumHeight(180);
    classBars_->yAxis->setLabel(tr("IoU (best evaluation)"));
    classBars_->legend->setVisible(true);
    diffTitle_ = new QLabel(tr("Select two runs and press Diff."));
    diffTable_ = new QTableWidget(0, 4);
    diffTable_->setHorizontalHeaderLabels({tr("Class"), tr("IoU A"), tr("IoU B"), tr("Δ IoU")});
    diffTable_->horizontalHeader()->setStretchLastSection(true);
    diffTable_->verticalHeader()->hide();

    auto* tabs = new QTabWidget;
    views_ = tabs;
    tabs->addTab(curves_, tr("Curves"));
    tabs->addTab(classBars_, tr("Per-class IoU"));
    auto* diffPage = new QWidget;
    diffPage_ = diffPage;
    auto* diffLayout = new QVBoxLayout(diffPage);
    diffLayout->addWidget(diffTitle_);
    diffLayout->addWidget(diffTable_);
    tabs->addTab(diffPage, tr("Diff"));
    compare->setToolTip(tr("Curves and per-class IoU of the selected runs (selecting shows them too)"));
    diff->setToolTip(tr("Per-class IoU of two selected runs, side by side"));
    resume->setToolTip(tr("Continue the selected interrupted run from its latest checkpoint"));
    replay->setToolTip(tr("Play the selected run's recorded curves back in scaled time"));

    auto* splitter = new QSplitter(Qt::Vertical);
    auto* top = new QWidget;
    auto* topLayout = new QVBoxLayout(top);
    topLayout->setContentsMargins(0, 0, 0, 0);
    topLayout->addWidget(view_);
    topLayout->addLayout(buttons);
    splitter->addWidget(top);
    splitter->addWidget(tabs);
    splitter->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(splitter);

    connect(compare, &QPushButton::clicked, this, [this] { compareSelected(); });
    connect(diff, &QPushButton::clicked, this, [this] { diffSelected(); });
    connect(resume, &QPushButton::clicked, this, [this] {
        const auto ids = selectedRunIds();
        if (ids.size() == 1) Q_EMIT resumeRequested(ids.front());
    });
    connect(replay, &QPushButton::clicked, this,
            [this, speed] { replaying() ? stopReplay() : replaySelected(speed->value()); });
    replayTimer_ = new QTimer(this);
    replayTimer_->setInterval(50);
    connect(replayTimer_, &QTimer::timeout, this, [this] {
        replayClock_ += 0.05 * replaySpeed_;
        QVector<core::StepEvent> steps;
        for (; replayStep_ < replaySteps_.size() && replaySteps_[replayStep_].wallSeconds <= replayClock_;
             ++replayStep_)
            steps.push_back(replaySteps_[replayStep_]);
        if (!steps.isEmpty()) curves_->appendSteps(replayRun_, steps);
        for (; replayEpoch_ < replayEpochs_.size() && replayEpochs_[replayEpoch_].wallSeconds <= replayClock_;
             ++replayEpoch_) {
            const auto& r = replayEpochs_[replayEpoch_];
            core::ValidationEvent e;
            e.epoch = r.epoch;
            e.step = r.step;
            e.wallSeconds = r.wallSeconds;
            e.metrics.mIoU = r.mIoU;
            e.metrics.aAcc = r.aAcc;
            e.metrics.mAcc = r.mAcc;
            curves_->appendValidation(replayRun_, e);
        }
        if (replayStep_ >= replaySteps_.size() && replayEpoch_ >= replayEpochs_.size()) {
            const QString run = replayRun_;
            stopReplay();
            Q_EMIT replayFinished(run);
        }
    });
    // Selecting runs shows them; the poll's re-selection of the same runs does not reload.
    connect(view_->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this] {
        QTimer::singleShot(0, this, [this] {
            if (replaying()) return;
            QStringList ids = selectedRunIds();
            ids.sort();
            if (ids != comparedIds_ && !ids.isEmpty()) compareSelected();
        });
    });
    poll_ = new QTimer(this);
    poll_->setInterval(1000);
    connect(poll_, &QTimer::timeout, this, [this] { refresh(); });
    poll_->start();
    refresh(true);
}

RunsPanel::~RunsPanel() = default;

void RunsPanel::refresh(bool force) {
    try {
        const std::int64_t counter = store_->changeCounter();
        if (!force && counter == lastCounter_) return;
        lastCounter_ = counter;
        const QStringList selected = selectedRunIds();
        model_->setRuns(store_->listRuns());
        selectRuns(selected);
    } catch (const std::exception& e) {
        Q_EMIT statusMessage(tr("Runs: %1").arg(QString::fromStdString(e.what())));
    }
}

void RunsPanel::selectRuns(const QStringList& runIds) {
    view_->clearSelection();
    for (int row = 0; row < model_->rowCount(); ++row) {
        if (!runIds.contains(QString::fromStdString(model_->run(row).id))) continue;
        const QModelIndex index = proxy_->mapFromSource(model_->index(row, 0));
        view_->selectionModel()->select(index, QItemSelectionModel::Select | QItemSelectionModel::Rows);
    }
}

QStringList RunsPanel::selectedRunIds() const {
    QStringList ids;
    if (!view_->selectionModel()) return ids;
    for (const QModelIndex& index : view_->selectionModel()->selectedRows())
        ids << QString::fromStdString(model_->run(proxy_->mapToSource(index).row()).id);
    return ids;
}

void RunsPanel::compareSelected() {
    const QStringList ids = selectedRunIds();
    comparedIds_ = ids;
    comparedIds_.sort();
    curves_->clear();
    classBars_->clearPlottables();
    if (ids.isEmpty()) return;
    try {
        QStringList classNames;
        std::vector<std::vector<core::ClassRecord>> perRun;
        for (const QString& id : ids) {
            const auto record = store_->run(id.toStdString());
            const QString label = record ? QString::fromStdString(record->name + " (" + record->model + ")") : id;
            curves_->loadFromStore(*store_, id, label);
            perRun.push_back(bestClasses(*store_, id.toStdString()));
            for (const auto& c : perRun.back())
                if (!classNames.contains(QString::fromStdString(c.className)))
                    classNames << QString::fromStdString(c.className);
        }
        // Grouped bars: one group per class, one bar per run.
        auto* group = new QCPBarsGroup(classBars_);
        const double barWidth = 0.8 / std::max<qsizetype>(1, ids.size());
        for (qsizetype r = 0; r < ids.size(); ++r) {
            auto* bars = new QCPBars(classBars_->xAxis, classBars_->yAxis);
            bars->setWidth(barWidth);
            bars->setBarsGroup(group);
            const QColor color = QColor::fromHsv(int(r * 360 / std::max<qsizetype>(1, ids.size())), 170, 200);
            bars->setBrush(color);
            bars->setPen(QPen(color.darker(130)));
            bars->setName(ids[r]);
            QVector<double> keys, values;
            for (const auto& c : perRun[std::size_t(r)]) {
                keys << double(classNames.indexOf(QString::fromStdString(c.className)) + 1);
                values << (c.iou ? *c.iou : 0.0);
            }
            bars->setData(keys, values);
        }
        auto ticker = QSharedPointer<QCPAxisTickerText>::create();
        for (qsizetype i = 0; i < classNames.size(); ++i) ticker->addTick(double(i + 1), classNames[i]);
        classBars_->xAxis->setTicker(ticker);
        classBars_->xAxis->setTickLabelRotation(classNames.size() > 8 ? 60 : 0);
        classBars_->xAxis->setRange(0.3, classNames.size() + 0.7);
        classBars_->yAxis->setRange(0, 1.0);
        classBars_->replot(QCustomPlot::rpQueuedReplot);
    } catch (const std::exception& e) {
        Q_EMIT statusMessage(tr("Compare: %1").arg(QString::fromStdString(e.what())));
    }
}

void RunsPanel::replaySelected(double speed) {
    stopReplay();
    const QStringList ids = selectedRunIds();
    if (ids.isEmpty()) return;
    try {
        replayRun_ = ids.front();
        replaySteps_ = store_->steps(replayRun_.toStdString());
        replayEpochs_ = store_->epochs(replayRun_.toStdString());
    } catch (const std::exception& e) {
        Q_EMIT statusMessage(tr("Replay: %1").arg(QString::fromStdString(e.what())));
        return;
    }
    replayStep_ = replayEpoch_ = 0;
    replayClock_ = 0.0;
    replaySpeed_ = std::max(0.01, speed);
    curves_->clear();
    curves_->addRun(replayRun_, tr("replay of %1").arg(replayRun_));
    if (!replayEpochs_.empty() && replayEpochs_.front().epoch > 0)
        curves_->setStepsPerEpoch(replayRun_, replayEpochs_.front().step / replayEpochs_.front().epoch);
    replayTimer_->start();
}

void RunsPanel::stopReplay() {
    replayTimer_->stop();
}

bool RunsPanel::replaying() const {
    return replayTimer_->isActive();
}

void RunsPanel::diffSelected() {
    const QStringList ids = selectedRunIds();
    views_->setCurrentWidget(diffPage_);
    diffTable_->setRowCount(0);
    if (ids.size() != 2) {
        diffTitle_->setText(tr("Select exactly two runs to diff."));
        return;
    }
    try {
        // The older run is A, so Δ reads as "what changed since". The model lists runs newest
        // first (creation time, then insertion order), so the older one has the larger row.
        auto rowOf = [this](const QString& id) {
            for (int row = 0; row < model_->rowCount(); ++row)
                if (QString::fromStdString(model_->run(row).id) == id) return row;
            return -1;
        };
        QStringList ordered = ids;
        std::sort(ordered.begin(), ordered.end(),
                  [&](const QString& a, const QString& b) { return rowOf(a) > rowOf(b); });
        const auto a = bestClasses(*store_, ordered[0].toStdString());
        const auto b = bestClasses(*store_, ordered[1].toStdString());
        diffTitle_->setText(
            tr("B = %1 against A = %2 (best evaluations); regressions in red").arg(ordered[1], ordered[0]));
        for (const auto& ca : a) {
            const core::ClassRecord* cb = nullptr;
            for (const auto& c : b)
                if (c.className == ca.className) cb = &c;
            const int row = diffTable_->rowCount();
            diffTable_->insertRow(row);
            diffTable_->setItem(row, 0, new QTableWidgetItem(QString::fromStdString(ca.className)));
            auto cell = [](const std::optional<double>& v) {
                return new QTableWidgetItem(v ? QString::number(*v, 'f', 4) : QStringLiteral("–"));
            };
            diffTable_->setItem(row, 1, cell(ca.iou));
            diffTable_->setItem(row, 2, cell(cb ? cb->iou : std::nullopt));
            std::optional<double> delta;
            if (ca.iou && cb && cb->iou) delta = *cb->iou - *ca.iou;
            auto* d = new QTableWidgetItem(delta ? QString::asprintf("%+.4f", *delta) : QStringLiteral("–"));
            if (delta && *delta < 0) {
                d->setForeground(QColor(190, 30, 30));
                d->setBackground(QColor(255, 225, 225));
            } else if (delta && *delta > 0) {
                d->setForeground(QColor(20, 120, 20));
            }
            diffTable_->setItem(row, 3, d);
        }
    } catch (const std::exception& e) {
        Q_EMIT statusMessage(tr("Diff: %1").arg(QString::fromStdString(e.what())));
    }
}

}  // namespace segscope::ui
