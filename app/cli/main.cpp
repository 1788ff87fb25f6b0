// segscope-cli: the headless face of SegScope. Links segscope_core only.
#include "commands.h"

#include "segscope/core/runtime.h"
#include "segscope/core/safe_text.h"

#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <vector>

namespace core = segscope::core;
using namespace segscope::cli;

namespace {

// `text` with its paragraphs wrapped at `width` columns (CLI11 prints footers as they are).
std::string wrapped(const std::string& text, std::size_t width = 100) {
    std::string out, line, word;
    const auto flushWord = [&] {
        if (word.empty()) return;
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            out += line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
        word.clear();
    };
    for (const char c : text + "\n") {
        if (c == ' ' || c == '\n')
            flushWord();
        else
            word += c;
        if (c == '\n') {
            out += line + "\n";
            line.clear();
        }
    }
    out.pop_back();  // the newline added above
    return out;
}

// The help of `app` itself (CLI::App::help() shows the selected subcommand's instead).
std::string ownHelp(const CLI::App& app) {
    return app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli(
        "SegScope's headless commands: datasets, training, evaluation, weights, predictions and "
        "effective receptive fields, recorded in a workspace.",
        "segscope-cli");
    cli.get_formatter()->column_width(34);
    // A repeated option counts once, the last one wins (--set and positionals take them all).
    cli.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    std::optional<std::string> threads;
    cli.add_option("--threads", threads, "intra-op threads (default 0: all cores); goes before the command")
        ->type_name("N");
    bool version = false;
    cli.add_flag("--version", version, "versions of SegScope, LibTorch and OpenCV, threads, CUDA devices");
    cli.add_subcommand("version", "same as --version")->group("");
    CLI::App* help = cli.add_subcommand("help", "same as --help")->group("");

    // In the order the help lists them.
    const std::vector<Command> commands = {
        addDemoDataCommand(cli), addCheckDatasetCommand(cli), addTrainCommand(cli),        addEvalCommand(cli),
        addExportCommand(cli),   addPredictCommand(cli),      addPredictSplitCommand(cli), addScoreCommand(cli),
        addErfCommand(cli),      addWorkspaceCommand(cli),    addRunsCommand(cli),         addModelsCommand(cli),
        addForwardCommand(cli),
    };
    for (const Command& c : commands) c.app->footer(wrapped(c.app->get_footer()));
    // Set after the subcommands exist, which would inherit them: an unknown first word is
    // reported as an unknown command, not by CLI11's "not expected" message.
    cli.require_subcommand(0, 1);
    cli.allow_extras();
    cli.footer(
        "Run `segscope-cli COMMAND --help` for the options of one command. Usage errors exit 2.\n"
        "The workspace defaults to $SEGSCOPE_WORKSPACE, else $XDG_DATA_HOME/SegScope or "
        "~/.local/share/SegScope.");

    // Only the commands that run models pay for the re-exec.
    bool runsModels = false;
    for (int i = 1; i < argc && !runsModels; ++i)
        for (const Command& c : commands) runsModels = runsModels || (c.runsModels && argv[i] == c.app->get_name());
    if (runsModels) core::preferPassiveOpenMpWait(argv);

    try {
        try {
            cli.parse(argc, argv);
        } catch (const CLI::CallForHelp&) {
            std::cout << cli.help();
            return 0;
        } catch (const CLI::CallForAllHelp&) {
            std::cout << cli.help("", CLI::AppFormatMode::All);
            return 0;
        } catch (const CLI::ParseError& e) {
            throw UsageError(e.what());
        }
        core::setIntraOpThreads(threads ? threadCount("threads", *threads, core::maxIntraOpThreads()) : 0);
        if (version || cli.got_subcommand("version")) {
            std::cout << core::formatRuntimeInfo(core::runtimeInfo());
            return 0;
        }
        if (cli.got_subcommand(help)) {
            std::cout << ownHelp(cli);
            return 0;
        }
        for (const Command& c : commands)
            if (c.app->parsed()) return c.run();
        if (!cli.remaining().empty()) throw UsageError("unknown command '" + cli.remaining().front() + "'");
        std::cout << ownHelp(cli);
        return 2;
    } catch (const UsageError& e) {
        // The selected command's help, or the overview.
        std::cerr << "segscope-cli: " << e.what() << "\n\n" << cli.help();
        return 2;
    } catch (const std::bad_alloc&) {
        std::cerr << "segscope-cli: error: out of memory\n";
        return 1;
    } catch (const std::exception& e) {
        // LibTorch's messages carry a C++ backtrace (also when a core error quotes one): cut it.
        std::cerr << "segscope-cli: error: " << core::withoutBacktrace(e.what()) << "\n";
        return 1;
    } catch (...) {
        std::cerr << "segscope-cli: error: unexpected failure\n";
        return 1;
    }
}
