#include "segscope/core/runs/run_lock.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace segscope::core {
namespace fs = std::filesystem;

namespace {

std::string hostName() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
    return name;
}

std::optional<RunLockHolder> parseHolder(const std::string& text) {
    std::istringstream in(text);
    RunLockHolder holder;
    if (!(in >> holder.pid)) return std::nullopt;
    in >> holder.host;
    std::getline(in >> std::ws, holder.command);
    return holder;
}

std::string readAll(int fd) {
    std::string text;
    char buffer[512];
    for (off_t offset = 0;;) {
        const ssize_t n = ::pread(fd, buffer, sizeof buffer, offset);
        if (n <= 0) break;
        text.append(buffer, std::size_t(n));
        offset += n;
        if (text.size() > 4096) break;
    }
    return text;
}

std::string describe(const RunLockHolder& holder) {
    std::string text = "pid " + std::to_string(holder.pid);
    if (!holder.host.empty()) text += " on " + holder.host;
    if (!holder.command.empty()) text += " (" + holder.command + ")";
    return text;
}

}  // namespace

std::string processCommand(long pid) {
    if (pid <= 0) return {};
    // argv[0]'s file name: /proc/PID/comm says "exe" for a program that re-executed itself
    // through /proc/self/exe (segscope-cli does, for its OpenMP wait policy).
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string first;
    std::getline(cmdline, first, '\0');
    if (!first.empty()) return fs::path(first).filename().string();
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string command;
    std::getline(comm, command);
    return command;
}

RunLockedError::RunLockedError(fs::path folder, RunLockHolder holder)
    : Error("run folder " + folder.string() + " is in use by " + describe(holder) +
            ": one process trains a run at a time"),
      holder_(std::move(holder)) {}

fs::path RunLock::lockFile(const fs::path& runFolder) {
    return runFolder / "train.lock";
}

RunLock RunLock::acquire(const fs::path& runFolder) {
    std::error_code ec;
    fs::create_directories(runFolder, ec);
    const fs::path path = lockFile(runFolder);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw FileError(path.string(), std::string("cannot open the run's lock file: ") + std::strerror(errno));
    int rc = ::flock(fd, LOCK_EX | LOCK_NB);
    // holder() takes a shared lock for an instant; a few retries keep it from refusing us.
    for (int attempt = 0; rc != 0 && errno == EWOULDBLOCK && attempt < 5; ++attempt) {
        ::usleep(20000);
        rc = ::flock(fd, LOCK_EX | LOCK_NB);
    }
    if (rc != 0) {
        const int error = errno;
        RunLockHolder holder = parseHolder(readAll(fd)).value_or(RunLockHolder{});
        ::close(fd);
        if (error == EWOULDBLOCK) throw RunLockedError(runFolder, holder);
        throw FileError(path.string(), std::string("cannot lock: ") + std::strerror(error));
    }
    const std::string text =
        std::to_string(::getpid()) + " " + hostName() + " " + processCommand(long(::getpid())) + "\n";
    // The holder line is informative only: a failure to write it does not lose the lock.
    if (::ftruncate(fd, 0) == 0) {
        const ssize_t written = ::pwrite(fd, text.data(), text.size(), 0);
        (void)written;
    }
    return RunLock(fd);
}

std::optional<RunLockHolder> RunLock::holder(const fs::path& runFolder) {
    const fs::path path = lockFile(runFolder);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::optional<RunLockHolder> result;
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
        ::flock(fd, LOCK_UN);  // free: nobody holds it
    } else {
        result = parseHolder(readAll(fd)).value_or(RunLockHolder{});
    }
    ::close(fd);
    return result;
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(other.fd_) {
    other.fd_ = -1;
}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
    if (this != &other) {
        release();
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

RunLock::~RunLock() {
    release();
}

void RunLock::release() noexcept {
    if (fd_ < 0) return;
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    fd_ = -1;
}

}  // namespace segscope::core
