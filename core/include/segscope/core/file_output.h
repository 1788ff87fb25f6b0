#pragma once
// Writing files so that a full disk is an error with a message, never a half-written file or a
// std::terminate.
//
// AtomicFile writes into a temporary file next to its target, "<target>.<pid>.tmp" (two processes
// never share one), with write(2) checked on every call, optionally fsync(2)s it, and renames it
// into place only when every byte reached the file system. On any failure, and when it is
// destroyed without commit(), the temporary file is removed. A full file system (ENOSPC, EDQUOT,
// also when fsync or close reports it) throws DiskFullError, whose what() reads
//   "disk full: PATH, N MB needed (M MB free)"
// with N the size of the whole file being written (the writer keeps counting after the failure).
//
// Threads: everything here may be called from any thread; one AtomicFile is used by one thread
// at a time.
#include "segscope/core/error.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace segscope::core {

class DiskFullError : public Error {
public:
    DiskFullError(std::filesystem::path path, std::uint64_t neededBytes, std::optional<std::uint64_t> freeBytes);
    const std::filesystem::path& path() const noexcept { return path_; }
    std::uint64_t neededBytes() const noexcept { return neededBytes_; }
    std::optional<std::uint64_t> freeBytes() const noexcept { return freeBytes_; }

private:
    std::filesystem::path path_;
    std::uint64_t neededBytes_;
    std::optional<std::uint64_t> freeBytes_;
};

// "disk full: PATH, N MB needed (M MB free)" (without the free part when unknown).
std::string diskFullMessage(const std::filesystem::path& path, std::uint64_t neededBytes,
                            std::optional<std::uint64_t> freeBytes);
// "12.3 MB" (one decimal; three below 0.1 MB).
std::string formatMegabytes(std::uint64_t bytes);

// Bytes this process can still write on the file system holding `path` (or its nearest existing
// ancestor): statvfs's f_bavail, f_bfree for root (root may use the reserved blocks). nullopt
// when unknown.
std::optional<std::uint64_t> availableBytes(const std::filesystem::path& path);
// Throws DiskFullError(path, bytes, free) when the file system holding `path` reports fewer than
// `bytes` available; does nothing when it cannot tell.
void requireFreeSpace(const std::filesystem::path& path, std::uint64_t bytes);
// Rethrows the exception in flight as DiskFullError(path, neededBytes, free) when the file
// system holding `path` has fewer than `neededBytes` available, else rethrows it unchanged. For
// writers that report a failure without errno (a FileError from another module). Call only
// inside a catch block.
[[noreturn]] void rethrowAsDiskFullIfShort(const std::filesystem::path& path, std::uint64_t neededBytes);

// "<path>.<pid>.tmp": the name AtomicFile writes to.
std::filesystem::path temporaryPathFor(const std::filesystem::path& path);

class AtomicFile {
public:
    // Creates the temporary file (FileError when it cannot: folder missing, read-only, ...).
    // sync: fsync the file before the rename (checkpoints); without it, a crash may lose the
    // file's contents but never leaves a partial file under the target's name.
    explicit AtomicFile(std::filesystem::path target, bool sync = true);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    // Appends bytes. A failed write is remembered (and reported by commit()); later calls only
    // count their bytes, so commit() can say how large the file would have been. Never throws.
    void write(const void* data, std::size_t size);
    std::uint64_t size() const { return size_; }
    const std::filesystem::path& target() const { return target_; }

    // Flushes, fsyncs (when asked), closes and renames into place. Throws DiskFullError or
    // FileError (naming the target) after removing the temporary file. Call at most once.
    void commit();

private:
    void discard() noexcept;
    std::filesystem::path target_;
    std::filesystem::path temporary_;
    bool sync_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    int error_ = 0;  // errno of the first failed write
    bool done_ = false;
};

// The whole of `data` into `path` through an AtomicFile.
void writeFileAtomically(const std::filesystem::path& path, const void* data, std::size_t size, bool sync = true);

// Tests: when set, called before each write(2) of an AtomicFile with its target and the bytes
// written so far; a nonzero return fails that write with that errno (ENOSPC simulates a full
// disk). Process-wide; pass an empty function to clear.
void setWriteFaultHook(std::function<int(const std::filesystem::path& target, std::uint64_t offset)> hook);

}  // namespace segscope::core
