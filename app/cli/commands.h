#pragma once
// segscope-cli's commands. Each command_*.cpp declares its subcommands with CLI11: the option
// names, their defaults and their help text are written once, next to the code that reads them.
#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace segscope::cli {

// Bad arguments found after parsing (a value out of range, options that exclude each other):
// main() prints "segscope-cli: MESSAGE" and the command's help, and exits 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A subcommand and what runs it once CLI11 has parsed it. `run` returns the exit code (0
// success, 1 failure) and throws UsageError for bad arguments, core errors for failures.
// `runsModels`: the command runs LibTorch models, so main() asks OpenMP to wait passively
// (core::preferPassiveOpenMpWait) before anything else happens.
struct Command {
    CLI::App* app = nullptr;
    std::function<int()> run;
    bool runsModels = false;
};

Command addDemoDataCommand(CLI::App& cli);
Command addCheckDatasetCommand(CLI::App& cli);
Command addTrainCommand(CLI::App& cli);
Command addEvalCommand(CLI::App& cli);
Command addExportCommand(CLI::App& cli);
Command addPredictCommand(CLI::App& cli);
Command addPredictSplitCommand(CLI::App& cli);
Command addScoreCommand(CLI::App& cli);
Command addErfCommand(CLI::App& cli);
Command addWorkspaceCommand(CLI::App& cli);
Command addRunsCommand(CLI::App& cli);
Command addModelsCommand(CLI::App& cli);
Command addForwardCommand(CLI::App& cli);

// Integer options are parsed as text and converted here rather than by CLI11, whose conversion
// saturates out-of-range numbers (99999999999999999999 would become a valid-looking bound) and
// whose messages do not name the accepted range.
//
// Declares `name` (e.g. "--images") as an INT option kept as text; `fallback`, when given, is
// shown as the default in the help.
CLI::Option* addIntegerOption(CLI::App& app, const std::string& name, std::optional<std::string>& text,
                              const std::string& help, std::optional<long> fallback = std::nullopt);
// The value of an integer option, `fallback` when absent; anything but a whole integer is a
// UsageError "--NAME expects an integer, got 'TEXT'" (`name` without the dashes).
long integerValue(const std::string& name, const std::optional<std::string>& text, long fallback);
// A thread count: 0 (all cores) up to `most`; anything else is a UsageError that names the
// option (without dashes) and the bound.
int threadCount(const std::string& option, const std::string& text, int most);

}  // namespace segscope::cli
