#include "segscope/core/file_output.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace segscope::core {
namespace fs = std::filesystem;

namespace {

std::mutex& hookMutex() {
    static std::mutex mutex;
    return mutex;
}
std::function<int(const fs::path&, std::uint64_t)>& hook() {
    static std::function<int(const fs::path&, std::uint64_t)> h;
    return h;
}

bool isFull(int error) {
    return error == ENOSPC || error == EDQUOT || error == EFBIG;
}

}  // namespace

std::string formatMegabytes(std::uint64_t bytes) {
    const double mb = double(bytes) / (1024.0 * 1024.0);
    char text[64];
    std::snprintf(text, sizeof text, mb >= 0.1 || bytes == 0 ? "%.1f MB" : "%.3f MB", mb);
    return text;
}

std::string diskFullMessage(const fs::path& path, std::uint64_t neededBytes, std::optional<std::uint64_t> freeBytes) {
    std::string message = "disk full: " + path.string() + ", " + formatMegabytes(neededBytes) + " needed";
    if (freeBytes) message += " (" + formatMegabytes(*freeBytes) + " free)";
    return message;
}

DiskFullError::DiskFullError(fs::path path, std::uint64_t neededBytes, std::optional<std::uint64_t> freeBytes)
    : Error(diskFullMessage(path, neededBytes, freeBytes)),
      path_(std::move(path)),
      neededBytes_(neededBytes),
      freeBytes_(freeBytes) {}

std::optional<std::uint64_t> availableBytes(const fs::path& path) {
    std::error_code ec;
    fs::path probe = path.empty() ? fs::current_path(ec) : fs::absolute(path, ec);
    while (!probe.empty() && !fs::exists(probe, ec)) {
        if (probe == probe.parent_path()) break;
        probe = probe.parent_path();
    }
    struct statvfs info {};
    if (::statvfs(probe.c_str(), &info) != 0) return std::nullopt;
    const std::uint64_t blocks = ::geteuid() == 0 ? info.f_bfree : info.f_bavail;
    return blocks * std::uint64_t(info.f_frsize ? info.f_frsize : info.f_bsize);
}

void requireFreeSpace(const fs::path& path, std::uint64_t bytes) {
    const auto available = availableBytes(path);
    if (available && *available < bytes) throw DiskFullError(path, bytes, available);
}

void rethrowAsDiskFullIfShort(const fs::path& path, std::uint64_t neededBytes) {
    const auto available = availableBytes(path);
    if (available && *available < neededBytes) throw DiskFullError(path, neededBytes, available);
    throw;
}

fs::path temporaryPathFor(const fs::path& path) {
    return path.string() + "." + std::to_string(::getpid()) + ".tmp";
}

AtomicFile::AtomicFile(fs::path target, bool sync)
    : target_(std::move(target)), temporary_(temporaryPathFor(target_)), sync_(sync) {
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        const int error = errno;
        if (isFull(error)) throw DiskFullError(target_, 0, availableBytes(target_.parent_path()));
        throw FileError(target_.string(), std::string("cannot write (") + std::strerror(error) + ")");
    }
}

AtomicFile::~AtomicFile() {
    if (!done_) discard();
}

void AtomicFile::discard() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(temporary_.c_str());
    done_ = true;
}

void AtomicFile::write(const void* data, std::size_t size) {
    if (error_ || fd_ < 0) {
        size_ += size;
        return;
    }
    const char* bytes = static_cast<const char*>(data);
    std::size_t left = size;
    while (left > 0) {
        {
            std::lock_guard<std::mutex> lock(hookMutex());
            if (hook()) {
                if (const int injected = hook()(target_, size_)) {
                    error_ = injected;
                    break;
                }
            }
        }
        const ssize_t n = ::write(fd_, bytes, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            error_ = errno;
            break;
        }
        if (n == 0) {
            error_ = ENOSPC;
            break;
        }
        bytes += n;
        left -= std::size_t(n);
        size_ += std::uint64_t(n);
    }
    size_ += left;  // not written: counted so commit() can say how much was needed
}

void AtomicFile::commit() {
    if (done_) throw Error("AtomicFile::commit called twice for " + target_.string());
    if (!error_ && sync_ && ::fsync(fd_) != 0) error_ = errno;
    if (!error_) {
        const int rc = ::close(fd_);
        fd_ = -1;
        if (rc != 0) error_ = errno;
    }
    if (error_) {
        const int error = error_;
        discard();  // the space the partial file took is free again before measuring
        if (isFull(error)) throw DiskFullError(target_, size_, availableBytes(target_.parent_path()));
        throw FileError(target_.string(), std::string("cannot write (") + std::strerror(error) + ")");
    }
    std::error_code ec;
    fs::rename(temporary_, target_, ec);
    if (ec) {
        discard();
        throw FileError(target_.string(), "cannot replace the file: " + ec.message());
    }
    done_ = true;
}

void writeFileAtomically(const fs::path& path, const void* data, std::size_t size, bool sync) {
    AtomicFile file(path, sync);
    file.write(data, size);
    file.commit();
}

void setWriteFaultHook(std::function<int(const fs::path&, std::uint64_t)> h) {
    std::lock_guard<std::mutex> lock(hookMutex());
    hook() = std::move(h);
}

}  // namespace segscope::core
