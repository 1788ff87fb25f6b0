#include "segscope/ui/experiment_editor.h"

#include "segscope/core/data/dataset.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/runtime.h"

#include <QtWidgets>
#include <nlohmann/json.hpp>

namespace segscope::ui {
namespace {

QComboBox* combo(const QStringList& items) {
    auto* c = new QComboBox;
    c->addItems(items);
    return c;
}

}  // namespace

ExperimentEditor::ExperimentEditor(QWidget* parent) : QWidget(parent) {
    name_ = new QLineEdit;
    kind_ = combo({QStringLiteral("demo"), QStringLiteral("voc"), QStringLiteral("pets"), QStringLiteral("folder")});
    root_ = new QLineEdit;
    root_->setPlaceholderText(tr("dataset folder (demo: default location)"));
    auto* browse = new QPushButton(tr("Browse…"));
    trainSplit_ = new QLineEdit;
    valSplit_ = new QLineEdit;
    petsMode_ = combo({QStringLiteral("trimap"), QStringLiteral("binary"), QStringLiteral("binary-border-fg")});
    voidToBackground_ = new QCheckBox(tr("map void to background"));
    model_ = new QComboBox;
    for (const auto& entry : core::modelRegistry())
        model_->addItem(QStringLiteral("%1   [%2]")
                            .arg(QString::fromStdString(entry.info.id), QString::fromStdString(entry.info.family)),
                        QString::fromStdString(entry.info.id));
    model_->setMaxVisibleItems(20);
    parameters_ = new QLabel;
    pretrainedReport_ = new QLabel;
    pretrainedReport_->setWordWrap(true);
    pretrainedReport_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    pretrainedReport_->setVisible(false);
    datasetProblem_ = new QLabel;
    datasetProblem_->setWordWrap(true);
    datasetProblem_->setStyleSheet(QStringLiteral("color: #b41e1e;"));
    datasetProblem_->setVisible(false);
    pretrained_ = new QLineEdit;
    pretrained_->setPlaceholderText(tr("optional pretrained weights (.safetensors, .pth)"));
    auto* browseWeights = new QPushButton(tr("Browse…"));
    height_ = new QSpinBox;
    width_ = new QSpinBox;
    for (QSpinBox* s : {height_, width_}) {
        s->setRange(1, 4096);
        s->setSingleStep(32);
    }
    resizeMode_ = combo({QStringLiteral("fixed"), QStringLiteral("random-scale-crop")});
    flip_ = new QCheckBox(tr("horizontal flip"));
    optimizer_ = combo({QStringLiteral("sgd"), QStringLiteral("adam"), QStringLiteral("adamw")});
    learningRate_ = new QDoubleSpinBox;
    learningRate_->setDecimals(6);
    learningRate_->setRange(-1.0, 10.0);
    learningRate_->setSingleStep(1e-4);
    weightDecay_ = new QDoubleSpinBox;
    weightDecay_->setDecimals(6);
    weightDecay_->setRange(-1.0, 1.0);
    schedule_ =
        combo({QStringLiteral("constant"), QStringLiteral("step"), QStringLiteral("poly"), QStringLiteral("cosine")});
    epochs_ = new QSpinBox;
    epochs_->setRange(0, 100000);
    batch_ = new QSpinBox;
    batch_->setRange(0, 4096);
    amp_ = combo({QStringLiteral("off"), QStringLiteral("bf16"), QStringLiteral("fp16")});
    device_ = new QComboBox;
    device_->addItem(QStringLiteral("auto"));
    for (const auto& d : core::availableDevices()) device_->addItem(QString::fromStdString(d));
    seed_ = new QSpinBox;
    seed_->setRange(0, 1 << 30);
    workers_ = new QSpinBox;
    workers_->setRange(0, 64);
    erfEvery_ = new QSpinBox;
    erfEvery_->setRange(0, 100000);
    erfEvery_->setSpecialValueText(tr("off"));
    erfEvery_->setToolTip(tr("Record the effective receptive field of every stage before training and every N epochs"));
    errorSummary_ = new QLabel;
    errorSummary_->setWordWrap(true);
    errorSummary_->setStyleSheet(QStringLiteral("color: #b41e1e;"));

    auto* form = new QFormLayout;
    form_ = form;
    auto section = [&](const QString& title) {
        auto* label = new QLabel(QStringLiteral("<b>%1</b>").arg(title));
        form->addRow(label);
    };
    auto withButton = [](QWidget* field, QPushButton* button) {
        auto* row = new QWidget;
        auto* h = new QHBoxLayout(row);
        h->setContentsMargins(0, 0, 0, 0);
        h->addWidget(field, 1);
        h->addWidget(button);
        return row;
    };
    form->addRow(tr("Name"), name_);
    section(tr("Dataset"));
    form->addRow(tr("Kind"), kind_);
    form->addRow(tr("Root"), withButton(root_, browse));
    form->addRow(QString(), datasetProblem_);
    form->addRow(tr("Train / val split"), [&] {
        auto* row = new QWidget;
        auto* h = new QHBoxLayout(row);
        h->setContentsMargins(0, 0, 0, 0);
        h->addWidget(trainSplit_);
        h->addWidget(valSplit_);
        return row;
    }());
    form->addRow(tr("Pets mode"), petsMode_);
    form->addRow(QString(), voidToBackground_);
    section(tr("Model"));
    form->addRow(tr("Architecture"), model_);
    form->addRow(tr("Parameters"), parameters_);
    form->addRow(tr("Pretrained"), withButton(pretrained_, browseWeights));
    form->addRow(QString(), pretrainedReport_);
    section(tr("Input transforms"));
    form->addRow(tr("Height × width"), [&] {
        auto* row = new QWidget;
        auto* h = new QHBoxLayout(row);
        h->setContentsMargins(0, 0, 0, 0);
        h->addWidget(height_);
        h->addWidget(width_);
        return row;
    }());
    form->addRow(tr("Resize"), resizeMode_);
    form->addRow(QString(), flip_);
    section(tr("Hyperparameters"));
    form->addRow(tr("Optimizer"), optimizer_);
    form->addRow(tr("Learning rate"), learningRate_);
    form->addRow(tr("Weight decay"), weightDecay_);
    form->addRow(tr("Schedule"), schedule_);
    form->addRow(tr("Epochs"), epochs_);
    form->addRow(tr("Batch size"), batch_);
    form->addRow(tr("AMP (CUDA)"), amp_);
    form->addRow(tr("Device"), device_);
    form->addRow(tr("Seed"), seed_);
    form->addRow(tr("Loader workers"), workers_);
    form->addRow(tr("ERF every N epochs"), erfEvery_);
    auto* layout = new QVBoxLayout(this);
    auto* scroll = new QScrollArea;
    auto* inner = new QWidget;
    inner->setLayout(form);
    scroll->setWidget(inner);
    scroll->setWidgetResizable(true);
    layout->addWidget(scroll, 1);
    layout->addWidget(errorSummary_);

    addField(QStringLiteral("name"), name_);
    addField(QStringLiteral("dataset.kind"), kind_);
    addField(QStringLiteral("dataset.root"), root_);
    addField(QStringLiteral("dataset.train_split"), trainSplit_);
    addField(QStringLiteral("dataset.val_split"), valSplit_);
    addField(QStringLiteral("dataset.pets_mode"), petsMode_);
    addField(QStringLiteral("dataset.void_to_background"), voidToBackground_);
    addField(QStringLiteral("model.id"), model_);
    addField(QStringLiteral("model.pretrained"), pretrained_);
    addField(QStringLiteral("transforms.height"), height_);
    addField(QStringLiteral("transforms.width"), width_);
    addField(QStringLiteral("transforms.mode"), resizeMode_);
    addField(QStringLiteral("transforms.horizontal_flip"), flip_);
    addField(QStringLiteral("optimizer.type"), optimizer_);
    addField(QStringLiteral("optimizer.lr"), learningRate_);
    addField(QStringLiteral("optimizer.weight_decay"), weightDecay_);
    addField(QStringLiteral("schedule.type"), schedule_);
    addField(QStringLiteral("training.epochs"), epochs_);
    addField(QStringLiteral("training.batch_size"), batch_);
    addField(QStringLiteral("training.amp"), amp_);
    addField(QStringLiteral("runtime.device"), device_);
    addField(QStringLiteral("runtime.seed"), seed_);
    addField(QStringLiteral("runtime.workers"), workers_);
    addField(QStringLiteral("training.erf_every_epochs"), erfEvery_);

    connect(browse, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Dataset root"), root_->text());
        if (!dir.isEmpty()) root_->setText(dir);
    });
    connect(browseWeights, &QPushButton::clicked, this, [this] {
        const QString file = QFileDialog::getOpenFileName(this, tr("Pretrained weights"), pretrained_->text(),
                                                          tr("Weights (*.safetensors *.pth *.pt *.bin)"));
        if (!file.isEmpty()) pretrained_->setText(file);
    });
    // Edits come in bursts (typing a root): count once they settle.
    countTimer_.setSingleShot(true);
    countTimer_.setInterval(250);
    connect(&countTimer_, &QTimer::timeout, this, [this] { updateParameterCount(); });
    for (QComboBox* c : {model_, kind_, petsMode_})
        connect(c, &QComboBox::currentIndexChanged, this, [this] { countTimer_.start(); });
    connect(root_, &QLineEdit::textChanged, this, [this] { countTimer_.start(); });
    connect(pretrained_, &QLineEdit::textChanged, this, [this] { countTimer_.start(); });
    connect(kind_, &QComboBox::currentIndexChanged, this, [this] {
        updateVisibleFields();
        followDerivedName();
    });
    connect(model_, &QComboBox::currentIndexChanged, this, [this] { followDerivedName(); });
    // A name typed by the user is kept; one the editor derived follows the architecture.
    connect(name_, &QLineEdit::textEdited, this,
            [this](const QString& text) { derivedName_ = text.isEmpty() ? derivedName() : QString(); });
    name_->setToolTip(tr("Run name; follows the dataset and architecture until you edit it"));
    kind_->setToolTip(
        tr("demo: generated shapes; voc: PASCAL VOC 2012 layout; pets: Oxford-IIIT Pets; folder: images/ + masks/"));
    root_->setToolTip(tr("Folder holding the dataset"));
    petsMode_->setToolTip(
        tr("trimap: background, pet, border; binary: border ignored; binary-border-fg: border counted as pet"));
    voidToBackground_->setToolTip(tr("Count void pixels (label 255) as background instead of ignoring them"));
    model_->setToolTip(tr("Architecture (model zoo id and family)"));
    parameters_->setToolTip(tr("Exact parameter count at the dataset's class count (or model.classes when set)"));
    pretrained_->setToolTip(tr("Weights to start from; the encoder must load completely"));

    core::Experiment defaults;
    defaults.model.id = "segformer-b0";
    defaults.training.epochs = 8;
    setExperiment(defaults);
}

void ExperimentEditor::addField(const QString& path, QWidget* widget) {
    fields_.insert(path, widget);
    // Re-validate on every edit so problems show before launch.
    if (auto* e = qobject_cast<QLineEdit*>(widget)) connect(e, &QLineEdit::textChanged, this, [this] { validate(); });
    if (auto* c = qobject_cast<QComboBox*>(widget))
        connect(c, &QComboBox::currentIndexChanged, this, [this] { validate(); });
    if (auto* s = qobject_cast<QSpinBox*>(widget)) connect(s, &QSpinBox::valueChanged, this, [this] { validate(); });
    if (auto* d = qobject_cast<QDoubleSpinBox*>(widget))
        connect(d, &QDoubleSpinBox::valueChanged, this, [this] { validate(); });
    if (auto* b = qobject_cast<QCheckBox*>(widget)) connect(b, &QCheckBox::toggled, this, [this] { validate(); });
}

void ExperimentEditor::setExperiment(const core::Experiment& e) {
    base_ = core::toJson(e);
    const QSignalBlocker blockers[] = {QSignalBlocker(this)};
    derivedName_.clear();  // loading the fields must not rename the run
    name_->setText(QString::fromStdString(e.name));
    kind_->setCurrentText(QString::fromLatin1(core::dataSourceName(e.dataset.kind)));
    root_->setText(QString::fromStdString(e.dataset.root.string()));
    trainSplit_->setText(QString::fromStdString(e.dataset.trainSplit));
    valSplit_->setText(QString::fromStdString(e.dataset.valSplit));
    petsMode_->setCurrentText(QString::fromLatin1(core::petsModeName(e.dataset.petsMode)));
    voidToBackground_->setChecked(e.dataset.voidToBackground);
    model_->setCurrentIndex(model_->findData(QString::fromStdString(e.model.id)));
    pretrained_->setText(e.model.pretrained ? QString::fromStdString(e.model.pretrained->string()) : QString());
    height_->setValue(e.transforms.height);
    width_->setValue(e.transforms.width);
    resizeMode_->setCurrentText(QString::fromLatin1(core::resizeModeName(e.transforms.mode)));
    flip_->setChecked(e.transforms.horizontalFlip);
    optimizer_->setCurrentText(QString::fromLatin1(core::optimizerTypeName(e.optimizer.type)));
    learningRate_->setValue(e.optimizer.learningRate);
    weightDecay_->setValue(e.optimizer.weightDecay);
    schedule_->setCurrentText(QString::fromLatin1(core::scheduleTypeName(e.schedule.type)));
    epochs_->setValue(e.training.epochs.value_or(0));
    batch_->setValue(e.training.batchSize);
    amp_->setCurrentText(QString::fromLatin1(core::ampModeName(e.training.amp)));
    if (device_->findText(QString::fromStdString(e.runtime.device)) < 0)
        device_->addItem(QString::fromStdString(e.runtime.device));
    device_->setCurrentText(QString::fromStdString(e.runtime.device));
    seed_->setValue(int(e.runtime.seed));
    workers_->setValue(e.runtime.workers);
    erfEvery_->setValue(e.training.erfEveryEpochs);
    epochs_->setEnabled(!e.training.iterations);
    // A loaded name that is the derived one keeps following the architecture.
    derivedName_ = name_->text() == derivedName() || name_->text().isEmpty() ? derivedName() : QString();
    if (name_->text().isEmpty()) name_->setText(derivedName_);
    updateVisibleFields();
    validate();
    countedKey_.clear();
    updateParameterCount();
}

QString ExperimentEditor::derivedName() const {
    return kind_->currentText() + QLatin1Char('-') + model_->currentData().toString();
}

void ExperimentEditor::followDerivedName() {
    if (derivedName_.isEmpty()) return;  // the user named the run
    derivedName_ = derivedName();
    name_->setText(derivedName_);
}

void ExperimentEditor::updateVisibleFields() {
    const QString kind = kind_->currentText();
    const bool pets = kind == QStringLiteral("pets");
    form_->setRowVisible(petsMode_, pets);
    // Void (255) exists in VOC-layout and folder masks; the demo's rings and the Pets trimaps have
    // their own handling.
    form_->setRowVisible(voidToBackground_, kind == QStringLiteral("voc") || kind == QStringLiteral("folder"));
}

QString ExperimentEditor::parameterText() const {
    return parameters_->text();
}

QString ExperimentEditor::pretrainedReport() const {
    return pretrainedReport_->text();
}

QString ExperimentEditor::datasetProblem() const {
    return datasetProblem_->text();
}

nlohmann::json ExperimentEditor::document() const {
    nlohmann::json j = base_;
    j["name"] = name_->text().toStdString();
    j["dataset"]["kind"] = kind_->currentText().toStdString();
    if (root_->text().isEmpty())
        j["dataset"].erase("root");
    else
        j["dataset"]["root"] = root_->text().toStdString();
    j["dataset"]["train_split"] = trainSplit_->text().toStdString();
    j["dataset"]["val_split"] = valSplit_->text().toStdString();
    j["dataset"]["pets_mode"] = petsMode_->currentText().toStdString();
    j["dataset"]["void_to_background"] = voidToBackground_->isChecked();
    j["model"]["id"] = model_->currentData().toString().toStdString();
    if (pretrained_->text().isEmpty())
        j["model"].erase("pretrained");
    else
        j["model"]["pretrained"] = pretrained_->text().toStdString();
    j["transforms"]["height"] = height_->value();
    j["transforms"]["width"] = width_->value();
    j["transforms"]["mode"] = resizeMode_->currentText().toStdString();
    j["transforms"]["horizontal_flip"] = flip_->isChecked();
    j["optimizer"]["type"] = optimizer_->currentText().toStdString();
    j["optimizer"]["lr"] = learningRate_->value();
    j["optimizer"]["weight_decay"] = weightDecay_->value();
    j["schedule"]["type"] = schedule_->currentText().toStdString();
    if (epochs_->isEnabled()) {
        j["training"]["epochs"] = epochs_->value();
        j["training"].erase("iterations");
    }
    j["training"]["batch_size"] = batch_->value();
    j["training"]["amp"] = amp_->currentText().toStdString();
    j["runtime"]["device"] = device_->currentText().toStdString();
    j["runtime"]["seed"] = seed_->value();
    j["runtime"]["workers"] = workers_->value();
    j["training"]["erf_every_epochs"] = erfEvery_->value();
    return j;
}

std::optional<core::Experiment> ExperimentEditor::experiment() {
    validate();
    if (!errors_.isEmpty()) return std::nullopt;
    return core::parseExperiment(document());
}

void ExperimentEditor::validate() {
    QHash<QString, QString> errors;
    try {
        core::parseExperiment(document());
    } catch (const core::ExperimentError& e) {
        for (const auto& f : e.errors()) {
            const QString path = QString::fromStdString(f.path);
            errors[path] +=
                (errors[path].isEmpty() ? QString() : QStringLiteral("\n")) + QString::fromStdString(f.message);
        }
    } catch (const std::exception& e) {
        errors[QString()] = QString::fromStdString(e.what());
    }
    for (auto it = fields_.begin(); it != fields_.end(); ++it) {
        const bool bad = errors.contains(it.key());
        it.value()->setStyleSheet(bad ? QStringLiteral("border: 2px solid #d03030;") : QString());
        it.value()->setToolTip(bad ? errors.value(it.key()) : QString());
    }
    QStringList lines;
    for (auto it = errors.begin(); it != errors.end(); ++it)
        lines << (it.key().isEmpty() ? it.value() : it.key() + QStringLiteral(": ") + it.value());
    lines.sort();
    errorSummary_->setText(lines.join(QLatin1Char('\n')));
    const bool changed = errors.isEmpty() != errors_.isEmpty();
    errors_ = errors;
    if (changed) Q_EMIT validityChanged(errors_.isEmpty());
}

ExperimentEditor::~ExperimentEditor() {
    Worker::cancelAndWait(countWorker_);
}

void ExperimentEditor::showCount(const Count& c) {
    parameters_->setText(
        c.parameters > 0 ? tr("%1 (%2 classes, %3)").arg(QLocale().toString(c.parameters)).arg(c.classes).arg(c.source)
                         : tr("unknown"));
    datasetProblem_->setText(c.datasetProblem);
    datasetProblem_->setVisible(!c.datasetProblem.isEmpty());
    pretrainedReport_->setText(c.pretrainedReport);
    pretrainedReport_->setVisible(!c.pretrainedReport.isEmpty());
    pretrainedReport_->setStyleSheet(c.pretrainedRefused ? QStringLiteral("color: #b41e1e;")
                                                         : QStringLiteral("color: #2a6a2a;"));
    Q_EMIT parametersCounted();
    // An edit during the count asks again.
    updateParameterCount();
}

void ExperimentEditor::updateParameterCount() {
    const nlohmann::json document = this->document();
    const QString id = model_->currentData().toString();
    const QString key = QString::fromStdString(document["dataset"].dump() + document["model"].dump());
    if (id.isEmpty() || key == countedKey_ || countWorker_) return;
    countedKey_ = key;
    parameters_->setText(tr("counting…"));
    // Building a large model and opening the dataset take a moment: off the GUI thread.
    auto result = std::make_shared<Count>();
    countWorker_ = TaskWorker::start(
        [id, document, result](const std::atomic<bool>&, const TaskWorker::Progress&) {
            Count& count = *result;
            try {
                const core::Experiment e = core::parseExperiment(document);
                if (e.model.classes) {
                    count.classes = *e.model.classes;
                    count.source = tr("model.classes");
                } else {
                    try {
                        const auto dataset = core::Dataset::open(core::datasetSpec(e, e.dataset.trainSplit));
                        count.classes = dataset->numClasses();
                        count.source = tr("from the dataset");
                    } catch (const std::exception& error) {
                        // The demo is generated at start; any other dataset should be there now.
                        if (e.dataset.kind != core::DataSource::Demo)
                            count.datasetProblem = QString::fromStdString(error.what());
                        if (e.dataset.kind == core::DataSource::Demo) {
                            count.classes = int(core::demoClasses().size());
                            count.source = tr("the demo's");
                        } else {
                            count.classes = 21;
                            count.source = tr("dataset not readable yet: VOC's 21 assumed");
                        }
                    }
                }
            } catch (const std::exception&) {
                count.classes = 21;
                count.source = tr("experiment invalid: 21 assumed");
            }
            try {
                const auto model = core::createModel(id.toStdString(), count.classes);
                count.parameters = core::countParameters(*model);
                const auto pretrained = document["model"].find("pretrained");
                if (pretrained != document["model"].end() && pretrained->is_string() &&
                    !pretrained->get<std::string>().empty()) {
                    const bool strict = document["model"].value("pretrained_strict", true);
                    try {
                        count.pretrainedReport = QString::fromStdString(core::loadPretrainedStart(
                            *model, id.toStdString(), pretrained->get<std::string>(), strict));
                    } catch (const std::exception& error) {
                        count.pretrainedReport = QString::fromStdString(error.what());
                        count.pretrainedRefused = true;
                    }
                }
            } catch (const std::exception&) {
                count.parameters = -1;
            }
        },
        this);
    connect(countWorker_, &Worker::finished, this, [this, result] {
        countWorker_ = nullptr;
        showCount(*result);
    });
}

}  // namespace segscope::ui
