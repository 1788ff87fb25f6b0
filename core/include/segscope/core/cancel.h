#pragma once
// The one way to stop long core work early: a CancelToken, passed by value into every core API
// that can be cancelled (evaluate, predictSplit, computeErf, checkDataset, the trainer's parts).
//
// A default token is never cancelled. A token made from a flag reads it (the flag must outlive
// every copy of the token); one made from a poll calls it. cancelled() may block when the poll
// does (the trainer's evaluation waits there while paused). Callee side: poll between steps
// (batches, images, stages), never inside a step, on the thread that runs the work.
#include <atomic>
#include <functional>
#include <utility>

namespace segscope::core {

class CancelToken {
public:
    CancelToken() = default;
    // Cancelled once *flag is true; nullptr: never. Implicit, so `options.cancel = &flag` reads
    // as the intent it states.
    CancelToken(const std::atomic<bool>* flag) : flag_(flag) {}  // NOLINT(google-explicit-constructor)
    // Cancelled when poll() returns true.
    explicit CancelToken(std::function<bool()> poll) : poll_(std::move(poll)) {}

    bool cancelled() const {
        if (flag_ && flag_->load(std::memory_order_acquire)) return true;
        return poll_ && poll_();
    }

private:
    const std::atomic<bool>* flag_ = nullptr;
    std::function<bool()> poll_;
};

}  // namespace segscope::core
