#include "segscope/ui/dataset_panel.h"

#include "segscope/core/data/demo_data.h"
#include "segscope/ui/image_convert.h"
#include "segscope/ui/workspace.h"

#include <QtWidgets>
#include "segscope/ui/qcustomplot_include.h"

namespace segscope::ui {

DatasetPanel::DatasetPanel(QString workspace, QWidget* parent) : QWidget(parent), workspace_(std::move(workspace)) {
    buildUi();
}

DatasetPanel::~DatasetPanel() {
    Worker::cancelAndWait(checkWorker_);
    Worker::cancelAndWait(demoWorker_);
}

void DatasetPanel::buildUi() {
    auto* layout = new QVBoxLayout(this);

    auto* datasetRow = new QHBoxLayout;
    kind_ = new QComboBox;
    kind_->addItem(tr("PASCAL VOC / demo"), QStringLiteral("voc"));
    kind_->addItem(tr("Oxford-IIIT Pets"), QStringLiteral("pets"));
    kind_->addItem(tr("Folder"), QStringLiteral("folder"));
    root_ = new QLineEdit;
    root_->setPlaceholderText(tr("Dataset root folder"));
    auto* browse = new QPushButton(tr("Browse…"));
    split_ = new QComboBox;
    split_->setEditable(true);
    split_->addItems(
        {QStringLiteral("train"), QStringLiteral("val"), QStringLiteral("trainval"), QStringLiteral("test")});
    petsMode_ = new QComboBox;
    petsMode_->addItems({QStringLiteral("trimap"), QStringLiteral("binary"), QStringLiteral("binary-border-fg")});
    auto* open = new QPushButton(tr("Open"));
    checkButton_ = new QPushButton(tr("Check dataset"));
    datasetRow->addWidget(new QLabel(tr("Dataset")));
    datasetRow->addWidget(kind_);
    datasetRow->addWidget(root_, 1);
    datasetRow->addWidget(browse);
    datasetRow->addWidget(new QLabel(tr("Split")));
    datasetRow->addWidget(split_);
    datasetRow->addWidget(new QLabel(tr("Pets mode")));
    datasetRow->addWidget(petsMode_);
    datasetRow->addWidget(open);
    datasetRow->addWidget(checkButton_);
    layout->addLayout(datasetRow);

    auto* splitter = new QSplitter(Qt::Horizontal);
    sampleList_ = new QListWidget;
    sampleList_->setMinimumWidth(160);
    splitter->addWidget(sampleList_);

    auto* viewer = new QWidget;
    auto* viewerLayout = new QVBoxLayout(viewer);
    imageView_ = new QLabel;
    imageView_->setAlignment(Qt::AlignCenter);
    imageView_->setMinimumSize(320, 320);
    imageView_->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    opacity_ = new QSlider(Qt::Horizontal);
    opacity_->setRange(0, 100);
    opacity_->setValue(55);
    auto* opacityRow = new QHBoxLayout;
    opacityRow->addWidget(new QLabel(tr("Mask opacity")));
    opacityRow->addWidget(opacity_);
    viewerLayout->addWidget(imageView_, 1);
    viewerLayout->addLayout(opacityRow);
    splitter->addWidget(viewer);

    auto* reportPane = new QWidget;
    auto* reportLayout = new QVBoxLayout(reportPane);
    summary_ = new QLabel(tr("No check run yet."));
    summary_->setWordWrap(true);
    frequencyPlot_ = new QCustomPlot;
    frequencyPlot_->setMinimumSize(360, 240);
    frequencyPlot_->yAxis->setLabel(tr("pixel share (%)"));
    problems_ = new QPlainTextEdit;
    problems_->setReadOnly(true);
    problems_->setPlaceholderText(tr("Problems found by the check appear here."));
    reportLayout->addWidget(summary_);
    reportLayout->addWidget(frequencyPlot_, 2);
    reportLayout->addWidget(problems_, 1);
    splitter->addWidget(reportPane);
    splitter->setStretchFactor(1, 2);
    splitter->setStretchFactor(2, 2);
    layout->addWidget(splitter, 1);

    connect(browse, &QPushButton::clicked, this, &DatasetPanel::browseRoot);
    connect(open, &QPushButton::clicked, this, &DatasetPanel::openFromFields);
    connect(checkButton_, &QPushButton::clicked, this, &DatasetPanel::startCheck);
    connect(sampleList_, &QListWidget::currentRowChanged, this, &DatasetPanel::showSample);
    connect(opacity_, &QSlider::valueChanged, this, [this] { showSample(sampleList_->currentRow()); });
}

void DatasetPanel::browseRoot() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Dataset root"), root_->text());
    if (!dir.isEmpty()) root_->setText(dir);
}

void DatasetPanel::openFromFields() {
    core::DatasetSpec spec;
    spec.kind = core::parseDatasetKind(kind_->currentData().toString().toStdString()).value_or(core::DatasetKind::Voc);
    spec.root = root_->text().toStdString();
    spec.split = split_->currentText().toStdString();
    spec.petsMode = core::parsePetsMode(petsMode_->currentText().toStdString()).value_or(core::PetsMode::Trimap);
    openDataset(spec);
}

bool DatasetPanel::openDataset(const core::DatasetSpec& spec) {
    try {
        dataset_ = core::Dataset::open(spec);
    } catch (const std::exception& e) {
        Q_EMIT statusMessage(QString::fromStdString(e.what()));
        return false;
    }
    root_->setText(QString::fromStdString(spec.root.string()));
    kind_->setCurrentIndex(kind_->findData(QString::fromLatin1(core::datasetKindName(spec.kind))));
    split_->setCurrentText(QString::fromStdString(spec.split));
    sampleList_->clear();
    for (const auto& s : dataset_->samples()) sampleList_->addItem(QString::fromStdString(s.id));
    Q_EMIT statusMessage(tr("%1: %2 images, %3 classes")
                             .arg(QString::fromStdString(spec.root.string()))
                             .arg(dataset_->size())
                             .arg(dataset_->numClasses()));
    if (sampleList_->count() > 0) sampleList_->setCurrentRow(0);
    Q_EMIT datasetOpened(sampleList_->count());
    return true;
}

void DatasetPanel::openDemoDataset() {
    const QString path = demoDatasetPath(workspace_);
    if (core::isDemoDataset(path.toStdString())) {
        core::DatasetSpec spec;
        spec.root = path.toStdString();
        openDataset(spec);
        return;
    }
    Q_EMIT statusMessage(tr("Generating the demo dataset in %1…").arg(path));
    if (demoWorker_) return;
    demoWorker_ = TaskWorker::start(
        [path](const std::atomic<bool>&, const TaskWorker::Progress&) { core::writeDemoDataset(path.toStdString()); },
        this);
    connect(demoWorker_, &Worker::finished, this, [this, path](const QString& error) {
        if (!error.isEmpty()) {
            Q_EMIT statusMessage(tr("Demo dataset: %1").arg(error));
            return;
        }
        core::DatasetSpec spec;
        spec.root = path.toStdString();
        spec.split = "train";
        openDataset(spec);
    });
}

void DatasetPanel::showSample(int row) {
    if (!dataset_ || row < 0 || row >= int(dataset_->size())) return;
    try {
        // Small images decode in a millisecond or two; large ones will move to a worker with the
        // predictions view.
        const core::LabeledImage sample = dataset_->load(std::size_t(row));
        const QImage overlay = overlayLabel(sample.image, sample.label, dataset_->classes(), opacity_->value() / 100.0);
        imageView_->setPixmap(
            QPixmap::fromImage(overlay).scaled(imageView_->size(), Qt::KeepAspectRatio, Qt::SmoothTransformation));
    } catch (const std::exception& e) {
        imageView_->setText(QString::fromStdString(e.what()));
    }
}

void DatasetPanel::startCheck() {
    if (!dataset_) {
        openFromFields();
        if (!dataset_) return;
    }
    if (checkWorker_) return;
    checkButton_->setEnabled(false);
    summary_->setText(tr("Checking %1 images…").arg(dataset_->size()));
    auto dataset = dataset_;
    auto report = std::make_shared<core::DatasetReport>();
    checkWorker_ = TaskWorker::start(
        [dataset, report](const std::atomic<bool>& cancel, const TaskWorker::Progress&) {
            core::CheckOptions options;
            options.cancel = &cancel;
            *report = core::checkDataset(*dataset, options);
        },
        this);
    connect(checkWorker_, &Worker::finished, this, [this, dataset, report](const QString& error) {
        checkButton_->setEnabled(true);
        if (!error.isEmpty() && error != QStringLiteral("cancelled")) {
            *report = core::DatasetReport{};
            report->problems.push_back({core::Severity::Error, dataset->resolvedRoot().string(), error.toStdString()});
        }
        showReport(*report);
    });
}

void DatasetPanel::showReport(const core::DatasetReport& report) {
    lastReport_ = report;
    summary_->setText(tr("Split %1: %2 images, %3 errors, %4 warnings — %5")
                          .arg(QString::fromStdString(report.split))
                          .arg(report.images)
                          .arg(report.errorCount())
                          .arg(report.warningCount())
                          .arg(report.ok() ? tr("trainable") : tr("not trainable")));
    QString problems;
    for (const auto& p : report.problems)
        problems += QStringLiteral("%1: %2: %3\n")
                        .arg(p.severity == core::Severity::Error ? tr("error") : tr("warning"),
                             QString::fromStdString(p.file), QString::fromStdString(p.message));
    problems_->setPlainText(problems);

    frequencyPlot_->clearPlottables();
    std::uint64_t total = report.ignorePixels;
    for (auto c : report.classPixels) total += c;
    QVector<double> ticks, shares;
    QVector<QString> labels;
    for (std::size_t i = 0; i < report.classes.size(); ++i) {
        ticks << double(i + 1);
        shares << (total ? 100.0 * double(report.classPixels[i]) / double(total) : 0.0);
        labels << QString::fromStdString(report.classes[i]);
    }
    auto* bars = new QCPBars(frequencyPlot_->xAxis, frequencyPlot_->yAxis);
    bars->setData(ticks, shares);
    bars->setPen(QPen(QColor(30, 90, 160)));
    bars->setBrush(QColor(70, 130, 200));
    auto ticker = QSharedPointer<QCPAxisTickerText>::create();
    ticker->addTicks(ticks, labels);
    frequencyPlot_->xAxis->setTicker(ticker);
    frequencyPlot_->xAxis->setTickLabelRotation(labels.size() > 6 ? 60 : 0);
    frequencyPlot_->xAxis->setRange(0.3, labels.size() + 0.7);
    double maxShare = 1.0;
    for (double s : shares) maxShare = std::max(maxShare, s);
    frequencyPlot_->yAxis->setRange(0, maxShare * 1.1);
    frequencyPlot_->replot(QCustomPlot::rpQueuedReplot);
    Q_EMIT checkFinished(report.ok());
}

}  // namespace segscope::ui
