#include "segscope/ui/task_worker.h"

#include <QThread>
#include <QTimer>

#include <exception>

namespace segscope::ui {

TaskWorker::TaskWorker(Task task) : task_(std::move(task)) {}

TaskWorker* TaskWorker::start(Task task, QObject* owner) {
    auto* worker = new TaskWorker(std::move(task));
    auto* thread = new QThread(owner);
    worker->moveToThread(thread);
    QObject::connect(thread, &QThread::started, worker, &TaskWorker::run);
    // Connected first, so it runs on the GUI thread before the caller's own finished() slots:
    // by then the thread has ended, and the owner may be destroyed right away (a QThread
    // destroyed while running aborts the process).
    QObject::connect(worker, &TaskWorker::finished, thread, [thread] {
        thread->quit();
        thread->wait();
        thread->deleteLater();
    });
    QObject::connect(thread, &QThread::finished, worker, &QObject::deleteLater);
    // Started from the event loop, so the caller's connections exist before the task can finish.
    QTimer::singleShot(0, thread, [thread] { thread->start(); });
    return worker;
}

void TaskWorker::run() {
    QString error;
    try {
        task_(cancel_, [this](qint64 done, qint64 total) { Q_EMIT progress(done, total); });
        if (cancel_) error = QStringLiteral("cancelled");
    } catch (const TaskCancelled&) {
        error = QStringLiteral("cancelled");
    } catch (const std::exception& e) {
        error = QString::fromStdString(e.what());
        if (error.isEmpty()) error = QStringLiteral("failed");
    } catch (...) {
        error = QStringLiteral("failed with an unknown error");
    }
    Q_EMIT finished(error);
}

} // namespace segscope::ui
