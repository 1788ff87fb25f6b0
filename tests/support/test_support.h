#pragma once
// Helpers shared by the test suites: locations from the environment ctest sets, temp folders,
// and running segscope-cli.
#include <filesystem>
#include <string>

namespace segscope::test {

// Fixtures written by the Python scripts ($SEGSCOPE_TEST_DATA, else the build's test-data folder).
std::filesystem::path testData();
// The source tree ($SEGSCOPE_SOURCE_DIR, else the configured one): presets, scripts.
std::filesystem::path sourceDir();
// Python of the reference environment ($SEGSCOPE_PYTHON, else the configured one).
std::string pythonExecutable();
// segscope-cli ($SEGSCOPE_CLI, else the built one).
std::string cliExecutable();
// A fresh, empty folder under the system temp dir, unique per test; removed by ~TempDir.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

struct CommandResult {
    int exitCode = -1;
    std::string output;  // stdout only
};
// Runs segscope-cli with the given argument string (shell-quoted by the caller).
CommandResult runCli(const std::string& arguments);
// Runs a shell command, capturing stdout.
CommandResult runCommand(const std::string& command);

} // namespace segscope::test

#include <cstdint>
#include <vector>
#include <opencv2/core.hpp>

namespace segscope::test {
// testData()/formats/expected/NAME.bin as an 8-bit matrix of the given size (rows, cols, channels).
cv::Mat expectedMatrix(const std::string& name, int rows, int cols, int channels = 1);
// Number of pixels where two same-sized 8-bit matrices differ.
std::int64_t differingPixels(const cv::Mat& a, const cv::Mat& b);
// Largest absolute difference between two same-sized 8-bit matrices.
int maxAbsDifference(const cv::Mat& a, const cv::Mat& b);
} // namespace segscope::test
