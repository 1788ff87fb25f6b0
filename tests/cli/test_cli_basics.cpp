#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

using segscope::test::runCli;
using segscope::test::runCommand;

TEST(CliBasics, VersionNamesLibrariesThreadsAndDevices) {
    const auto result = runCli("--version");
    ASSERT_EQ(result.exitCode, 0);
    EXPECT_NE(result.output.find("SegScope 0."), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("LibTorch 2."), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("OpenCV 4."), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("CUDA backend: "), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("CUDA devices:"), std::string::npos) << result.output;
}

TEST(CliBasics, ThreadsFlagSetsIntraOpThreads) {
    const auto result = runCli("--threads 1 --version");
    ASSERT_EQ(result.exitCode, 0);
    EXPECT_NE(result.output.find("CPU threads: 1 "), std::string::npos) << result.output;
}

TEST(CliBasics, CoreBoundaryCliLinksNoQt) {
    // segscope-cli links only segscope_core; if the core ever pulled in Qt it would show here.
    const auto result = runCommand("ldd '" + segscope::test::cliExecutable() + "'");
    ASSERT_EQ(result.exitCode, 0);
    EXPECT_NE(result.output.find("libsegscope_core"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("libtorch"), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("libQt"), std::string::npos) << result.output;
}

TEST(CliBasics, UnknownCommandAndOptionAreUsageErrors) {
    EXPECT_EQ(runCli("frobnicate 2>/dev/null").exitCode, 2);
    EXPECT_EQ(runCli("check-dataset --kind voc --root /tmp --bogus 1 2>/dev/null").exitCode, 2);
    EXPECT_EQ(runCli("check-dataset --kind nope --root /tmp 2>/dev/null").exitCode, 2);
}

TEST(CliBasics, CheckDatasetExitCodesAndJsonOnUnusableRoot) {
    const auto data = segscope::test::testData() / "formats" / "voc";
    EXPECT_EQ(runCli("check-dataset --kind voc --root '" + data.string() + "' --split good --json").exitCode, 0);
    const auto bad = runCli("check-dataset --kind voc --root '" + data.string() + "' --split bad --json");
    EXPECT_EQ(bad.exitCode, 1);
    EXPECT_EQ(nlohmann::json::parse(bad.output)["problems"].size(), 6u);
    const auto missing = runCli("check-dataset --kind voc --root /nonexistent/folder --json");
    EXPECT_EQ(missing.exitCode, 1);
    const auto report = nlohmann::json::parse(missing.output);
    EXPECT_FALSE(report["ok"].get<bool>());
    EXPECT_EQ(report["problems"][0]["message"], "dataset root /nonexistent/folder is not a folder");
}
