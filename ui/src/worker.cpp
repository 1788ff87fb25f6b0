#include "segscope/ui/worker.h"

#include <QThread>
#include <QTimer>

#include <exception>

namespace segscope::ui {

Worker::~Worker() = default;

void Worker::launch(Worker* worker, QObject* owner) {
    auto* thread = new QThread(owner);
    worker->moveToThread(thread);
    QObject::connect(thread, &QThread::started, worker, &Worker::run);
    // Connected first, so it runs on the GUI thread before the caller's own finished() slots:
    // by then the thread has ended, and the owner may be destroyed right away (a QThread
    // destroyed while running aborts the process).
    QObject::connect(worker, &Worker::finished, thread, [thread] {
        thread->quit();
        thread->wait();
        thread->deleteLater();
    });
    QObject::connect(thread, &QThread::finished, worker, &QObject::deleteLater);
    // Started from the event loop, so the caller's connections exist before the work can finish.
    QTimer::singleShot(0, thread, [thread] { thread->start(); });
}

void Worker::cancelAndWait(Worker* worker) {
    if (!worker) return;
    worker->cancel();
    if (QThread* thread = worker->thread(); thread && thread != QThread::currentThread()) {
        thread->quit();
        thread->wait();
    }
}

void Worker::run() {
    QString error;
    try {
        work();
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

void TaskWorker::work() {
    task_(cancelFlag(), [this](qint64 done, qint64 total) { Q_EMIT progress(done, total); });
}

}  // namespace segscope::ui
