#pragma once
// One trainer per run at a time, across processes: the run's lock.
//
// A RunLock holds flock(2) LOCK_EX on <run folder>/train.lock for as long as it lives. The kernel
// drops the lock when the process ends, however it ends (SIGKILL, a crash, a power cut), so a
// crash never leaves a run locked and no stale lock ever needs clearing by hand. The file records
// the holder ("pid host command") for messages only; it is never deleted (a second process could
// otherwise lock a fresh file of the same name while the first still holds the old one).
//
// The lock is on a file of its own, never on the workspace database (SQLite's POSIX locks must
// not be touched by anything but SQLite). flock locks belong to the open file: a second RunLock
// on the same folder fails inside one process too.
//
// Threads: a RunLock may be moved between threads; acquiring and releasing are thread-safe.
#include "segscope/core/error.h"

#include <filesystem>
#include <optional>
#include <string>

namespace segscope::core {

// What a lock file says about the process holding it.
struct RunLockHolder {
    long pid = 0;
    std::string host;
    std::string command;  // the holder's program name (processCommand) when it wrote the file
};

// Thrown when another process holds the run's lock. what(): "run folder FOLDER is in use by
// pid N on HOST (COMMAND): one process trains a run at a time".
class RunLockedError : public Error {
public:
    RunLockedError(std::filesystem::path folder, RunLockHolder holder);
    const RunLockHolder& holder() const noexcept { return holder_; }

private:
    RunLockHolder holder_;
};

class RunLock {
public:
    // Takes the lock of `runFolder` (created when missing) without waiting: RunLockedError when
    // another process (or another RunLock of this one) holds it, FileError when the lock file
    // cannot be created or locked for another reason.
    static RunLock acquire(const std::filesystem::path& runFolder);
    // The holder recorded in a locked folder's lock file; nullopt when the lock is free (then
    // nothing is locked by this call either) or the file is missing.
    static std::optional<RunLockHolder> holder(const std::filesystem::path& runFolder);
    // "<runFolder>/train.lock".
    static std::filesystem::path lockFile(const std::filesystem::path& runFolder);

    RunLock(RunLock&& other) noexcept;
    RunLock& operator=(RunLock&& other) noexcept;
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;
    ~RunLock();  // releases

    void release() noexcept;
    bool held() const { return fd_ >= 0; }

private:
    explicit RunLock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

// The program name of a live process (the file name of its argv[0], else /proc/PID/comm);
// empty when there is none.
std::string processCommand(long pid);

}  // namespace segscope::core
