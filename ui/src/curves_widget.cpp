#include "segscope/ui/curves_widget.h"

#include "segscope/core/runs/run_store.h"
#include "segscope/ui/qcustomplot_include.h"

#include <QPainterPath>
#include <QPainterPathStroker>
#include <QSvgGenerator>
#include <QtWidgets>

#include <algorithm>
#include <cmath>
#include <limits>

namespace segscope::ui {
namespace {

// Places a "best" label next to its point: above it when it fits inside the axis rect and clear
// of the lines it must not cover (the run's aAcc and mAcc), else below, else to the left (above,
// below, level), else to the right; if nothing is clear, the first place inside the rect.
void placeBestLabel(QCPItemText* label, const QCPAxisRect* rect, const QList<QCPGraph*>& avoid, const QRectF& legend,
                    int gap) {
    const QRectF inside = QRectF(rect->rect()).adjusted(-0.5, -0.5, 0.5, 0.5);
    QPainterPath lines;
    if (!legend.isEmpty()) lines.addRect(legend);  // drawn over the label
    for (QCPGraph* graph : avoid) {
        if (!graph) continue;
        QPainterPath line;
        bool first = true;
        for (auto it = graph->data()->constBegin(); it != graph->data()->constEnd(); ++it) {
            const QPointF p = graph->coordsToPixels(it->key, it->value);
            if (first)
                line.moveTo(p);
            else
                line.lineTo(p);
            first = false;
        }
        QPainterPathStroker stroker;
        stroker.setWidth(graph->pen().widthF() + 2);
        lines.addPath(stroker.createStroke(line));
        for (auto it = graph->data()->constBegin(); it != graph->data()->constEnd(); ++it)
            lines.addEllipse(graph->coordsToPixels(it->key, it->value), 4, 4);  // the markers
    }
    const struct {
        Qt::Alignment alignment;
        int dx, dy;  // padding towards the point, in gaps
    } places[] = {
        {Qt::AlignHCenter | Qt::AlignBottom, 0, 1}, {Qt::AlignHCenter | Qt::AlignTop, 0, 1},
        {Qt::AlignRight | Qt::AlignBottom, 1, 1},   {Qt::AlignRight | Qt::AlignTop, 1, 1},
        {Qt::AlignRight | Qt::AlignVCenter, 1, 0},  {Qt::AlignLeft | Qt::AlignBottom, 1, 1},
        {Qt::AlignLeft | Qt::AlignTop, 1, 1},       {Qt::AlignLeft | Qt::AlignVCenter, 1, 0},
        {Qt::AlignHCenter | Qt::AlignTop, 0, 3},    {Qt::AlignRight | Qt::AlignTop, 1, 3},
        {Qt::AlignHCenter | Qt::AlignBottom, 0, 3}, {Qt::AlignRight | Qt::AlignBottom, 1, 3},
    };
    const auto apply = [&](int i) {
        const Qt::Alignment a = places[i].alignment;
        const int x = places[i].dx * gap, y = places[i].dy * gap;
        label->setPositionAlignment(a);
        label->setPadding(QMargins(a & Qt::AlignLeft ? x : 0, a & Qt::AlignTop ? y : 0, a & Qt::AlignRight ? x : 0,
                                   a & Qt::AlignBottom ? y : 0));
    };
    int fallback = -1;
    for (int i = 0; i < int(std::size(places)); ++i) {
        apply(i);
        const QRectF box = QRectF(label->topLeft->pixelPosition(), label->bottomRight->pixelPosition()).normalized();
        if (!inside.contains(box)) continue;
        // The padding reaches the point, where lines meet; the text itself must be clear.
        const QMargins p = label->padding();
        if (!lines.intersects(box.adjusted(p.left(), p.top(), -p.right(), -p.bottom()))) return;
        if (fallback < 0) fallback = i;
    }
    apply(std::max(0, fallback));
}

const QColor kPalette[] = {QColor(31, 119, 180), QColor(214, 39, 40),  QColor(44, 160, 44), QColor(148, 103, 189),
                           QColor(255, 127, 14), QColor(23, 190, 207), QColor(140, 86, 75), QColor(227, 119, 194)};

// Min/max per pixel column: long series keep their spikes but cost only ~2 points per pixel.
void downsample(const QVector<double>& x, const QVector<double>& y, int width, QVector<double>* outX,
                QVector<double>* outY) {
    outX->clear();
    outY->clear();
    const int n = int(std::min(x.size(), y.size()));
    if (n <= 2 * width || width <= 0) {
        *outX = x.mid(0, n);
        *outY = y.mid(0, n);
        return;
    }
    const double x0 = x.front(), x1 = x.back();
    const double span = std::max(1e-12, x1 - x0);
    int i = 0;
    for (int column = 0; column < width && i < n; ++column) {
        const double end = x0 + span * (column + 1) / width;
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        int loAt = -1, hiAt = -1;
        for (; i < n && (x[i] <= end || column == width - 1); ++i) {
            if (!std::isfinite(y[i])) continue;
            if (y[i] < lo) {
                lo = y[i];
                loAt = i;
            }
            if (y[i] > hi) {
                hi = y[i];
                hiAt = i;
            }
        }
        if (loAt < 0) continue;
        const int first = std::min(loAt, hiAt), second = std::max(loAt, hiAt);
        outX->push_back(x[first]);
        outY->push_back(y[first]);
        if (second != first) {
            outX->push_back(x[second]);
            outY->push_back(y[second]);
        }
    }
}

QVector<double> ema(const QVector<double>& y, double weight) {
    QVector<double> out(y.size());
    double value = 0.0, norm = 0.0;
    for (int i = 0; i < y.size(); ++i) {
        // Debiased EMA, as TensorBoard smooths.
        value = weight * value + (1.0 - weight) * y[i];
        norm = weight * norm + (1.0 - weight);
        out[i] = norm > 0 ? value / norm : y[i];
    }
    return out;
}

double opt(const std::optional<double>& v) {
    return v ? *v : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

CurvesWidget::CurvesWidget(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* controls = new QHBoxLayout;
    xAxis_ = new QComboBox;
    xAxis_->addItems({tr("Step"), tr("Epoch"), tr("Wall time (s)")});
    log_ = new QCheckBox(tr("Log scale"));
    autoFit_ = new QCheckBox(tr("Auto-fit"));
    autoFit_->setChecked(true);
    smoothingSlider_ = new QSlider(Qt::Horizontal);
    smoothingSlider_->setRange(0, 99);
    smoothingSlider_->setValue(90);
    smoothingSlider_->setMaximumWidth(160);
    controls->addWidget(new QLabel(tr("X axis")));
    controls->addWidget(xAxis_);
    controls->addWidget(log_);
    controls->addWidget(autoFit_);
    controls->addWidget(new QLabel(tr("Smoothing")));
    controls->addWidget(smoothingSlider_);
    controls->addStretch(1);
    layout->addLayout(controls);

    auto* body = new QHBoxLayout;
    auto* plots = new QVBoxLayout;
    lossPlot_ = new QCustomPlot;
    validationPlot_ = new QCustomPlot;
    for (QCustomPlot* plot : {lossPlot_, validationPlot_}) {
        plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
        plot->setMinimumHeight(160);      // two stacked plots fit a 720-line screen
        plot->legend->setVisible(false);  // shown by rebuild() once there are graphs
        plot->legend->setFont(QFont(font().family(), 8));
        plots->addWidget(plot, 1);
    }
    lossPlot_->yAxis->setLabel(tr("training loss"));
    lossPlot_->yAxis2->setVisible(true);
    lossPlot_->yAxis2->setLabel(tr("learning rate"));
    validationPlot_->yAxis->setLabel(tr("validation"));
    validationPlot_->yAxis->setRange(0, 1);
    // Validation curves rise towards the top right: keep the legend out of their way, and give
    // the plot the same right margin as the loss plot so the x axes line up.
    validationPlot_->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);
    validationPlot_->yAxis2->setVisible(true);
    validationPlot_->yAxis2->setTickLabels(false);
    validationPlot_->yAxis2->setLabel(QStringLiteral(" "));
    connect(validationPlot_, &QCustomPlot::afterLayout, this, [this] {
        const int gap = presenter_ ? 13 : 10;  // clear of the best marker's circle
        // The legend sits bottom right, out of the rising curves' way, unless it would hide a best
        // point: then bottom left, else top left.
        QCPLegend* legend = validationPlot_->legend;
        QCPLayoutInset* inset = validationPlot_->axisRect()->insetLayout();
        const auto hidesBest = [&] {
            const QRectF around = QRectF(legend->outerRect()).adjusted(-3 * gap, -3 * gap, 3 * gap, 3 * gap);
            for (const BestLabel& best : bestLabels_)
                if (around.contains(best.label->position->pixelPosition())) return true;
            return false;
        };
        if (legend->visible())
            for (Qt::Alignment where :
                 {Qt::AlignBottom | Qt::AlignRight, Qt::AlignBottom | Qt::AlignLeft, Qt::AlignTop | Qt::AlignLeft}) {
                inset->setInsetAlignment(0, where);
                inset->update(QCPLayoutElement::upLayout);
                if (!hidesBest()) break;
            }
        const QRectF legendRect = legend->visible() ? QRectF(legend->outerRect()) : QRectF();
        for (const BestLabel& best : bestLabels_)
            placeBestLabel(best.label, validationPlot_->axisRect(), {best.aacc, best.macc}, legendRect, gap);
    });
    body->addLayout(plots, 1);
    classToggles_ = new QListWidget;
    classToggles_->setMaximumWidth(170);
    classToggles_->setToolTip(tr("Per-class IoU curves"));
    body->addWidget(classToggles_);
    layout->addLayout(body, 1);

    replotTimer_ = new QTimer(this);
    replotTimer_->setInterval(200);
    connect(replotTimer_, &QTimer::timeout, this, [this] {
        if (dirty_) rebuild();
    });
    replotTimer_->start();
    connect(xAxis_, &QComboBox::currentIndexChanged, this, [this](int i) { setXAxisMode(XAxisMode(i)); });
    connect(log_, &QCheckBox::toggled, this, &CurvesWidget::setLogScale);
    connect(smoothingSlider_, &QSlider::valueChanged, this, [this](int v) { setSmoothing(v / 100.0); });
    connect(classToggles_, &QListWidget::itemChanged, this, [this](QListWidgetItem* item) {
        if (item->checkState() == Qt::Checked)
            hiddenClasses_.remove(item->text());
        else
            hiddenClasses_.insert(item->text());
        markDirty();
    });
    connect(autoFit_, &QCheckBox::toggled, this, [this] { markDirty(); });
}

void CurvesWidget::addRun(const QString& runId, const QString& label) {
    if (series_.contains(runId)) return;
    Series s;
    s.label = label;
    s.color = kPalette[order_.size() % (sizeof kPalette / sizeof kPalette[0])];
    series_.insert(runId, s);
    order_.push_back(runId);
    markDirty();
}

void CurvesWidget::removeRun(const QString& runId) {
    series_.remove(runId);
    order_.removeAll(runId);
    rebuildClassToggles();
    markDirty();
}

void CurvesWidget::clear() {
    series_.clear();
    order_.clear();
    rebuildClassToggles();
    markDirty();
}

void CurvesWidget::setStepsPerEpoch(const QString& runId, std::int64_t stepsPerEpoch) {
    if (auto it = series_.find(runId); it != series_.end()) it->stepsPerEpoch = stepsPerEpoch;
}

void CurvesWidget::setClassNames(const QString& runId, const QStringList& names) {
    auto it = series_.find(runId);
    if (it == series_.end()) return;
    it->classNames = names;
    it->classIou.resize(names.size());
    rebuildClassToggles();
}

void CurvesWidget::rebuildClassToggles() {
    QStringList names;
    for (const auto& id : order_)
        for (const auto& n : series_[id].classNames)
            if (!names.contains(n)) names << n;
    {
        const QSignalBlocker blocker(classToggles_);
        classToggles_->clear();
        for (const auto& n : names) {
            auto* item = new QListWidgetItem(n, classToggles_);
            item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
            item->setCheckState(hiddenClasses_.contains(n) ? Qt::Unchecked : Qt::Checked);
        }
    }
    markWorstClasses();
}

void CurvesWidget::markWorstClasses() {
    // The latest evaluation of the last run added (the live run, or the newest compared one).
    QHash<QString, double> latest;
    for (const auto& id : order_) {
        const Series& s = series_[id];
        for (int c = 0; c < s.classIou.size() && c < s.classNames.size(); ++c)
            if (!s.classIou[c].isEmpty() && std::isfinite(s.classIou[c].back()))
                latest[s.classNames[c]] = s.classIou[c].back();
    }
    QStringList sorted = latest.keys();
    std::sort(sorted.begin(), sorted.end(), [&](const QString& a, const QString& b) {
        return latest[a] != latest[b] ? latest[a] < latest[b] : a < b;
    });
    // The worst third, at least one and at most three, when there is more than one class.
    const int count = sorted.size() > 1 ? std::clamp(int(sorted.size()) / 3, 1, 3) : 0;
    worstClasses_ = sorted.mid(0, count);
    const QSignalBlocker blocker(classToggles_);
    for (int i = 0; i < classToggles_->count(); ++i) {
        QListWidgetItem* item = classToggles_->item(i);
        const bool worst = worstClasses_.contains(item->text());
        QFont f = item->font();
        f.setBold(worst);
        item->setFont(f);
        item->setForeground(worst ? QBrush(QColor(0xc0, 0x20, 0x20)) : QBrush());
        item->setToolTip(latest.contains(item->text()) ? tr("IoU %1 at the latest evaluation%2")
                                                             .arg(latest[item->text()], 0, 'f', 3)
                                                             .arg(worst ? tr(" (among the worst)") : QString())
                                                       : tr("not evaluated yet"));
    }
}

void CurvesWidget::appendSteps(const QString& runId, const QVector<core::StepEvent>& steps) {
    auto it = series_.find(runId);
    if (it == series_.end()) return;
    Series& s = *it;
    for (const auto& e : steps) {
        s.step.push_back(double(e.step));
        const double perEpoch = s.stepsPerEpoch > 0 ? double(s.stepsPerEpoch) : 1.0;
        s.epoch.push_back(s.stepsPerEpoch > 0 ? double(e.step) / perEpoch : double(e.epoch));
        s.time.push_back(e.wallSeconds);
        s.loss.push_back(e.loss);
        s.rate.push_back(e.learningRate);
    }
    markDirty();
}

void CurvesWidget::appendValidation(const QString& runId, const core::ValidationEvent& e) {
    auto it = series_.find(runId);
    if (it == series_.end()) return;
    Series& s = *it;
    s.valStep.push_back(double(e.step));
    s.valEpoch.push_back(s.stepsPerEpoch > 0 ? double(e.step) / double(s.stepsPerEpoch) : double(e.epoch));
    s.valTime.push_back(e.wallSeconds);
    s.miou.push_back(opt(e.metrics.mIoU));
    s.aacc.push_back(opt(e.metrics.aAcc));
    s.macc.push_back(opt(e.metrics.mAcc));
    if (s.classNames.isEmpty()) {
        QStringList names;
        for (const auto& c : e.metrics.perClass) names << QString::fromStdString(c.name);
        setClassNames(runId, names);
    }
    for (int c = 0; c < s.classIou.size() && c < int(e.metrics.perClass.size()); ++c)
        s.classIou[c].push_back(opt(e.metrics.perClass[std::size_t(c)].iou));
    if (e.metrics.mIoU && (s.bestIndex < 0 || *e.metrics.mIoU > s.miou[s.bestIndex]))
        s.bestIndex = int(s.miou.size()) - 1;
    markWorstClasses();
    markDirty();
}

void CurvesWidget::loadFromStore(core::RunStore& store, const QString& runId, const QString& label) {
    removeRun(runId);
    addRun(runId, label);
    const std::string id = runId.toStdString();
    const auto epochs = store.epochs(id);
    const auto steps = store.steps(id);
    // Steps per epoch from the steps themselves (each names its 0-based epoch): evaluation
    // numbers count evaluations, not epochs, when a run validates every N iterations.
    std::int64_t firstEpochSteps = 0;
    bool laterEpoch = false;
    for (const auto& r : steps) {
        if (r.epoch == 0)
            ++firstEpochSteps;
        else
            laterEpoch = true;
    }
    if (laterEpoch && firstEpochSteps > 0)
        setStepsPerEpoch(runId, firstEpochSteps);
    else if (!epochs.empty() && epochs.front().epoch > 0 && epochs.front().step > 0)
        setStepsPerEpoch(runId, epochs.front().step / epochs.front().epoch);
    // The store's steps are the trainer's StepEvents (StepRecord is StepEvent).
    appendSteps(runId, QVector<core::StepEvent>(steps.begin(), steps.end()));
    for (const auto& r : epochs) {
        core::ValidationEvent e;
        e.epoch = r.epoch;
        e.step = r.step;
        e.metrics.mIoU = r.mIoU;
        e.metrics.aAcc = r.aAcc;
        e.metrics.mAcc = r.mAcc;
        e.wallSeconds = r.wallSeconds;
        for (const auto& c : store.classMetrics(id, r.epoch)) {
            core::ClassMetrics m;
            m.name = c.className;
            m.iou = c.iou;
            e.metrics.perClass.push_back(m);
        }
        appendValidation(runId, e);
    }
}

void CurvesWidget::setXAxisMode(XAxisMode mode) {
    xMode_ = mode;
    if (xAxis_->currentIndex() != int(mode)) xAxis_->setCurrentIndex(int(mode));
    const QString label = mode == XAxisMode::Step ? tr("step") : mode == XAxisMode::Epoch ? tr("epoch") : tr("seconds");
    lossPlot_->xAxis->setLabel(label);
    validationPlot_->xAxis->setLabel(label);
    markDirty();
}

void CurvesWidget::setLogScale(bool logScale) {
    logScale_ = logScale;
    if (log_->isChecked() != logScale) log_->setChecked(logScale);
    lossPlot_->yAxis->setScaleType(logScale ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    lossPlot_->yAxis->setTicker(logScale ? QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog)
                                         : QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    markDirty();
}

void CurvesWidget::setSmoothing(double weight) {
    smoothing_ = std::clamp(weight, 0.0, 0.999);
    markDirty();
}

void CurvesWidget::setPresenterMode(bool on) {
    presenter_ = on;
    QFont f = font();
    f.setPointSize(on ? 16 : 9);
    for (QCustomPlot* plot : {lossPlot_, validationPlot_}) {
        for (QCPAxis* axis : {plot->xAxis, plot->yAxis, plot->yAxis2}) {
            axis->setTickLabelFont(f);
            axis->setLabelFont(f);
        }
        plot->legend->setFont(f);
    }
    markDirty();
}

const QVector<double>& CurvesWidget::xFor(const Series& s, bool validation) const {
    switch (xMode_) {
        case XAxisMode::Step:
            return validation ? s.valStep : s.step;
        case XAxisMode::Epoch:
            return validation ? s.valEpoch : s.epoch;
        case XAxisMode::WallTime:
            return validation ? s.valTime : s.time;
    }
    return s.step;
}

void CurvesWidget::markDirty() {
    dirty_ = true;
}

void CurvesWidget::rebuildNow() {
    rebuild();
}

void CurvesWidget::rebuild() {
    dirty_ = false;
    const double width = presenter_ ? 3.5 : 1.6;
    lossPlot_->clearGraphs();
    lossPlot_->clearItems();
    bestLabels_.clear();
    validationPlot_->clearGraphs();
    validationPlot_->clearItems();
    const int pixels = std::max(100, lossPlot_->axisRect()->width());
    QSet<QString> shownClasses;
    for (int i = 0; i < classToggles_->count(); ++i)
        if (classToggles_->item(i)->checkState() == Qt::Checked) shownClasses.insert(classToggles_->item(i)->text());

    double rateMax = 0.0;
    for (const QString& id : order_) {
        const Series& s = series_[id];
        const QString prefix = order_.size() > 1 ? s.label + QStringLiteral(": ") : QString();
        QVector<double> x, y;
        const QVector<double>& xs = xFor(s, false);
        // Raw loss, faint.
        downsample(xs, s.loss, pixels, &x, &y);
        QCPGraph* raw = lossPlot_->addGraph();
        QColor faint = s.color;
        faint.setAlpha(70);
        raw->setPen(QPen(faint, 1));
        raw->setData(x, y, true);
        raw->setName(prefix + tr("loss"));
        raw->removeFromLegend();
        // Smoothed loss, bold.
        downsample(xs, ema(s.loss, smoothing_), pixels, &x, &y);
        QCPGraph* smooth = lossPlot_->addGraph();
        smooth->setPen(QPen(s.color, width));
        smooth->setData(x, y, true);
        smooth->setName(prefix + tr("loss (EMA)"));
        // Learning rate on the right axis.
        downsample(xs, s.rate, pixels, &x, &y);
        QCPGraph* rate = lossPlot_->addGraph(lossPlot_->xAxis, lossPlot_->yAxis2);
        rate->setPen(QPen(s.color, 1, Qt::DashLine));
        rate->setData(x, y, true);
        rate->setName(prefix + tr("learning rate"));
        // With several runs the legend names each run once (its smoothed loss and its mIoU).
        if (order_.size() > 1) {
            rate->removeFromLegend();
            smooth->setName(s.label);
        }
        for (double r : s.rate) rateMax = std::max(rateMax, r);

        const QVector<double>& vx = xFor(s, true);
        const struct {
            const QVector<double>* values;
            QString name;
            Qt::PenStyle style;
        } metrics[] = {{&s.miou, tr("mIoU"), Qt::SolidLine},
                       {&s.aacc, tr("aAcc"), Qt::DashLine},
                       {&s.macc, tr("mAcc"), Qt::DotLine}};
        QCPGraph* runGraphs[3] = {};
        int metricIndex = 0;
        for (const auto& m : metrics) {
            QCPGraph* g = validationPlot_->addGraph();
            runGraphs[metricIndex++] = g;
            g->setPen(QPen(s.color, m.style == Qt::SolidLine ? width * 1.3 : width, m.style));
            g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, presenter_ ? 8 : 5));
            g->setData(vx, *m.values, true);
            g->setName(order_.size() > 1 ? s.label + QStringLiteral(" ") + m.name : m.name);
            if (order_.size() > 1 && m.style != Qt::SolidLine) g->removeFromLegend();
        }
        // One run: a colour per class, named in the legend. Several runs: the run's colour
        // everywhere, the class told apart by line style and marker (the class list names them),
        // so the legend names runs only and does not cover the data.
        static const Qt::PenStyle classStyles[] = {Qt::DashLine, Qt::DotLine, Qt::DashDotLine, Qt::DashDotDotLine};
        static const QCPScatterStyle::ScatterShape classShapes[] = {
            QCPScatterStyle::ssCircle,  QCPScatterStyle::ssSquare, QCPScatterStyle::ssTriangle,
            QCPScatterStyle::ssDiamond, QCPScatterStyle::ssCross,  QCPScatterStyle::ssPlus,
            QCPScatterStyle::ssStar};
        const bool compared = order_.size() > 1;
        for (int c = 0; c < s.classIou.size() && c < s.classNames.size(); ++c) {
            if (!shownClasses.contains(s.classNames[c])) continue;
            QCPGraph* g = validationPlot_->addGraph();
            const QColor classColor = compared ? s.color.lighter(125) : QColor::fromHsv((c * 47) % 360, 200, 200);
            g->setPen(QPen(classColor, presenter_ ? 2.5 : 1.2, compared ? classStyles[c % 4] : Qt::SolidLine));
            g->setScatterStyle(QCPScatterStyle(compared ? classShapes[c % 7] : QCPScatterStyle::ssDisc, classColor,
                                               presenter_ ? 7 : 4));
            g->setData(vx, s.classIou[c], true);
            g->setName(prefix + s.classNames[c] + tr(" IoU"));
            if (compared) g->removeFromLegend();
        }
        if (s.bestIndex >= 0 && s.bestIndex < vx.size()) {
            auto* best = new QCPItemTracer(validationPlot_);
            best->position->setCoords(vx[s.bestIndex], s.miou[s.bestIndex]);
            best->setStyle(QCPItemTracer::tsCircle);
            best->setSize(presenter_ ? 18 : 12);
            best->setPen(QPen(s.color, 2));
            auto* label = new QCPItemText(validationPlot_);
            label->position->setCoords(vx[s.bestIndex], s.miou[s.bestIndex]);
            label->setPositionAlignment(Qt::AlignHCenter | Qt::AlignBottom);
            label->setText(tr("best %1").arg(s.miou[s.bestIndex], 0, 'f', 3));
            label->setColor(s.color);
            label->setPadding(QMargins(0, 0, 0, 8));
            label->setClipToAxisRect(true);
            label->setObjectName(QStringLiteral("bestLabel"));
            // Placed once the plot is laid out (afterLayout), clear of this run's aAcc and mAcc.
            bestLabels_.push_back({label, runGraphs[1], runGraphs[2]});
        }
    }
    if (autoFit_->isChecked()) {
        lossPlot_->rescaleAxes(true);
        lossPlot_->yAxis2->setRange(0, rateMax > 0 ? rateMax * 1.05 : 1.0);
        validationPlot_->xAxis->setRange(lossPlot_->xAxis->range());
        validationPlot_->yAxis->setRange(0, 1.0);
    }
    // An empty legend draws as a stray little box.
    lossPlot_->legend->setVisible(lossPlot_->graphCount() > 0);
    validationPlot_->legend->setVisible(validationPlot_->graphCount() > 0);
    lossPlot_->replot(QCustomPlot::rpQueuedReplot);
    validationPlot_->replot(QCustomPlot::rpQueuedReplot);
}

bool CurvesWidget::exportPlots(const QString& path) {
    rebuild();
    const QString suffix = QFileInfo(path).suffix().toLower();
    const QString lossPath = QFileInfo(path).path() + QLatin1Char('/') + QFileInfo(path).completeBaseName() +
                             QStringLiteral("-loss.") + suffix;
    const QString valPath = QFileInfo(path).path() + QLatin1Char('/') + QFileInfo(path).completeBaseName() +
                            QStringLiteral("-validation.") + suffix;
    if (suffix == QStringLiteral("pdf")) return lossPlot_->savePdf(lossPath) && validationPlot_->savePdf(valPath);
    if (suffix == QStringLiteral("svg")) {
        // QCustomPlot draws vector output through any QPainter; QSvgGenerator is one.
        const auto saveSvg = [](QCustomPlot* plot, const QString& file) {
            QSvgGenerator generator;
            generator.setFileName(file);
            generator.setSize(QSize(1200, 500));
            generator.setViewBox(QRect(0, 0, 1200, 500));
            generator.setTitle(QStringLiteral("SegScope curves"));
            QCPPainter painter;
            if (!painter.begin(&generator)) return false;
            plot->toPainter(&painter, 1200, 500);
            return painter.end() && QFileInfo(file).size() > 0;
        };
        return saveSvg(lossPlot_, lossPath) && saveSvg(validationPlot_, valPath);
    }
    return lossPlot_->savePng(lossPath, 1200, 500) && validationPlot_->savePng(valPath, 1200, 500);
}

bool CurvesWidget::exportCsv(const QString& path) const {
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text)) return false;
    QTextStream out(&file);
    out << "run,kind,step,epoch,seconds,loss,learning_rate,miou,aacc,macc\n";
    for (const QString& id : order_) {
        const Series& s = series_[id];
        for (int i = 0; i < s.step.size(); ++i)
            out << id << ",step," << s.step[i] << ',' << s.epoch[i] << ',' << s.time[i] << ',' << s.loss[i] << ','
                << s.rate[i] << ",,,\n";
        for (int i = 0; i < s.valStep.size(); ++i)
            out << id << ",validation," << s.valStep[i] << ',' << s.valEpoch[i] << ',' << s.valTime[i] << ",,,"
                << s.miou[i] << ',' << s.aacc[i] << ',' << s.macc[i] << '\n';
    }
    return true;
}

int CurvesWidget::stepPointCount(const QString& runId) const {
    return series_.contains(runId) ? int(series_[runId].step.size()) : 0;
}

int CurvesWidget::validationPointCount(const QString& runId) const {
    return series_.contains(runId) ? int(series_[runId].valStep.size()) : 0;
}

}  // namespace segscope::ui
