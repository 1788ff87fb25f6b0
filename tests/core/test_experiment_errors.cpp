// What a person reads when an experiment file is not JSON: file, line, column and the problem in
// words, without the JSON library's exception prefix.
#include "segscope/core/error.h"
#include "segscope/core/experiment.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace segscope::core;

TEST(ExperimentErrors, MalformedJsonNamesFileLineAndColumnInWords) {
    segscope::test::TempDir dir;
    const auto path = dir / "bad.json";
    std::ofstream(path) << "{\n  \"version\": 1,\n  \"name\": \"x\",\n  \"model\": {\"id\": \"segformer-b0\",}\n}\n";
    try {
        loadExperiment(path);
        FAIL() << "loaded malformed JSON";
    } catch (const FileError& e) {
        EXPECT_EQ(std::string(e.what()), path.string() +
                                             ": not valid JSON: line 4, column 34: syntax error while "
                                             "parsing object key - unexpected '}'; expected string literal");
    }
}
