// segscope-cli: the headless face of SegScope. Links segscope_core only.
#include "commands.h"

#include "segscope/core/runtime.h"
#include "segscope/core/safe_text.h"

#include <iostream>
#include <new>
#include <string>
#include <vector>

namespace core = segscope::core;
using namespace segscope::cli;

namespace {

const char* kUsage = R"(usage: segscope-cli [--threads N] COMMAND [options]

commands:
  --version                       versions of SegScope, LibTorch and OpenCV, threads, CUDA devices
  demo-data --out DIR [--images N] [--size W H] [--seed S]
                                  write the synthetic demo dataset (VOC layout) into an empty
                                  folder or one demo-data wrote (N <= 100000, W, H in 32..4096)
  check-dataset --kind voc|pets|folder --root DIR [--split NAME]
                [--pets-mode trimap|binary|binary-border-fg] [--threads N] [--json]
                                  decode every file of a split and report counts and problems;
                                  exits 0 when the split is trainable
  train --config FILE [--workspace DIR] [--set path=value ...] [--name NAME]
  train --resume RUN_ID [--workspace DIR] [--force]
                                  train an experiment (or continue an interrupted run), recording
                                  it in the workspace; prints the metrics table at the end. One
                                  process trains a run at a time (RUN/train.lock); --force resumes
                                  a run recorded as running whose process no longer trains it
  eval --run ID [--workspace DIR] [--split NAME] [--checkpoint latest|best|FILE]
       [--device NAME] [--json]
                                  score a run's checkpoint on a split (default: its val split)
  export --run ID [--workspace DIR] [--checkpoint latest|best|FILE] --out FILE.safetensors
         [--naming 4|5] [--hf-folder DIR] [--force]
                                  write a checkpoint's weights with reference names and metadata
                                  (model, classes, class names). SegFormer: --naming 4 (default)
                                  writes transformers 4.x names, which transformers 4.x
                                  load_state_dict and from_pretrained of 4.x and 5.x load; --naming 5
                                  writes the names transformers 5.x state_dict()/load_state_dict use.
                                  --hf-folder DIR writes config.json + model.safetensors, which
                                  SegformerForSemanticSegmentation.from_pretrained(DIR) loads under
                                  transformers 4.56 and 5.x. Never writes over the run's files or
                                  the workspace's; an existing file needs --force
  predict --run ID [--workspace DIR] [--checkpoint latest|best|FILE] [--device NAME]
          --image FILE --out OVERLAY.png [--mask MASK.png] [--alpha 0.5] [--force]
                                  segment one image: an overlay in class colours and, with
                                  --mask, a palette PNG of class indices at the image's size
  predict-split --run ID [--workspace DIR] [--checkpoint latest|best|FILE] [--split NAME]
                [--device NAME] [--batch-size B] [--force] [--json]
                                  predict every image of a split (default: the run's val split)
                                  into the run folder's prediction cache, or reuse it when still
                                  valid; prints the metrics and the cache folder
  score --pred DIR --gt DIR --classes K [--ignore 255] [--names classes.txt] [--json]
                                  score index-PNG predictions against index-PNG ground truth
                                  (matched by file name): aAcc, mIoU, mAcc, mDice, per class
  erf (--run ID [--workspace DIR] [--checkpoint best|latest|FILE]
       | --model ID --classes K [--weights FILE [--allow-partial]] [--seed S]
         [--config EXPERIMENT.json])
      [--images N | --input IN.safetensors] [--split NAME] [--size H W] [--batch-size B]
      [--stages stage1,...] [--objective relu-sum|sum] [--reduction abs-sum|relu-sum]
      [--device auto|cpu|cuda:N] --out DIR [--json]
                                  effective receptive field of every stage (mean input gradient
                                  of the centre activation): erf.safetensors, PNGs, erf.json
  workspace check|repair [--workspace DIR] [--rebuild] [--json]
                                  check the run database (.segscope/segscope.db), or rebuild a
                                  corrupt, foreign or missing one from the run folders' journals
                                  (the unusable file is moved aside, never deleted)
  runs [--workspace DIR] [--json] the runs of a workspace (default $SEGSCOPE_WORKSPACE, else
                                  $XDG_DATA_HOME/SegScope or ~/.local/share/SegScope)
  models [--classes K] [--json] [ID ...]
                                  the model zoo (or the given ids): id, family, exact parameter
                                  count at K classes (default 21), stage names
  forward --model ID --classes K --input IN.safetensors --output OUT.safetensors
          [--weights FILE] [--allow-partial] [--force]
                                  eval-mode forward of tensor `input` (B,3,H,W float32), writing
                                  `logits`; --weights takes .safetensors or torch.save .pth/.bin,
                                  mapped by name (HF SegFormer in transformers 4.x or 5.x names,
                                  detected); it must fit the model exactly (the load report names
                                  missing/unexpected keys) unless --allow-partial
)";

struct Command {
    const char* name;
    int (*run)(const std::vector<std::string>& args);
};

// One line per command; each lives in its own command_*.cpp.
const Command kCommands[] = {
    {"demo-data", [](const std::vector<std::string>& a) { return commandDemoData(Arguments(a, {}, {"size"})); }},
    {"check-dataset", [](const std::vector<std::string>& a) { return commandCheckDataset(Arguments(a, {"json"})); }},
    {"score", [](const std::vector<std::string>& a) { return commandScore(Arguments(a, {"json"})); }},
    {"runs", [](const std::vector<std::string>& a) { return commandRuns(Arguments(a, {"json"})); }},
    {"train", [](const std::vector<std::string>& a) { return commandTrain(Arguments(a, {"force"}, {})); }},
    {"eval", [](const std::vector<std::string>& a) { return commandEval(Arguments(a, {"json"})); }},
    {"export", [](const std::vector<std::string>& a) { return commandExport(Arguments(a, {"force"})); }},
    {"predict", [](const std::vector<std::string>& a) { return commandPredict(Arguments(a, {"force"})); }},
    {"predict-split",
     [](const std::vector<std::string>& a) { return commandPredictSplit(Arguments(a, {"json", "force"})); }},
    {"erf", [](const std::vector<std::string>& a) { return commandErf(Arguments(a, {"json", "allow-partial"}, {"size"})); }},
    {"models", [](const std::vector<std::string>& a) { return commandModels(Arguments(a, {"json"})); }},
    {"forward", [](const std::vector<std::string>& a) { return commandForward(Arguments(a, {"strict", "allow-partial", "force"})); }},
    {"workspace",
     [](const std::vector<std::string>& a) { return commandWorkspace(Arguments(a, {"json", "rebuild"})); }},
};

} // namespace

int main(int argc, char** argv) {
    // Only the commands that run models pay for the re-exec.
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "train" || a == "eval" || a == "erf" || a == "predict" || a == "predict-split" || a == "forward") {
            core::preferPassiveOpenMpWait(argv);
            break;
        }
    }
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        // Global options come before the command.
        int threads = 0;
        while (!args.empty() && args[0] == "--threads") {
            if (args.size() < 2) throw UsageError("--threads needs a value");
            threads = Arguments::threadCount("threads", args[1], core::maxIntraOpThreads());
            args.erase(args.begin(), args.begin() + 2);
        }
        core::setIntraOpThreads(threads);
        if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
            std::cout << kUsage;
            return args.empty() ? 2 : 0;
        }
        const std::string command = args[0];
        const std::vector<std::string> rest(args.begin() + 1, args.end());
        if (command == "--version" || command == "version") {
            std::cout << core::formatRuntimeInfo(core::runtimeInfo());
            return 0;
        }
        for (const Command& c : kCommands)
            if (command == c.name) return c.run(rest);
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& e) {
        std::cerr << "segscope-cli: " << e.what() << "\n\n" << kUsage;
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
