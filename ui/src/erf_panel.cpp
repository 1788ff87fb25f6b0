#include "segscope/ui/erf_panel.h"

#include "segscope/core/analysis/erf.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/runs/run_loader.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/image_convert.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/workspace.h"

#include <torch/torch.h>
#include <QtWidgets>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace segscope::ui {
namespace {

constexpr double kLogScale = 100.0;  // as core::erfHeatmap's default and the PNGs it writes
const QString kCnnModel = QStringLiteral("deeplabv3plus-resnet50");
const QString kTransformerModel = QStringLiteral("segformer-b0");

double heatValue(float value, double maximum, double logScale) {
    if (!(maximum > 0) || !(value > 0)) return 0.0;
    const double fraction = std::min(1.0, double(value) / maximum);
    return logScale > 0 ? std::log1p(logScale * fraction) / std::log1p(logScale) : fraction;
}

// viridis through OpenCV's table, as the PNGs written by segscope-cli erf.
QRgb viridis(double t) {
    static const std::vector<QRgb> table = [] {
        cv::Mat ramp(1, 256, CV_8UC1);
        for (int i = 0; i < 256; ++i) ramp.at<std::uint8_t>(0, i) = std::uint8_t(i);
        cv::Mat colour;
        cv::applyColorMap(ramp, colour, cv::COLORMAP_VIRIDIS);
        std::vector<QRgb> rgb(256);
        for (int i = 0; i < 256; ++i) {
            const auto bgr = colour.at<cv::Vec3b>(0, i);
            rgb[std::size_t(i)] = qRgb(bgr[2], bgr[1], bgr[0]);
        }
        return rgb;
    }();
    return table[std::size_t(std::clamp(int(std::lround(t * 255.0)), 0, 255))];
}

// One heatmap with its title and statistics; scales the image to the cell, keeping its aspect.
class HeatmapCell : public QWidget {
public:
    HeatmapCell(QString title, QImage image, QString caption, QWidget* parent = nullptr)
        : QWidget(parent), title_(std::move(title)), image_(std::move(image)), caption_(std::move(caption)) {
        setMinimumSize(120, 140);
        setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
        setToolTip(caption_);
    }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter painter(this);
        const QFontMetrics metrics(font());
        const int line = metrics.height();
        painter.setPen(palette().color(QPalette::WindowText));
        QFont bold = font();
        bold.setBold(true);
        painter.setFont(bold);
        painter.drawText(QRect(0, 0, width(), line), Qt::AlignHCenter | Qt::AlignVCenter, title_);
        painter.setFont(font());
        painter.drawText(QRect(0, height() - line, width(), line), Qt::AlignHCenter | Qt::AlignVCenter,
                         metrics.elidedText(caption_, Qt::ElideRight, width()));
        const QRect area(2, line + 2, width() - 4, height() - 2 * line - 4);
        if (image_.isNull() || area.width() <= 0 || area.height() <= 0) return;
        QSize size = image_.size().scaled(area.size(), Qt::KeepAspectRatio);
        const QRect target(area.x() + (area.width() - size.width()) / 2, area.y() + (area.height() - size.height()) / 2,
                           size.width(), size.height());
        painter.setRenderHint(QPainter::SmoothPixmapTransform, false);
        painter.drawImage(target, image_);
        painter.setPen(QPen(QColor(255, 255, 255, 140), 1, Qt::DashLine));
        painter.drawLine(target.center().x(), target.top(), target.center().x(), target.bottom());
        painter.drawLine(target.left(), target.center().y(), target.right(), target.center().y());
    }

private:
    QString title_;
    QImage image_;
    QString caption_;
};

}  // namespace

std::vector<double> erfColorBarTicks(double logScale) {
    // On the log scale 0 has no place; the lowest tick is a small fraction, never a "0".
    return logScale > 0 ? std::vector<double>{1.0, 0.3, 0.1, 0.03, 0.01, 0.001}
                        : std::vector<double>{1.0, 0.75, 0.5, 0.25, 0.0};
}

QString erfColorBarTickLabel(double fraction) {
    return QString::number(fraction, 'g', 2);
}

QStringList erfColorBarTickLabels(double logScale) {
    QStringList labels;
    for (double fraction : erfColorBarTicks(logScale)) labels << erfColorBarTickLabel(fraction);
    return labels;
}

namespace {

// Vertical viridis bar labelled in fractions of each map's maximum.
class ColorBar : public QWidget {
public:
    explicit ColorBar(QWidget* parent = nullptr) : QWidget(parent) {
        setMinimumWidth(86);
        setSizePolicy(QSizePolicy::Fixed, QSizePolicy::Expanding);
    }
    void setLogScale(double logScale) {
        logScale_ = logScale;
        update();
    }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter painter(this);
        const QFontMetrics metrics(font());
        // The caption takes two lines; the top tick's label reaches half a line above the bar, so the
        // caption ends a padding above that.
        const int pad = 6;
        const int captionBottom = metrics.height() * 2 + pad;
        const int top = captionBottom + metrics.height() / 2 + pad, bottom = height() - metrics.height();
        const QRect bar(6, top, 18, std::max(10, bottom - top));
        for (int y = 0; y < bar.height(); ++y) {
            painter.setPen(QColor::fromRgb(viridis(1.0 - double(y) / std::max(1, bar.height() - 1))));
            painter.drawLine(bar.left(), bar.top() + y, bar.right(), bar.top() + y);
        }
        painter.setPen(palette().color(QPalette::WindowText));
        painter.drawRect(bar);
        painter.drawText(QRect(0, 0, width(), captionBottom), Qt::AlignLeft | Qt::AlignBottom | Qt::TextWordWrap,
                         logScale_ > 0 ? tr("of max (log)") : tr("of max"));
        for (double fraction : erfColorBarTicks(logScale_)) {
            const double t = fraction > 0 ? heatValue(float(fraction), 1.0, logScale_) : 0.0;
            const int y = bar.bottom() - int(std::lround(t * (bar.height() - 1)));
            painter.drawLine(bar.right(), y, bar.right() + 4, y);
            painter.drawText(
                QRect(bar.right() + 7, y - metrics.height() / 2, width() - bar.right() - 7, metrics.height()),
                Qt::AlignLeft | Qt::AlignVCenter, erfColorBarTickLabel(fraction));
        }
    }

private:
    double logScale_ = kLogScale;
};

QString defaultLabel(const ErfSource& source) {
    if (!source.label.isEmpty()) return source.label;
    if (source.kind == ErfSource::Kind::UntrainedModel) return QObject::tr("%1 · untrained").arg(source.modelId);
    return QObject::tr("run %1 · %2").arg(source.runId, source.checkpoint);
}

}  // namespace

ErfView toErfView(const core::ErfResult& result, const QString& label, const QImage& sample) {
    ErfView view;
    view.label = label;
    view.sample = sample;
    view.images = result.images;
    for (const auto& stage : result.stages) {
        ErfStageView s;
        s.stage = QString::fromStdString(stage.stage);
        const torch::Tensor map = stage.map.to(torch::kCPU, torch::kFloat32).contiguous();
        s.height = int(map.size(0));
        s.width = int(map.size(1));
        s.map = QVector<float>(map.data_ptr<float>(), map.data_ptr<float>() + map.numel());
        for (const auto& ratio : stage.areaRatios)
            if (std::abs(ratio.fraction - 0.5) < 1e-9) s.areaRatio50 = ratio.areaRatio;
        s.radiusPixels = stage.effectiveRadiusPixels;
        view.stages.push_back(std::move(s));
    }
    return view;
}

QImage renderErfHeatmap(const ErfStageView& stage, double logScale, const QImage& sample) {
    if (stage.width <= 0 || stage.height <= 0 || stage.map.size() != stage.width * stage.height) return {};
    const float maximum = stage.map.isEmpty() ? 0.0f : *std::max_element(stage.map.begin(), stage.map.end());
    QImage image(stage.width, stage.height, QImage::Format_RGB32);
    QImage grey;
    if (!sample.isNull())
        grey = sample.scaled(stage.width, stage.height, Qt::IgnoreAspectRatio, Qt::SmoothTransformation)
                   .convertToFormat(QImage::Format_Grayscale8);
    for (int y = 0; y < stage.height; ++y) {
        auto* row = reinterpret_cast<QRgb*>(image.scanLine(y));
        const uchar* greyRow = grey.isNull() ? nullptr : grey.constScanLine(y);
        for (int x = 0; x < stage.width; ++x) {
            QRgb colour = viridis(heatValue(stage.map[y * stage.width + x], maximum, logScale));
            if (greyRow) {
                const double g = greyRow[x] * 0.35;
                colour =
                    qRgb(int(g + 0.65 * qRed(colour)), int(g + 0.65 * qGreen(colour)), int(g + 0.65 * qBlue(colour)));
            }
            row[x] = colour;
        }
    }
    return image;
}

// ---- the computation, on a TaskWorker's thread ----

namespace {

struct ErfJob {
    QString workspace;
    std::vector<ErfSource> sources;
    int images = 16;
    // Dataset, transforms, classes and seed for untrained models without a run.
    core::Experiment fallback;
};

// Computes the ERFs of a job's sources one after the other; `computed` gets each row as it is
// done. Throws TaskCancelled when cancelled, and the core's errors.
void computeErfJob(const ErfJob& job, const std::atomic<bool>& cancel, const TaskWorker::Progress& progress,
                   const std::function<void(int, ErfView)>& computed) {
    // Untrained sources need no store; a workspace without runs has none to open.
    std::unique_ptr<core::RunStore> store;
    auto openStore = [&]() -> core::RunStore& {
        if (!store) store = core::RunStore::open(job.workspace.toStdString(), core::StoreAccess::ReadOnly);
        return *store;
    };
    const qint64 total = qint64(job.images) * qint64(job.sources.size());
    qint64 before = 0;
    for (std::size_t i = 0; i < job.sources.size(); ++i) {
        const ErfSource& source = job.sources[i];
        QString label = defaultLabel(source);
        core::LoadedRun subject;
        if (source.kind == ErfSource::Kind::Run) {
            subject = core::loadRun(openStore(), source.runId.toStdString(), source.checkpoint.toStdString());
            if (source.label.isEmpty()) {
                label = QStringLiteral("%1 · %2 · %3")
                            .arg(QString::fromStdString(subject.experiment.model.id), source.checkpoint, source.runId);
                if (subject.epoch) label += QObject::tr(" (epoch %1)").arg(*subject.epoch);
            }
        } else {
            const core::Experiment experiment = source.runId.isEmpty()
                                                    ? job.fallback
                                                    : core::recordedExperiment(openStore(), source.runId.toStdString());
            if (!source.runId.isEmpty() && source.label.isEmpty())
                label = QObject::tr("%1 · untrained (seed %2)").arg(source.modelId).arg(experiment.runtime.seed);
            subject = core::untrainedRun(experiment, source.modelId.toStdString());
        }
        core::ErfOptions options;
        options.batchSize = 4;
        const core::RunErf erf = core::computeRunErf(
            subject, job.images, options, {}, [&](std::int64_t done, std::int64_t) { progress(before + done, total); },
            &cancel);
        const core::ErfResult& result = erf.result;
        const QImage sample = erf.sample.empty() ? QImage() : toQImage(erf.sample);
        if (result.cancelled) throw TaskCancelled{};
        before += job.images;
        computed(int(i), toErfView(result, label, sample));
    }
}

}  // namespace

// ---- panel ----

ErfPanel::ErfPanel(QString workspace, QWidget* parent) : QWidget(parent), workspace_(std::move(workspace)) {
    auto* layout = new QVBoxLayout(this);

    auto* presets = new QHBoxLayout;
    auto* cnnVsTransformer = new QPushButton(tr("CNN vs transformer (DeepLabV3+ / SegFormer-B0)"));
    cnnVsTransformer->setToolTip(
        tr("The SegFormer paper's figure: the newest finished run of each model at its best "
           "checkpoint, or the untrained model when there is none"));
    auto* untrainedVsTrained = new QPushButton(tr("Untrained vs trained"));
    untrainedVsTrained->setToolTip(tr("The first source's run: its model untrained (same seed) vs trained"));
    presets->addWidget(new QLabel(tr("One click:")));
    presets->addWidget(cnnVsTransformer);
    presets->addWidget(untrainedVsTrained);
    presets->addStretch(1);
    layout->addLayout(presets);

    auto* sourcesBox = new QGroupBox(tr("Sources"));
    auto* sourcesLayout = new QGridLayout(sourcesBox);
    QStringList models;
    for (const auto& entry : core::modelRegistry()) models << QString::fromStdString(entry.info.id);
    for (int r = 0; r < 2; ++r) {
        SourceRow& row = rows_[r];
        row.enabled = new QCheckBox(r == 0 ? tr("A") : tr("B"));
        row.enabled->setChecked(r == 0);
        row.enabled->setEnabled(r == 1);
        row.kind = new QComboBox;
        row.kind->addItems({tr("Run"), tr("Untrained model")});
        row.run = new QComboBox;
        row.run->setMinimumContentsLength(36);
        row.run->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
        row.checkpoint = new QComboBox;
        row.checkpoint->addItems({QStringLiteral("best"), QStringLiteral("latest")});
        row.model = new QComboBox;
        row.model->addItems(models);
        row.model->setCurrentText(r == 0 ? kCnnModel : kTransformerModel);
        sourcesLayout->addWidget(row.enabled, r, 0);
        sourcesLayout->addWidget(row.kind, r, 1);
        sourcesLayout->addWidget(row.run, r, 2);
        sourcesLayout->addWidget(row.checkpoint, r, 3);
        sourcesLayout->addWidget(row.model, r, 4);
        connect(row.kind, &QComboBox::currentIndexChanged, this, [this, r] { sourceKindChanged(r); });
        sourceKindChanged(r);
    }
    sourcesLayout->setColumnStretch(2, 1);
    layout->addWidget(sourcesBox);

    auto* controls = new QHBoxLayout;
    images_ = new QSpinBox;
    images_->setRange(1, 10000);
    images_->setValue(16);
    images_->setToolTip(tr("Validation images averaged (the paper uses 100)"));
    logScale_ = new QCheckBox(tr("Log scale"));
    logScale_->setChecked(true);
    overlay_ = new QCheckBox(tr("Over a sample image"));
    computeButton_ = new QPushButton(tr("Compute ERF"));
    computeButton_->setStyleSheet(QStringLiteral("font-weight: bold;"));
    cancelButton_ = new QPushButton(tr("Cancel"));
    cancelButton_->setEnabled(false);
    progress_ = new QProgressBar;
    progress_->setRange(0, 1);
    progress_->setValue(0);
    auto* exportButton = new QPushButton(tr("Export PNG…"));
    controls->addWidget(new QLabel(tr("Images")));
    controls->addWidget(images_);
    controls->addWidget(logScale_);
    controls->addWidget(overlay_);
    controls->addWidget(computeButton_);
    controls->addWidget(cancelButton_);
    controls->addWidget(progress_, 1);
    controls->addWidget(exportButton);
    layout->addLayout(controls);

    auto* snapshotRow = new QHBoxLayout;
    snapshotLabel_ = new QLabel(tr("No ERF snapshots recorded (set \"ERF every N epochs\" in the experiment)."));
    snapshotSlider_ = new QSlider(Qt::Horizontal);
    snapshotSlider_->setEnabled(false);
    snapshotSlider_->setTickPosition(QSlider::TicksBelow);
    snapshotRow->addWidget(snapshotLabel_, 1);
    snapshotRow->addWidget(snapshotSlider_, 2);
    snapshotLabel_->hide();  // shown once a run with snapshots is picked
    snapshotSlider_->hide();
    layout->addLayout(snapshotRow);

    info_ =
        new QLabel(tr("Choose sources and press Compute ERF. Each map is normalised to its own maximum; the dashed "
                      "lines cross at the centre pixel whose output is differentiated."));
    info_->setWordWrap(true);
    layout->addWidget(info_);

    auto* gridHost = new QHBoxLayout;
    grid_ = new QWidget;
    grid_->setAutoFillBackground(true);
    gridLayout_ = new QGridLayout(grid_);
    gridHost->addWidget(grid_, 1);
    auto* colorBar = new ColorBar;
    gridHost->addWidget(colorBar);
    layout->addLayout(gridHost, 1);

    connect(cnnVsTransformer, &QPushButton::clicked, this, &ErfPanel::compareCnnVsTransformer);
    connect(untrainedVsTrained, &QPushButton::clicked, this, [this] {
        const QString runId = rows_[0].run->currentData().toString();
        if (runId.isEmpty()) {
            Q_EMIT statusMessage(tr("Pick a run as source A first."));
            return;
        }
        compareUntrainedVsTrained(runId);
    });
    connect(computeButton_, &QPushButton::clicked, this, [this] { compute(); });
    connect(cancelButton_, &QPushButton::clicked, this, &ErfPanel::cancel);
    connect(logScale_, &QCheckBox::toggled, this, [this, colorBar](bool on) {
        colorBar->setLogScale(on ? kLogScale : 0.0);
        rebuildGrid();
    });
    connect(overlay_, &QCheckBox::toggled, this, [this] { rebuildGrid(); });
    connect(snapshotSlider_, &QSlider::valueChanged, this, &ErfPanel::setSnapshotIndex);
    connect(rows_[0].run, &QComboBox::currentIndexChanged, this, [this] {
        const QString runId = rows_[0].run->currentData().toString();
        if (!runId.isEmpty() && runId != snapshotRunId_) showSnapshots(runId);
    });
    connect(exportButton, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export ERF grid"), workspace_, tr("PNG (*.png)"));
        if (!path.isEmpty() && !exportPng(path)) Q_EMIT statusMessage(tr("Could not write %1").arg(path));
    });
    refreshRuns();
    rebuildGrid();
}

ErfPanel::~ErfPanel() {
    Worker::cancelAndWait(worker_);
}

void ErfPanel::setExperimentProvider(std::function<std::optional<core::Experiment>()> provider) {
    experimentProvider_ = std::move(provider);
}

void ErfPanel::sourceKindChanged(int r) {
    SourceRow& row = rows_[r];
    const bool run = row.kind->currentIndex() == 0;
    row.run->setVisible(run);
    row.checkpoint->setVisible(run);
    row.model->setVisible(!run);
    row.run->setProperty("untrainedRun", QString());
}

void ErfPanel::refreshRuns() {
    std::vector<core::RunSummary> runs;
    try {
        runs = core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly)->listRuns();
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
    }
    for (SourceRow& row : rows_) {
        const QString current = row.run->currentData().toString();
        QSignalBlocker block(row.run);
        row.run->clear();
        for (const auto& run : runs) {
            const QString id = QString::fromStdString(run.id);
            row.run->addItem(runLabel(run), id);
        }
        const int index = row.run->findData(current);
        if (index >= 0) row.run->setCurrentIndex(index);
    }
    const QString first = rows_[0].run->currentData().toString();
    if (!first.isEmpty() && first != snapshotRunId_) showSnapshots(first);
}

void ErfPanel::setSources(const std::vector<ErfSource>& sources) {
    for (int r = 0; r < 2; ++r) {
        SourceRow& row = rows_[r];
        const bool used = std::size_t(r) < sources.size();
        row.enabled->setChecked(used || r == 0);
        if (!used) continue;
        const ErfSource& source = sources[std::size_t(r)];
        row.kind->setCurrentIndex(source.kind == ErfSource::Kind::Run ? 0 : 1);
        if (source.kind == ErfSource::Kind::Run) {
            int index = row.run->findData(source.runId);
            if (index < 0) {
                row.run->addItem(source.runId, source.runId);
                index = row.run->count() - 1;
            }
            row.run->setCurrentIndex(index);
            row.checkpoint->setCurrentText(source.checkpoint);
        } else {
            row.model->setCurrentText(source.modelId);
            // An untrained model tied to a run takes that run's experiment.
            if (!source.runId.isEmpty()) {
                const int index = row.run->findData(source.runId);
                if (index >= 0) row.run->setCurrentIndex(index);
            }
        }
        row.run->setProperty("untrainedRun", source.kind == ErfSource::Kind::UntrainedModel ? source.runId : QString());
    }
}

std::vector<ErfSource> ErfPanel::sources() const {
    std::vector<ErfSource> result;
    for (const SourceRow& row : rows_) {
        if (!row.enabled->isChecked()) continue;
        ErfSource source;
        if (row.kind->currentIndex() == 0) {
            source.kind = ErfSource::Kind::Run;
            source.runId = row.run->currentData().toString();
            source.checkpoint = row.checkpoint->currentText();
            if (source.runId.isEmpty()) continue;
        } else {
            source.kind = ErfSource::Kind::UntrainedModel;
            source.modelId = row.model->currentText();
            source.runId = row.run->property("untrainedRun").toString();
        }
        result.push_back(source);
    }
    return result;
}

std::optional<core::Experiment> ErfPanel::fallbackExperiment() const {
    if (experimentProvider_)
        if (auto experiment = experimentProvider_()) return experiment;
    // The built-in demo at its preset size.
    core::Experiment experiment;
    experiment.dataset.kind = core::DataSource::Demo;
    experiment.dataset.root = demoDatasetPath(workspace_).toStdString();
    experiment.transforms.height = experiment.transforms.width = 128;
    return experiment;
}

bool ErfPanel::compute() {
    if (worker_) return false;
    const std::vector<ErfSource> chosen = sources();
    if (chosen.empty()) {
        Q_EMIT statusMessage(tr("No source chosen: pick a run or an untrained model."));
        return false;
    }
    ErfJob job;
    job.workspace = workspace_;
    job.sources = chosen;
    job.images = images_->value();
    job.fallback = *fallbackExperiment();
    views_.assign(chosen.size(), ErfView{});
    for (std::size_t i = 0; i < chosen.size(); ++i) views_[i].label = defaultLabel(chosen[i]) + tr(" · computing…");
    snapshotSlider_->setEnabled(false);
    rebuildGrid();

    // The panel outlives the task (its destructor waits), so rows are posted to `this`.
    worker_ = TaskWorker::start(
        [this, job](const std::atomic<bool>& cancel, const TaskWorker::Progress& progress) {
            computeErfJob(job, cancel, progress, [this](int index, ErfView view) {
                QMetaObject::invokeMethod(
                    this,
                    [this, index, view = std::move(view)] {
                        if (index >= 0 && std::size_t(index) < views_.size()) views_[std::size_t(index)] = view;
                        rebuildGrid();
                    },
                    Qt::QueuedConnection);
            });
        },
        this);
    connect(worker_, &TaskWorker::progress, this, [this](qint64 done, qint64 total) {
        progress_->setRange(0, int(std::max<qint64>(1, total)));
        progress_->setValue(int(done));
    });
    connect(worker_, &TaskWorker::finished, this, [this](const QString& message) {
        worker_ = nullptr;
        computeButton_->setEnabled(true);
        cancelButton_->setEnabled(false);
        snapshotSlider_->setEnabled(snapshots_.size() > 1);
        // Rows that got no result (failure or cancel) say so instead of staying "computing".
        for (auto& view : views_)
            if (view.stages.isEmpty())
                view.label.replace(tr(" · computing…"), message.isEmpty() ? QString() : tr(" · not computed"));
        rebuildGrid();
        if (!message.isEmpty()) {
            info_->setText(message == QStringLiteral("cancelled") ? tr("ERF computation cancelled.")
                                                                  : tr("ERF computation failed: %1").arg(message));
            info_->setStyleSheet(message == QStringLiteral("cancelled") ? QString()
                                                                        : QStringLiteral("color: #b41e1e;"));
        } else {
            info_->setStyleSheet(QString());
            QStringList parts;
            for (const auto& view : views_) {
                QStringList areas;
                for (const auto& stage : view.stages)
                    areas << QStringLiteral("%1 %2%").arg(stage.stage).arg(100.0 * stage.areaRatio50, 0, 'f', 1);
                parts << QStringLiteral("%1: %2").arg(view.label, areas.join(QStringLiteral(", ")));
            }
            info_->setText(tr("Area holding 50% of the ERF mass, as a share of the image — ") +
                           parts.join(QStringLiteral("; ")));
        }
        Q_EMIT computationFinished(message);
    });
    computeButton_->setEnabled(false);
    cancelButton_->setEnabled(true);
    progress_->setRange(0, 1);
    progress_->setValue(0);
    info_->setText(tr("Computing…"));
    return true;
}

void ErfPanel::cancel() {
    if (worker_) worker_->cancel();
}

void ErfPanel::compareCnnVsTransformer() {
    std::vector<core::RunSummary> runs;
    try {
        runs = core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly)->listRuns();
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
    }
    refreshRuns();
    std::vector<ErfSource> chosen;
    QStringList untrained;
    for (const QString& model : {kCnnModel, kTransformerModel}) {
        ErfSource source;
        // listRuns() is newest first.
        const auto run = std::find_if(runs.begin(), runs.end(), [&](const core::RunSummary& r) {
            return r.model == model.toStdString() && r.status == core::RunStatus::Finished;
        });
        if (run != runs.end()) {
            source.kind = ErfSource::Kind::Run;
            source.runId = QString::fromStdString(run->id);
            source.checkpoint = QStringLiteral("best");
        } else {
            source.kind = ErfSource::Kind::UntrainedModel;
            source.modelId = model;
            untrained << model;
        }
        chosen.push_back(source);
    }
    setSources(chosen);
    if (!untrained.isEmpty())
        Q_EMIT statusMessage(tr("No finished run of %1: using the untrained model.").arg(untrained.join(tr(" and "))));
    compute();
}

void ErfPanel::compareUntrainedVsTrained(const QString& runId) {
    std::string model;
    try {
        const auto record =
            core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly)->run(runId.toStdString());
        if (!record) {
            Q_EMIT statusMessage(tr("Unknown run %1").arg(runId));
            return;
        }
        model = record->model;
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
        return;
    }
    ErfSource untrained;
    untrained.kind = ErfSource::Kind::UntrainedModel;
    untrained.modelId = QString::fromStdString(model);
    untrained.runId = runId;
    ErfSource trained;
    trained.kind = ErfSource::Kind::Run;
    trained.runId = runId;
    trained.checkpoint = QStringLiteral("best");
    // Row B shows the untrained model with the run's experiment; row A the trained run.
    setSources({trained, untrained});
    compute();
}

void ErfPanel::showSnapshots(const QString& runId) {
    snapshotRunId_ = runId;
    snapshots_.clear();
    snapshotModel_.clear();
    try {
        const auto store = core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly);
        if (const auto record = store->run(runId.toStdString())) {
            snapshots_ = core::listErfSnapshots(record->folder);
            snapshotModel_ = QString::fromStdString(record->model);
        }
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
    }
    QSignalBlocker block(snapshotSlider_);
    // Without snapshots the row would be a useless slider and its label: hide both.
    snapshotSlider_->setVisible(!snapshots_.empty());
    snapshotLabel_->setVisible(!snapshots_.empty());
    if (snapshots_.empty()) {
        snapshotSlider_->setEnabled(false);
        snapshotSlider_->setRange(0, 0);
        snapshotLabel_->setText(
            tr("Run %1 recorded no ERF snapshots (set \"ERF every N epochs\" in its experiment).").arg(runId));
        return;
    }
    snapshotSlider_->setRange(0, int(snapshots_.size()) - 1);
    snapshotSlider_->setEnabled(snapshots_.size() > 1 && !worker_);
    snapshotLabel_->setText(
        tr("%n ERF snapshot(s) recorded during training; drag to step through them.", "", int(snapshots_.size())));
}

void ErfPanel::setSnapshotIndex(int index) {
    if (index < 0 || std::size_t(index) >= snapshots_.size() || worker_) return;
    {
        QSignalBlocker block(snapshotSlider_);
        snapshotSlider_->setValue(index);
    }
    const core::ErfSnapshot& snapshot = snapshots_[std::size_t(index)];
    try {
        const core::ErfResult result = core::loadErf(snapshot.directory);
        QImage sample = views_.empty() ? QImage() : views_.front().sample;
        const QString label = tr("%1 · epoch %2 (step %3)").arg(snapshotModel_).arg(snapshot.epoch).arg(snapshot.step);
        views_.assign(1, toErfView(result, label, sample));
        snapshotLabel_->setText(tr("Snapshot %1 of %2: epoch %3, step %4, %5 images")
                                    .arg(index + 1)
                                    .arg(snapshots_.size())
                                    .arg(snapshot.epoch)
                                    .arg(snapshot.step)
                                    .arg(result.images));
        rebuildGrid();
    } catch (const std::exception& error) {
        Q_EMIT statusMessage(QString::fromStdString(error.what()));
    }
}

void ErfPanel::snapshotRecorded(const QString& runId) {
    if (runId != snapshotRunId_) return;
    const bool atEnd = snapshotSlider_->value() == snapshotSlider_->maximum();
    showSnapshots(runId);
    if (atEnd && !snapshots_.empty()) setSnapshotIndex(int(snapshots_.size()) - 1);
}

void ErfPanel::setImages(int images) {
    images_->setValue(images);
}
void ErfPanel::setLogScale(bool on) {
    logScale_->setChecked(on);
}
void ErfPanel::setOverlay(bool on) {
    overlay_->setChecked(on);
}

void ErfPanel::rebuildGrid() {
    while (QLayoutItem* item = gridLayout_->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    const double logScale = logScale_->isChecked() ? kLogScale : 0.0;
    int columns = 0;
    for (std::size_t r = 0; r < views_.size(); ++r) {
        const ErfView& view = views_[r];
        auto* title =
            new QLabel(view.images > 0 ? tr("%1 — %n image(s)", "", int(view.images)).arg(view.label) : view.label);
        QFont bold = title->font();
        bold.setBold(true);
        title->setFont(bold);
        gridLayout_->addWidget(title, int(2 * r), 0, 1, std::max(1, int(view.stages.size())));
        for (int c = 0; c < view.stages.size(); ++c) {
            const ErfStageView& stage = view.stages[c];
            const QString caption =
                tr("50%: %1% · r %2 px").arg(100.0 * stage.areaRatio50, 0, 'f', 1).arg(stage.radiusPixels, 0, 'f', 1);
            auto* cell = new HeatmapCell(
                stage.stage, renderErfHeatmap(stage, logScale, overlay_->isChecked() ? view.sample : QImage()),
                caption);
            cell->setObjectName(QStringLiteral("erf-%1-%2").arg(r).arg(stage.stage));
            gridLayout_->addWidget(cell, int(2 * r + 1), c);
        }
        columns = std::max(columns, int(view.stages.size()));
    }
    for (int c = 0; c < columns; ++c) gridLayout_->setColumnStretch(c, 1);
}

bool ErfPanel::exportPng(const QString& path) {
    const QPixmap pixmap = grid_->grab();
    return !pixmap.isNull() && pixmap.save(path, "PNG");
}

}  // namespace segscope::ui
