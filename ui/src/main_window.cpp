#include "segscope/ui/main_window.h"

#include "segscope/core/error.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/curves_widget.h"
#include "segscope/ui/dataset_panel.h"
#include "segscope/ui/erf_panel.h"
#include "segscope/ui/experiment_editor.h"
#include "segscope/ui/predictions_panel.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/training_worker.h"
#include "segscope/ui/workspace.h"

#include <QtWidgets>
#include <nlohmann/json.hpp>

namespace segscope::ui {
namespace {

QString formatSeconds(double s) {
    const int total = int(s + 0.5);
    return total >= 3600 ? QStringLiteral("%1:%2:%3")
                               .arg(total / 3600)
                               .arg(total / 60 % 60, 2, 10, QLatin1Char('0'))
                               .arg(total % 60, 2, 10, QLatin1Char('0'))
                         : QStringLiteral("%1:%2").arg(total / 60).arg(total % 60, 2, 10, QLatin1Char('0'));
}

QString presetsFolder() {
    const QString installed = QCoreApplication::applicationDirPath() + QStringLiteral("/../share/segscope/presets");
    if (QDir(installed).exists()) return installed;
    return QStringLiteral(SEGSCOPE_SOURCE_PRESETS);
}

}  // namespace

MainWindow::MainWindow(QString workspace, QWidget* parent) : QMainWindow(parent), workspace_(std::move(workspace)) {
    registerCoreMetaTypes();
    setWindowTitle(tr("SegScope"));
    setAcceptDrops(true);
    tabs_ = new QTabWidget;

    // Experiment tab: editor on the left, run control on the right.
    auto* experimentPage = new QWidget;
    auto* experimentLayout = new QHBoxLayout(experimentPage);
    editor_ = new ExperimentEditor;
    experimentLayout->addWidget(editor_, 3);
    auto* control = new QVBoxLayout;
    startButton_ = new QPushButton(tr("Start run"));
    startButton_->setStyleSheet(QStringLiteral("font-weight: bold; padding: 6px;"));
    pauseButton_ = new QPushButton(tr("Pause"));
    stopButton_ = new QPushButton(tr("Stop"));
    pauseButton_->setEnabled(false);
    stopButton_->setEnabled(false);
    queueList_ = new QListWidget;
    control->addWidget(startButton_);
    auto* pauseStop = new QHBoxLayout;
    pauseStop->addWidget(pauseButton_);
    pauseStop->addWidget(stopButton_);
    control->addLayout(pauseStop);
    control->addWidget(new QLabel(tr("Queue")));
    control->addWidget(queueList_, 1);
    experimentLayout->addLayout(control, 1);
    tabs_->addTab(experimentPage, tr("Experiment"));

    // Training tab: live curves, status, log.
    auto* trainingPage = new QWidget;
    auto* trainingLayout = new QVBoxLayout(trainingPage);
    banner_ = new QLabel;
    banner_->setWordWrap(true);
    banner_->setVisible(false);
    banner_->setStyleSheet(
        QStringLiteral("background: #fde2e2; color: #8a1010; padding: 8px; border: 1px solid #d99;"));
    runStatus_ = new QLabel(tr("No run yet."));
    curves_ = new CurvesWidget;
    log_ = new QPlainTextEdit;
    log_->setReadOnly(true);
    log_->setMaximumBlockCount(2000);
    log_->setMaximumHeight(110);
    trainingLayout->addWidget(banner_);
    trainingLayout->addWidget(runStatus_);
    trainingLayout->addWidget(curves_, 1);
    trainingLayout->addWidget(log_);
    tabs_->addTab(trainingPage, tr("Training"));

    runs_ = new RunsPanel(workspace_);
    tabs_->addTab(runs_, tr("Runs"));
    dataset_ = new DatasetPanel(workspace_);
    tabs_->addTab(dataset_, tr("Dataset"));
    predictions_ = new PredictionsPanel(workspace_);
    tabs_->addTab(predictions_, tr("Predictions"));
    erf_ = new ErfPanel(workspace_);
    erf_->setExperimentProvider([this] { return editor_->experiment(); });
    tabs_->addTab(erf_, tr("ERF"));
    setCentralWidget(tabs_);
    // Fit the screen it opens on: 1280×720 and 1366×768 projectors and laptops are common in
    // classrooms, and every tab fits them (minimumSizeHint is checked by a test). A tiny virtual
    // screen (offscreen's 800×600) keeps the design size.
    QSize size(1280, 720);
    if (const QScreen* s = screen(); s && s->availableGeometry().width() >= 1024)
        size = size.boundedTo(s->availableGeometry().size() - QSize(0, 40));
    resize(size);

    // Run controls on a toolbar visible from every tab.
    startAction_ = new QAction(tr("Start run"), this);
    startAction_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Return));
    startAction_->setToolTip(tr("Validate the experiment and start (or queue) a run (Ctrl+Return)"));
    pauseAction_ = new QAction(tr("Pause"), this);
    pauseAction_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_P));
    pauseAction_->setToolTip(tr("Pause or resume the active run between steps (Ctrl+P)"));
    stopAction_ = new QAction(tr("Stop"), this);
    stopAction_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Period));
    stopAction_->setToolTip(tr("Stop the active run; it stays resumable from the Runs tab (Ctrl+.)"));
    for (QAction* a : {startAction_, pauseAction_, stopAction_}) a->setShortcutContext(Qt::ApplicationShortcut);
    auto* toolbar = addToolBar(tr("Run"));
    toolbar->setObjectName(QStringLiteral("runToolbar"));
    toolbar->setMovable(false);
    toolbar->addAction(startAction_);
    toolbar->addAction(pauseAction_);
    toolbar->addAction(stopAction_);
    toolbar->addSeparator();
    progress_ = new QProgressBar;
    progress_->setMaximumWidth(220);
    progress_->setFormat(tr("step %v of %m"));
    progress_->setToolTip(tr("Progress of the active run"));
    progress_->setRange(0, 1);
    progress_->setValue(0);
    toolbar->addWidget(progress_);
    readout_ = new QLabel;
    readout_->setObjectName(QStringLiteral("miouReadout"));
    readout_->setToolTip(tr("Best and latest validation mIoU of the active (or last) run"));
    readout_->setContentsMargins(12, 0, 0, 0);
    toolbar->addWidget(readout_);
    startButton_->setToolTip(startAction_->toolTip());
    pauseButton_->setToolTip(pauseAction_->toolTip());
    stopButton_->setToolTip(stopAction_->toolTip());
    queueList_->setToolTip(tr("Runs waiting for the active one to end"));
    buildMenus();

    connect(startAction_, &QAction::triggered, this, [this] { startRun(); });
    connect(pauseAction_, &QAction::triggered, this, [this] { paused_ ? resumeActive() : pauseActive(); });
    connect(stopAction_, &QAction::triggered, this, &MainWindow::stopActive);
    connect(startButton_, &QPushButton::clicked, startAction_, &QAction::trigger);
    connect(pauseButton_, &QPushButton::clicked, pauseAction_, &QAction::trigger);
    connect(stopButton_, &QPushButton::clicked, stopAction_, &QAction::trigger);
    updateRunControls();
    connect(runs_, &RunsPanel::resumeRequested, this, &MainWindow::resumeRun);
    connect(runs_, &RunsPanel::statusMessage, this, [this](const QString& m) { statusBar()->showMessage(m, 8000); });
    connect(dataset_, &DatasetPanel::statusMessage, this,
            [this](const QString& m) { statusBar()->showMessage(m, 8000); });
    connect(predictions_, &PredictionsPanel::statusMessage, this,
            [this](const QString& m) { statusBar()->showMessage(m, 8000); });
    connect(erf_, &ErfPanel::statusMessage, this, [this](const QString& m) { statusBar()->showMessage(m, 8000); });
    connect(tabs_, &QTabWidget::currentChanged, this, [this](int index) {
        if (tabs_->widget(index) == erf_ && !erf_->busy()) erf_->refreshRuns();
        if (tabs_->widget(index) == predictions_ && !predictions_->busy()) predictions_->refreshRuns();
    });
}

MainWindow::~MainWindow() {
    queue_.clear();
    Worker::cancelAndWait(worker_);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&Open experiment…"), QKeySequence::Open, this, [this] {
        const QString path =
            QFileDialog::getOpenFileName(this, tr("Open experiment"), workspace_, tr("Experiments (*.json)"));
        if (!path.isEmpty()) openExperiment(path);
    });
    file->addAction(tr("&Save experiment as…"), QKeySequence::SaveAs, this, [this] {
        const auto e = editor_->experiment();
        if (!e) {
            showError(tr("Experiment not saved"), tr("Fix the flagged fields first."));
            return;
        }
        const QString path =
            QFileDialog::getSaveFileName(this, tr("Save experiment"), workspace_, tr("Experiments (*.json)"));
        if (path.isEmpty()) return;
        try {
            core::saveExperiment(path.toStdString(), *e);
        } catch (const std::exception& error) {
            showError(tr("Experiment not saved"), QString::fromStdString(error.what()));
        }
    });
    file->addSeparator();
    file->addAction(tr("Export curves…"), this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export curves"), workspace_,
                                                          tr("PNG (*.png);;PDF (*.pdf);;SVG (*.svg)"));
        if (!path.isEmpty() && !curves_->exportPlots(path)) showError(tr("Export failed"), path);
    });
    file->addAction(tr("Export metrics as CSV…"), this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export metrics"), workspace_, tr("CSV (*.csv)"));
        if (!path.isEmpty() && !curves_->exportCsv(path)) showError(tr("Export failed"), path);
    });
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

    QMenu* presets = menuBar()->addMenu(tr("&Presets"));
    const QDir dir(presetsFolder());
    for (const QString& name : dir.entryList({QStringLiteral("*.json")}, QDir::Files, QDir::Name)) {
        const QString path = dir.filePath(name);
        presets->addAction(QFileInfo(name).completeBaseName(), this, [this, path] { openExperiment(path); });
    }
    if (presets->isEmpty()) presets->addAction(tr("(no presets found)"))->setEnabled(false);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    QAction* presenter = view->addAction(tr("Presenter mode"));
    presenter->setCheckable(true);
    presenter->setObjectName(QStringLiteral("presenterAction"));
    presenter->setShortcut(QKeySequence(Qt::Key_F11));
    connect(presenter, &QAction::toggled, this, &MainWindow::setPresenterMode);

    QMenu* run = menuBar()->addMenu(tr("&Run"));
    run->addAction(startAction_);
    run->addAction(pauseAction_);
    run->addAction(stopAction_);

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("Keyboard shortcuts"), QKeySequence::HelpContents, this, [this] {
        QMessageBox::information(this, tr("Keyboard shortcuts"), shortcutList().join(QLatin1Char('\n')));
    });
    help->addAction(tr("About SegScope"), this, [this] {
        QMessageBox::about(this, tr("About SegScope"),
                           tr("SegScope %1: a workbench for semantic-segmentation experiments.\nWorkspace: %2")
                               .arg(QCoreApplication::applicationVersion(), workspace_));
    });
}

QStringList MainWindow::shortcutList() const {
    QStringList lines;
    for (const QAction* a : findChildren<QAction*>()) {
        if (a->shortcut().isEmpty()) continue;
        QString text = a->text();
        text.remove(QLatin1Char('&'));
        text.remove(QStringLiteral("…"));
        const QString line = a->shortcut().toString(QKeySequence::NativeText) + QStringLiteral(" — ") + text;
        if (!lines.contains(line)) lines << line;
    }
    lines.sort();
    return lines;
}

QString MainWindow::miouReadout() const {
    return readout_->text();
}

void MainWindow::updateRunControls() {
    const bool active = worker_ != nullptr;
    pauseAction_->setEnabled(active);
    stopAction_->setEnabled(active);
    pauseAction_->setText(paused_ ? tr("Resume") : tr("Pause"));
    pauseButton_->setEnabled(active);
    stopButton_->setEnabled(active);
    pauseButton_->setText(pauseAction_->text());
    startAction_->setText(active ? tr("Queue run") : tr("Start run"));
    startButton_->setText(startAction_->text());
    progress_->setFormat(totalSteps_ > 0 ? tr("step %v of %m") : tr("no run yet"));
    progress_->setRange(0, int(std::max<std::int64_t>(1, totalSteps_)));
    progress_->setValue(int(std::min(lastStep_, std::max<std::int64_t>(1, totalSteps_))));
    QString text;
    if (bestMiou_) text = tr("best mIoU %1% (epoch %2)").arg(*bestMiou_ * 100, 0, 'f', 1).arg(bestEpoch_);
    if (lastMiou_)
        text += (text.isEmpty() ? QString() : QStringLiteral(" · ")) + tr("last %1%").arg(*lastMiou_ * 100, 0, 'f', 1);
    readout_->setText(text.isEmpty() && active ? tr("no validation yet") : text);
}

bool MainWindow::openExperiment(const QString& path) {
    try {
        core::Experiment experiment = core::loadExperiment(path.toStdString());
        // The built-in demo lives in the workspace unless the experiment names a folder.
        if (experiment.dataset.kind == core::DataSource::Demo && experiment.dataset.root.empty())
            experiment.dataset.root = demoDatasetPath(workspace_).toStdString();
        editor_->setExperiment(experiment);
        statusBar()->showMessage(tr("Loaded %1").arg(path), 5000);
        tabs_->setCurrentIndex(0);
        return true;
    } catch (const std::exception& e) {
        showError(tr("Cannot open experiment"), QString::fromStdString(e.what()));
        return false;
    }
}

bool MainWindow::startRun() {
    const auto experiment = editor_->experiment();
    if (!experiment) {
        statusBar()->showMessage(tr("The experiment has invalid fields; they are flagged in the editor."), 8000);
        return false;
    }
    queue_.enqueue({*experiment, {}});
    queueList_->addItem(QString::fromStdString(experiment->name.empty() ? experiment->model.id : experiment->name));
    launchNext();
    return true;
}

void MainWindow::resumeRun(const QString& runId) {
    queue_.enqueue({core::Experiment{}, runId});
    queueList_->addItem(tr("resume %1").arg(runId));
    launchNext();
}

void MainWindow::launchNext() {
    // One run at a time on this machine's device by default; the rest wait.
    if (worker_ || queue_.isEmpty()) return;
    const Pending next = queue_.dequeue();
    delete queueList_->takeItem(0);
    banner_->setVisible(false);
    auto* worker = Worker::start(new TrainingWorker(next.experiment, workspace_, next.resumeRunId), this);
    worker_ = worker;
    outcome_.reset();
    connect(worker, &TrainingWorker::runCreated, this, [this](const QString& id) {
        activeRunId_ = id;
        bestMiou_.reset();
        lastMiou_.reset();
        bestEpoch_ = -1;
        totalSteps_ = lastStep_ = 0;
        updateRunControls();
        curves_->clear();
        curves_->addRun(id, id);
        log_->clear();
        Q_EMIT runStarted(id);
    });
    connect(worker, &TrainingWorker::started, this, [this](const QString& id, const core::TrainingStart& s) {
        QStringList names;
        for (const auto& n : s.classNames) names << QString::fromStdString(n);
        curves_->setStepsPerEpoch(id, s.stepsPerEpoch);
        curves_->setClassNames(id, names);
        totalSteps_ = s.totalSteps;
        batchSize_ = s.batchSize;
        lastStep_ = s.resumedAtStep;
        if (s.resumedAtStep > 0) {
            try {
                curves_->loadFromStore(*core::RunStore::open(workspace_.toStdString(), core::StoreAccess::ReadOnly), id,
                                       id);
            } catch (const std::exception& e) {
                statusBar()->showMessage(
                    tr("Cannot load the earlier steps of %1: %2").arg(id, QString::fromUtf8(e.what())));
            }
        }
        runStatus_->setText(tr("%1: %2 (%3 parameters) on %4")
                                .arg(id, QString::fromStdString(s.modelId), QLocale().toString(qlonglong(s.parameters)),
                                     QString::fromStdString(s.device)));
        updateRunControls();
        tabs_->setCurrentIndex(1);
    });
    connect(worker, &TrainingWorker::steps, this, [this](const QString& id, const QVector<core::StepEvent>& steps) {
        curves_->appendSteps(id, steps);
        if (!steps.isEmpty()) {
            lastStep_ = steps.back().step;
            imagesPerSecond_ = steps.back().imagesPerSecond;
            wallSeconds_ = steps.back().wallSeconds;
            memoryBytes_ = steps.back().memoryBytes;
        }
        updateStatus();
        progress_->setValue(int(std::min(lastStep_, std::max<std::int64_t>(1, totalSteps_))));
        Q_EMIT stepsReceived(id, qint64(lastStep_));
    });
    connect(worker, &TrainingWorker::validated, this, [this](const QString& id, const core::ValidationEvent& e) {
        curves_->appendValidation(id, e);
        lastMiou_ = e.metrics.mIoU;
        if (e.metrics.mIoU && (!bestMiou_ || *e.metrics.mIoU > *bestMiou_)) {
            bestMiou_ = e.metrics.mIoU;
            bestEpoch_ = e.epoch;
        }
        updateRunControls();
    });
    connect(worker, &TrainingWorker::erfRecorded, this,
            [this](const QString& id, int, qint64, const QString&) { erf_->snapshotRecorded(id); });
    connect(worker, &TrainingWorker::logLine, this,
            [this](const QString&, const QString& line) { log_->appendPlainText(line); });
    connect(worker, &TrainingWorker::pausedChanged, this, [this](const QString& id, bool paused) {
        paused_ = paused;
        updateRunControls();
        updateStatus();
        Q_EMIT runPaused(id, paused);
    });
    connect(worker, &TrainingWorker::runFinished, this, [this](const QString& id, int outcome, const QString& message) {
        outcome_ = Outcome{id, outcome, message};
    });
    // The thread has ended: the run is over, whatever happened to it.
    connect(worker, &Worker::finished, this, [this](const QString& error) {
        Outcome ended =
            outcome_.value_or(Outcome{activeRunId_,
                                      int(error == QStringLiteral("cancelled") ? core::TrainingOutcome::Cancelled
                                                                               : core::TrainingOutcome::Failed),
                                      error});
        // Recording the result can fail after the trainer reported its outcome.
        if (outcome_ && !error.isEmpty() && error != QStringLiteral("cancelled"))
            ended = Outcome{ended.runId, int(core::TrainingOutcome::Failed), error};
        outcome_.reset();
        finishRun(ended.runId, ended.outcome, ended.message);
    });
}

void MainWindow::finishRun(const QString& id, int outcome, const QString& message) {
    const auto result = core::TrainingOutcome(outcome);
    log_->appendPlainText(
        QStringLiteral("%1: %2").arg(QString::fromLatin1(core::trainingOutcomeName(result)), message));
    if (result == core::TrainingOutcome::Failed) {
        banner_->setText(tr("Run failed: %1").arg(message));
        banner_->setVisible(true);
    }
    // One outcome per run: the status line names the run and how it ended.
    runStatus_->setText(
        tr("%1: %2%3")
            .arg(id, QString::fromLatin1(core::trainingOutcomeName(result)),
                 message.isEmpty() ? QString() : QStringLiteral(" — ") + message.section(QLatin1Char('\n'), 0, 0)));
    if (result == core::TrainingOutcome::Failed)
        statusBar()->showMessage(tr("Run %1 failed: %2").arg(id, message.section(QLatin1Char('\n'), 0, 0)), 15000);
    paused_ = false;
    worker_ = nullptr;
    activeRunId_.clear();
    updateRunControls();
    runs_->refresh(true);
    // The finished run becomes a source in the Predictions and ERF tabs.
    if (!predictions_->busy()) predictions_->refreshRuns();
    if (!erf_->busy()) erf_->refreshRuns();
    Q_EMIT runFinished(id, outcome, message);
    launchNext();
}

void MainWindow::pauseActive() {
    if (worker_) worker_->pause();
}
void MainWindow::resumeActive() {
    if (worker_) worker_->resume();
}
void MainWindow::stopActive() {
    if (worker_) worker_->stop();
}

void MainWindow::setPresenterMode(bool on) {
    presenter_ = on;
    if (auto* action = findChild<QAction*>(QStringLiteral("presenterAction"))) {
        QSignalBlocker block(action);
        action->setChecked(on);
    }
    curves_->setPresenterMode(on);
    runs_->curves()->setPresenterMode(on);
    QFont f = font();
    f.setPointSize(on ? 15 : QApplication::font().pointSize());
    setFont(f);
}

void MainWindow::updateStatus() {
    const double remaining = imagesPerSecond_ > 0 ? double(totalSteps_ - lastStep_) * batchSize_ / imagesPerSecond_ : 0;
    QString text = tr("step %1/%2 · %3 img/s · elapsed %4 · ETA %5")
                       .arg(lastStep_)
                       .arg(totalSteps_)
                       .arg(imagesPerSecond_, 0, 'f', 1)
                       .arg(formatSeconds(wallSeconds_), formatSeconds(remaining));
    if (memoryBytes_) text += tr(" · memory %1 MiB").arg(*memoryBytes_ / (1024 * 1024));
    if (paused_) text += tr(" · paused");
    statusBar()->showMessage(text);
}

void MainWindow::showError(const QString& title, const QString& message) {
    // The status bar holds one line: the first problem, and how many more the dialog lists.
    const QStringList lines = message.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QString line = lines.value(0);
    int more = int(lines.size()) - 1;
    if (line.endsWith(QLatin1Char(':')) && lines.size() > 1) {
        line += QLatin1Char(' ') + lines[1].trimmed();
        --more;
    }
    if (more > 0) line += tr(" (and %n more)", nullptr, more);
    statusBar()->showMessage(title + QStringLiteral(": ") + line, 10000);
    if (QGuiApplication::platformName() != QStringLiteral("offscreen")) QMessageBox::warning(this, title, message);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile() && url.toLocalFile().endsWith(QStringLiteral(".json"))) openExperiment(url.toLocalFile());
}

QString MainWindow::sessionPath() const {
    return QDir(workspace_).filePath(QStringLiteral("session.json"));
}

bool MainWindow::saveSession() const {
    nlohmann::json session;
    session["version"] = 1;
    session["experiment"] = editor_->document();
    session["tab"] = tabs_->currentIndex();
    session["presenter"] = presenter_;
    session["geometry"] = saveGeometry().toBase64().toStdString();
    session["selected_runs"] = nlohmann::json::array();
    for (const QString& id : runs_->selectedRunIds()) session["selected_runs"].push_back(id.toStdString());
    QSaveFile file(sessionPath());
    if (!file.open(QIODevice::WriteOnly)) return false;
    const std::string text = session.dump(2) + "\n";
    file.write(text.data(), qint64(text.size()));
    return file.commit();
}

bool MainWindow::restoreSession() {
    QFile file(sessionPath());
    if (!file.open(QIODevice::ReadOnly)) return false;
    nlohmann::json session;
    try {
        session = nlohmann::json::parse(file.readAll().toStdString());
    } catch (const std::exception& error) {
        file.close();
        QFile::remove(QDir(workspace_).filePath(QStringLiteral("session-previous.json")));
        QFile::rename(sessionPath(), QDir(workspace_).filePath(QStringLiteral("session-previous.json")));
        statusBar()->showMessage(tr("%1: unreadable session, kept as session-previous.json (%2)")
                                     .arg(sessionPath(), QString::fromStdString(error.what())),
                                 15000);
        return false;
    }
    bool experimentRestored = false;
    if (session.contains("experiment")) {
        try {
            core::Experiment experiment = core::parseExperiment(session["experiment"]);
            if (experiment.dataset.kind == core::DataSource::Demo && experiment.dataset.root.empty())
                experiment.dataset.root = demoDatasetPath(workspace_).toStdString();
            editor_->setExperiment(experiment);
            experimentRestored = true;
        } catch (const std::exception& error) {
            QFile::remove(QDir(workspace_).filePath(QStringLiteral("session-previous.json")));
            QFile::copy(sessionPath(), QDir(workspace_).filePath(QStringLiteral("session-previous.json")));
            statusBar()->showMessage(tr("The last session's experiment does not validate (%1); it is kept in "
                                        "session-previous.json")
                                         .arg(QString::fromStdString(error.what())),
                                     15000);
        }
    }
    if (session.contains("geometry") && session["geometry"].is_string())
        restoreGeometry(QByteArray::fromBase64(QByteArray::fromStdString(session["geometry"].get<std::string>())));
    if (session.value("presenter", false)) setPresenterMode(true);
    QStringList selected;
    if (session.contains("selected_runs") && session["selected_runs"].is_array())
        for (const auto& id : session["selected_runs"])
            if (id.is_string()) selected << QString::fromStdString(id.get<std::string>());
    if (!selected.isEmpty()) {
        runs_->refresh(true);
        runs_->selectRuns(selected);
        if (selected.size() > 1) runs_->compareSelected();
    }
    const int tab = session.value("tab", 0);
    if (tab >= 0 && tab < tabs_->count()) tabs_->setCurrentIndex(tab);
    return experimentRestored;
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (worker_ && QGuiApplication::platformName() != QStringLiteral("offscreen")) {
        const auto answer = QMessageBox::question(
            this, tr("A run is training"),
            tr("Run %1 is still training. Stop it and quit? It stays resumable from the Runs tab, from its "
               "latest checkpoint.")
                .arg(activeRunId_),
            QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel);
        if (answer != QMessageBox::Yes) {
            event->ignore();
            return;
        }
    }
    if (!saveSession()) statusBar()->showMessage(tr("Could not save the session to %1").arg(sessionPath()));
    // A running run is stopped cleanly; it stays resumable from the runs table.
    queue_.clear();
    Worker::cancelAndWait(worker_);
    QMainWindow::closeEvent(event);
}

}  // namespace segscope::ui
