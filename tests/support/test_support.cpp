#include "test_support.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sys/wait.h>

namespace segscope::test {

namespace {
std::string fromEnvironment(const char* name, const char* fallback) {
    const char* value = std::getenv(name);
    return value && *value ? value : fallback;
}
} // namespace

std::filesystem::path testData() { return fromEnvironment("SEGSCOPE_TEST_DATA", SEGSCOPE_DEFAULT_TEST_DATA); }
std::filesystem::path sourceDir() { return fromEnvironment("SEGSCOPE_SOURCE_DIR", SEGSCOPE_DEFAULT_SOURCE_DIR); }
std::string pythonExecutable() { return fromEnvironment("SEGSCOPE_PYTHON", SEGSCOPE_DEFAULT_PYTHON); }
std::string cliExecutable() { return fromEnvironment("SEGSCOPE_CLI", SEGSCOPE_DEFAULT_CLI); }

TempDir::TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "segscope";
    for (auto& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("segscope_" + name + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

CommandResult runCommand(const std::string& command) {
    CommandResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return result;
    std::array<char, 4096> buffer{};
    std::size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
    const int status = pclose(pipe);
    result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

CommandResult runCli(const std::string& arguments) {
    return runCommand("'" + cliExecutable() + "' " + arguments);
}

} // namespace segscope::test

#include <fstream>

namespace segscope::test {

cv::Mat expectedMatrix(const std::string& name, int rows, int cols, int channels) {
    const auto path = testData() / "formats" / "expected" / (name + ".bin");
    std::ifstream in(path, std::ios::binary);
    cv::Mat m(rows, cols, CV_8UC(channels));
    if (!in.read(reinterpret_cast<char*>(m.data), std::streamsize(m.total() * m.elemSize()))) {
        ADD_FAILURE() << "cannot read " << path;
        return {};
    }
    return m;
}

std::int64_t differingPixels(const cv::Mat& a, const cv::Mat& b) {
    if (a.size() != b.size() || a.type() != b.type()) return -1;
    std::int64_t n = 0;
    for (int y = 0; y < a.rows; ++y)
        for (int x = 0; x < a.cols * a.channels(); ++x) n += a.ptr<std::uint8_t>(y)[x] != b.ptr<std::uint8_t>(y)[x];
    return n;
}

int maxAbsDifference(const cv::Mat& a, const cv::Mat& b) {
    if (a.size() != b.size() || a.type() != b.type()) return 256;
    int worst = 0;
    for (int y = 0; y < a.rows; ++y)
        for (int x = 0; x < a.cols * a.channels(); ++x)
            worst = std::max(worst, std::abs(int(a.ptr<std::uint8_t>(y)[x]) - int(b.ptr<std::uint8_t>(y)[x])));
    return worst;
}

} // namespace segscope::test
