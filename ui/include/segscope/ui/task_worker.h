#pragma once
// A piece of long work (prediction of a split, one image through a model, thumbnails) run by a
// worker object on its own QThread. The task reports progress through a callback and polls a
// cancel flag; its results go into state it shares with the GUI, which reads them only after
// finished() (the queued signal orders the writes before the reads). No exception escapes run().
#include <QObject>
#include <QString>

#include <atomic>
#include <functional>

class QThread;

namespace segscope::ui {

class TaskWorker : public QObject {
    Q_OBJECT
public:
    using Progress = std::function<void(qint64 done, qint64 total)>;
    using Task = std::function<void(const std::atomic<bool>& cancel, const Progress& progress)>;

    explicit TaskWorker(Task task);
    void cancel() { cancel_ = true; }

    // Moves a new worker for `task` to a new thread (child of `owner`), started when control
    // returns to the event loop: connect to the returned worker's signals before that. When the
    // caller's finished() slots run, the thread has already ended; both are deleted afterwards.
    static TaskWorker* start(Task task, QObject* owner);

public Q_SLOTS:
    void run();

Q_SIGNALS:
    void progress(qint64 done, qint64 total);
    // Empty on success, "cancelled" when the task saw the cancel flag and threw
    // TaskCancelled, else the error's text.
    void finished(const QString& error);

private:
    Task task_;
    std::atomic<bool> cancel_{false};
};

// Thrown by a task to end as cancelled.
struct TaskCancelled {};

} // namespace segscope::ui
