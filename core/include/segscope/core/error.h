#pragma once
// Error types thrown inside the core. They never cross into ui/ as exceptions: workers catch
// them and pass what() on as text.
#include <stdexcept>
#include <string>

namespace segscope::core {

// Any failure the core reports with a message meant for a person.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A specific input file could not be used. what() reads "PATH: REASON".
class FileError : public Error {
public:
    FileError(std::string path, std::string reason)
        : Error(path + ": " + reason), path_(std::move(path)), reason_(std::move(reason)) {}
    const std::string& path() const noexcept { return path_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string path_;
    std::string reason_;
};

}  // namespace segscope::core
