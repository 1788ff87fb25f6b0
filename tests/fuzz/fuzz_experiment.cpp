// The experiment parser (experiment.cpp): loadExperiment on a file (JSON, then parseExperiment's
// validation), or, for inputs starting with "--set ", applyOverride of the rest on the demo
// preset. An experiment that is accepted must come back equal through toJson/parseExperiment and
// through saveExperiment/loadExperiment.
#include "fuzz_support.h"

#include "segscope/core/experiment.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>

using namespace segscope;
namespace fs = std::filesystem;

namespace {

void checkRoundTrip(const core::Experiment& experiment) {
    try {
        if (core::parseExperiment(core::toJson(experiment)) != experiment)
            fuzz::finding("parseExperiment(toJson(e)) != e");
        const fs::path saved = fuzz::scratchFile("saved.json");
        core::saveExperiment(saved, experiment);
        if (core::loadExperiment(saved) != experiment) fuzz::finding("loadExperiment(saveExperiment(e)) != e");
    } catch (const std::exception& e) {
        fuzz::finding(std::string("an accepted experiment does not round-trip: ") + e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::initialise();
    // The base of "--set" inputs (scripts/fuzz.sh runs from the checkout's root).
    static const core::Experiment demo = [] {
        const char* env = std::getenv("SEGSCOPE_FUZZ_BASE_EXPERIMENT");
        return core::loadExperiment(env && *env ? env : "resources/presets/demo.json");
    }();
    static const char prefix[] = "--set ";
    const std::size_t prefixSize = sizeof(prefix) - 1;
    if (size >= prefixSize && std::memcmp(data, prefix, prefixSize) == 0) {
        const std::string assignment(reinterpret_cast<const char*>(data) + prefixSize, size - prefixSize);
        core::Experiment experiment = demo;
        try {
            core::applyOverride(experiment, assignment);
        } catch (const core::Error&) {
            return 0;
        } catch (const std::exception& e) {
            fuzz::finding(std::string("applyOverride let an exception other than core::Error escape: ") + e.what());
        }
        checkRoundTrip(experiment);
        return 0;
    }
    const fs::path path = fuzz::scratchFile("experiment.json");
    fuzz::writeFile(path, data, size);
    core::Experiment experiment;
    if (fuzz::expectCleanOutcome(path, [&] { experiment = core::loadExperiment(path); })) checkRoundTrip(experiment);
    return 0;
}
