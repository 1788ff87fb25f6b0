#pragma once
// segscope-cli's commands: each returns the process exit code (0 success, 1 failure) and throws
// UsageError for bad arguments.
#include "arguments.h"

namespace segscope::cli {

int commandDemoData(const Arguments& args);
int commandCheckDataset(const Arguments& args);
int commandScore(const Arguments& args);
int commandRuns(const Arguments& args);
int commandTrain(const Arguments& args);
int commandEval(const Arguments& args);
int commandExport(const Arguments& args);
int commandPredict(const Arguments& args);
int commandPredictSplit(const Arguments& args);
int commandErf(const Arguments& args);
int commandModels(const Arguments& args);
int commandForward(const Arguments& args);
int commandWorkspace(const Arguments& args);

} // namespace segscope::cli
