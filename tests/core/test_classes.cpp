#include "segscope/core/data/classes.h"
#include "segscope/core/error.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace segscope::core;

TEST(VocColormap, MatchesPublishedValues) {
    // Values from the VOC development kit's labelcolormap.
    EXPECT_EQ(vocColor(0), (Rgb{0, 0, 0}));
    EXPECT_EQ(vocColor(1), (Rgb{128, 0, 0}));
    EXPECT_EQ(vocColor(2), (Rgb{0, 128, 0}));
    EXPECT_EQ(vocColor(3), (Rgb{128, 128, 0}));
    EXPECT_EQ(vocColor(8), (Rgb{64, 0, 0}));
    EXPECT_EQ(vocColor(15), (Rgb{192, 128, 128}));
    EXPECT_EQ(vocColor(20), (Rgb{0, 64, 128}));
    EXPECT_EQ(vocColor(255), (Rgb{224, 224, 192}));
}

TEST(VocClasses, TwentyOneNamesInOrder) {
    const auto classes = vocClasses();
    ASSERT_EQ(classes.size(), 21u);
    EXPECT_EQ(classes[0].name, "background");
    EXPECT_EQ(classes[15].name, "person");
    EXPECT_EQ(classes[20].name, "tvmonitor");
}

TEST(ClassesFile, ReadsNamesAndOptionalColours) {
    segscope::test::TempDir dir;
    {
        std::ofstream out(dir / "classes.txt");
        out << "# comment\nbackground\nroad 128 64 128\n\nsky #4682B4\r\n";
    }
    const auto classes = readClassesFile(dir / "classes.txt");
    ASSERT_EQ(classes.size(), 3u);
    EXPECT_EQ(classes[0].name, "background");
    EXPECT_EQ(classes[0].color, vocColor(0));
    EXPECT_EQ(classes[1].color, (Rgb{128, 64, 128}));
    EXPECT_EQ(classes[2].name, "sky");
    EXPECT_EQ(classes[2].color, (Rgb{0x46, 0x82, 0xB4}));
}

TEST(ClassesFile, MalformedLineNamesFileAndLine) {
    segscope::test::TempDir dir;
    {
        std::ofstream out(dir / "classes.txt");
        out << "background\nroad 128 64 300\n";
    }
    try {
        readClassesFile(dir / "classes.txt");
        FAIL() << "expected FileError";
    } catch (const FileError& e) {
        EXPECT_EQ(e.path(), (dir / "classes.txt").string());
        EXPECT_NE(e.reason().find("line 2"), std::string::npos) << e.reason();
        EXPECT_NE(e.reason().find("300"), std::string::npos) << e.reason();
    }
}
