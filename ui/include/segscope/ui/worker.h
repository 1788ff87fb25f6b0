#pragma once
// The one way ui/ runs long work off the GUI thread: a worker object moved to a QThread of its
// own (STYLE.md 4-6).
//
//  - Worker::start() moves a worker to a new QThread (a child of its owner) and starts it from the
//    event loop, so the caller connects to the worker's signals before any can fire.
//  - run() (invoked by the thread's started() signal) calls work() on the worker's thread and
//    catches everything it throws: no exception escapes the slot. It ends by emitting
//    finished(error): empty on success, "cancelled" when the work was cancelled (cancel() was
//    called, or work() threw TaskCancelled), else the error's text.
//  - Only values leave the worker, through queued signals; the worker never touches a widget.
//  - cancel() is thread-safe; work() polls cancelFlag() between its steps.
//  - When the caller's finished() slots run, the thread has already ended and the owner may be
//    destroyed; the thread and the worker are deleted afterwards. An owner destroyed while its
//    worker runs calls cancelAndWait() in its destructor.
#include <QObject>
#include <QString>

#include <atomic>
#include <functional>

namespace segscope::ui {

// Thrown by work() to end as cancelled.
struct TaskCancelled {};

class Worker : public QObject {
    Q_OBJECT
public:
    ~Worker() override;

    // Thread-safe. Subclasses that hold a core object with its own cancel (the trainer) extend it.
    virtual void cancel() { cancel_ = true; }
    bool cancelRequested() const { return cancel_; }

    // Moves `worker` (new, unparented) to a new thread, child of `owner`; see the header comment.
    template <class W>
    static W* start(W* worker, QObject* owner) {
        launch(worker, owner);
        return worker;
    }
    // For an owner's destructor, on the GUI thread: cancels the worker, ends its thread and waits
    // for it. Does nothing for nullptr.
    static void cancelAndWait(Worker* worker);

public Q_SLOTS:
    void run();

Q_SIGNALS:
    void progress(qint64 done, qint64 total);
    void finished(const QString& error);

protected:
    // The work, on the worker's thread. May throw; see run().
    virtual void work() = 0;
    const std::atomic<bool>& cancelFlag() const { return cancel_; }

private:
    static void launch(Worker* worker, QObject* owner);
    std::atomic<bool> cancel_{false};
};

// A worker for a function: prediction of a split, one image through a model, ERF, thumbnails,
// a dataset check. The task reports progress through a callback and polls the cancel flag; its
// results go into state it shares with the GUI (held by shared_ptr in the lambdas), which the GUI
// reads only in its finished() slots (the queued signal orders the writes before the reads).
class TaskWorker : public Worker {
    Q_OBJECT
public:
    using Progress = std::function<void(qint64 done, qint64 total)>;
    using Task = std::function<void(const std::atomic<bool>& cancel, const Progress& progress)>;

    explicit TaskWorker(Task task) : task_(std::move(task)) {}
    static TaskWorker* start(Task task, QObject* owner) {
        return Worker::start(new TaskWorker(std::move(task)), owner);
    }

protected:
    void work() override;

private:
    Task task_;
};

}  // namespace segscope::ui
