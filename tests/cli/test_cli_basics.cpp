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

TEST(CliBasics, HelpListsEveryCommandAndEachCommandItsOptions) {
    const auto help = runCli("--help");
    ASSERT_EQ(help.exitCode, 0);
    for (const char* command : {"demo-data", "check-dataset", "train", "eval", "export", "predict", "predict-split",
                                "score", "erf", "workspace", "runs", "models", "forward"})
        EXPECT_NE(help.output.find(std::string("\n  ") + command + " "), std::string::npos) << command;
    EXPECT_EQ(runCli("help").output, help.output);
    // No command at all: the overview, and the exit code of a usage error.
    const auto bare = runCli("");
    EXPECT_EQ(bare.exitCode, 2);
    EXPECT_EQ(bare.output, help.output);

    const auto train = runCli("train --help");
    ASSERT_EQ(train.exitCode, 0);
    for (const char* option : {"--config EXPERIMENT.json", "--resume RUN_ID", "--workspace DIR", "--set path=value",
                               "--name NAME", "--keep-checkpoints N=3", "--force"})
        EXPECT_NE(train.output.find(option), std::string::npos) << option << "\n" << train.output;
    const auto score = runCli("score --help");
    EXPECT_NE(score.output.find("--ignore INT=255"), std::string::npos) << score.output;
    EXPECT_NE(score.output.find("--classes K REQUIRED"), std::string::npos) << score.output;
}

TEST(CliBasics, UsageErrorsNameTheProblemAndShowTheCommandsHelp) {
    // A missing required option, a missing value, a stray argument: each exits 2 on stderr with
    // the command's help after the message.
    const auto missing = runCli("eval --workspace /nonexistent 2>&1");
    EXPECT_EQ(missing.exitCode, 2);
    EXPECT_EQ(missing.output.rfind("segscope-cli: --run is required\n\n", 0), 0u) << missing.output;
    EXPECT_NE(missing.output.find("Usage: segscope-cli eval [OPTIONS]"), std::string::npos) << missing.output;
    const auto noValue = runCli("runs --workspace 2>&1");
    EXPECT_EQ(noValue.exitCode, 2);
    EXPECT_EQ(noValue.output.rfind("segscope-cli: --workspace: 1 required DIR missing", 0), 0u) << noValue.output;
    const auto stray = runCli("runs stray --json 2>&1");
    EXPECT_EQ(stray.exitCode, 2);
    EXPECT_EQ(stray.output.rfind("segscope-cli: The following argument was not expected: stray", 0), 0u)
        << stray.output;
    const auto unknown = runCli("frobnicate 2>&1");
    EXPECT_EQ(unknown.output.rfind("segscope-cli: unknown command 'frobnicate'\n\n", 0), 0u) << unknown.output;
    // A global option goes before the command.
    EXPECT_EQ(runCli("runs --threads 1 2>/dev/null").exitCode, 2);
    // Checked in the command: the message names the option and the bound.
    const auto classes = runCli("score --pred a --gt b --classes x 2>&1");
    EXPECT_EQ(classes.exitCode, 2);
    EXPECT_EQ(classes.output.rfind("segscope-cli: --classes expects an integer, got 'x'\n\n", 0), 0u) << classes.output;
    const auto huge = runCli("score --pred a --gt b --classes 99999999999999999999 2>&1");
    EXPECT_EQ(huge.output.rfind("segscope-cli: --classes expects an integer, got '99999999999999999999'", 0), 0u)
        << huge.output;
}

TEST(CliBasics, TrainUsageErrorsCreateNoWorkspace) {
    segscope::test::TempDir dir;
    const auto none = runCli("train --workspace " + segscope::test::quoted(dir / "ws") + " 2>&1");
    EXPECT_EQ(none.exitCode, 2);
    EXPECT_EQ(none.output.rfind("segscope-cli: missing --config\n\n", 0), 0u) << none.output;
    const auto both =
        runCli("train --config x.json --resume r --workspace " + segscope::test::quoted(dir / "ws") + " 2>&1");
    EXPECT_EQ(both.exitCode, 2);
    EXPECT_EQ(both.output.rfind("segscope-cli: --resume and --config exclude each other", 0), 0u) << both.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "ws"));
}

TEST(CliBasics, ARepeatedOptionTakesTheLastValue) {
    // As before CLI11: scripts that append an option to override an earlier one keep working.
    const auto listed = runCli("models --classes 0 --classes 3 --json segformer-b0");
    ASSERT_EQ(listed.exitCode, 0) << listed.output;
    EXPECT_EQ(nlohmann::json::parse(listed.output)["classes"], 3);
}
