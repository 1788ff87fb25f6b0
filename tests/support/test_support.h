#pragma once
// Helpers shared by the test suites: locations from the environment ctest sets, temp folders,
// and running segscope-cli.
#include <filesystem>
#include <string>

namespace segscope::test {

// $SEGSCOPE_TEST_DATA (fixtures written by the Python scripts); fails the test when unset.
std::filesystem::path testData();
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
// Runs segscope-cli ($SEGSCOPE_CLI) with the given argument string (shell-quoted by the caller).
CommandResult runCli(const std::string& arguments);
// Runs a shell command, capturing stdout.
CommandResult runCommand(const std::string& command);

} // namespace segscope::test
