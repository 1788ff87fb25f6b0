#include "test_support.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sys/wait.h>

namespace segscope::test {

std::filesystem::path testData() {
    const char* dir = std::getenv("SEGSCOPE_TEST_DATA");
    if (!dir) {
        ADD_FAILURE() << "SEGSCOPE_TEST_DATA is not set; run the tests through ctest";
        return {};
    }
    return dir;
}

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
    const char* cli = std::getenv("SEGSCOPE_CLI");
    if (!cli) {
        ADD_FAILURE() << "SEGSCOPE_CLI is not set; run the tests through ctest";
        return {};
    }
    return runCommand(std::string("'") + cli + "' " + arguments);
}

} // namespace segscope::test
