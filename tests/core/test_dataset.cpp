#include "segscope/core/data/dataset.h"
#include "segscope/core/data/dataset_check.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

using namespace segscope::core;
using segscope::test::differingPixels;
using segscope::test::expectedMatrix;
using segscope::test::testData;

namespace {

nlohmann::json manifest() {
    std::ifstream in(testData() / "formats" / "manifest.json");
    return nlohmann::json::parse(in);
}

DatasetSpec vocSpec(const std::string& split) {
    DatasetSpec spec;
    spec.kind = DatasetKind::Voc;
    spec.root = testData() / "formats" / "voc";  // the folder containing VOCdevkit
    spec.split = split;
    return spec;
}

DatasetSpec petsSpec(const std::string& split, PetsMode mode) {
    DatasetSpec spec;
    spec.kind = DatasetKind::Pets;
    spec.root = testData() / "formats" / "pets";
    spec.split = split;
    spec.petsMode = mode;
    return spec;
}

}  // namespace

TEST(VocDataset, FindsVocdevkitAndReadsExactLabels) {
    const auto dataset = Dataset::open(vocSpec("good"));
    EXPECT_EQ(dataset->resolvedRoot(), testData() / "formats" / "voc" / "VOCdevkit" / "VOC2012");
    ASSERT_EQ(dataset->size(), 4u);
    EXPECT_EQ(dataset->numClasses(), 21);
    const char* ids[] = {"pal", "gray", "rgbmask", "fourbit"};
    for (std::size_t i = 0; i < 4; ++i) {
        const LabeledImage sample = dataset->load(i);
        EXPECT_EQ(sample.id, ids[i]);
        EXPECT_EQ(sample.image.type(), CV_8UC3);
        EXPECT_EQ(differingPixels(sample.label, expectedMatrix(std::string("voc_") + ids[i], 30, 40)), 0) << ids[i];
    }
}

TEST(VocDataset, MissingSplitFileNamesThePath) {
    try {
        Dataset::open(vocSpec("nosuchsplit"));
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("ImageSets/Segmentation/nosuchsplit.txt"), std::string::npos) << e.what();
    }
}

TEST(VocDataset, NotAVocFolderIsAClearError) {
    DatasetSpec spec = vocSpec("train");
    spec.root = testData() / "formats" / "pets";
    try {
        Dataset::open(spec);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no VOC layout under"), std::string::npos);
    }
}

TEST(VocDataset, LoadRefusesBadFilesNamingThem) {
    const auto dataset = Dataset::open(vocSpec("bad"));
    // bad.txt: pal, trunc, wrongsize, forty, ghost, badcolor, nomask
    EXPECT_NO_THROW(dataset->load(0));
    const std::string reasons[] = {"",
                                   "truncated JPEG (no end-of-image marker)",
                                   "mask is 42x30 but its image is 40x30",
                                   "570 pixels have label value 40 outside [0, 21) and not 255",
                                   "image listed in the split does not exist",
                                   "6 pixels have colours outside the class table, e.g. (1, 2, 3)",
                                   "mask listed in the split does not exist"};
    for (std::size_t i = 1; i < 7; ++i) {
        try {
            dataset->load(i);
            ADD_FAILURE() << "sample " << i << " loaded";
        } catch (const FileError& e) {
            EXPECT_EQ(e.reason(), reasons[i]);
            EXPECT_NE(e.path().find(dataset->samples()[i].id), std::string::npos) << e.path();
        }
    }
}

TEST(DatasetCheck, GoodSplitExactCounts) {
    const auto m = manifest()["voc"];
    const DatasetReport report = checkDataset(*Dataset::open(vocSpec("good")));
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(report.images, 4u);
    EXPECT_EQ(report.classPixels, m["good_class_pixels"].get<std::vector<std::uint64_t>>());
    EXPECT_EQ(report.classImages, m["good_class_images"].get<std::vector<std::uint64_t>>());
    EXPECT_EQ(report.ignorePixels, m["good_ignore_pixels"].get<std::uint64_t>());
    ASSERT_EQ(report.problems.size(), 1u);  // the PNG named .jpg
    EXPECT_EQ(report.problems[0].severity, Severity::Warning);
    EXPECT_EQ(report.problems[0].message, "contains PNG data; decoded by content");
}

TEST(DatasetCheck, BadSplitReportsEveryProblemExactly) {
    const auto dataset = Dataset::open(vocSpec("bad"));
    const DatasetReport report = checkDataset(*dataset, {/*threads=*/3, {}, nullptr});
    EXPECT_FALSE(report.ok());
    const auto root = dataset->resolvedRoot();
    std::vector<std::pair<std::string, std::string>> expected = {
        {(root / "JPEGImages/trunc.jpg").string(), "truncated JPEG (no end-of-image marker)"},
        {(root / "SegmentationClass/wrongsize.png").string(), "mask is 42x30 but its image is 40x30"},
        {(root / "SegmentationClass/forty.png").string(), "570 pixels have label value 40 outside [0, 21) and not 255"},
        {(root / "JPEGImages/ghost.jpg").string(),
         "id 'ghost' is listed in the split but has no image and no mask (expected " +
             (root / "JPEGImages/ghost.jpg").string() + " and " + (root / "SegmentationClass/ghost.png").string() +
             ")"},
        {(root / "SegmentationClass/badcolor.png").string(),
         "6 pixels have colours outside the class table, e.g. (1, 2, 3)"},
        {(root / "SegmentationClass/nomask.png").string(), "id 'nomask' has an image but no mask"},
    };
    ASSERT_EQ(report.problems.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(report.problems[i].severity, Severity::Error);
        EXPECT_EQ(report.problems[i].file, expected[i].first);
        EXPECT_EQ(report.problems[i].message, expected[i].second);
    }
}

TEST(DatasetCheck, CancelStopsEarly) {
    std::atomic<bool> cancel{true};
    const DatasetReport report = checkDataset(*Dataset::open(vocSpec("good")), {1, {}, &cancel});
    EXPECT_TRUE(report.cancelled);
    EXPECT_FALSE(report.ok());
}

TEST(PetsDataset, ModesMapTrimapValuesExactly) {
    const auto m = manifest()["pets"];
    const std::pair<PetsMode, const char*> modes[] = {{PetsMode::Trimap, "trimap"},
                                                      {PetsMode::Binary, "binary"},
                                                      {PetsMode::BinaryBorderForeground, "binary-border-fg"}};
    for (const auto& [mode, name] : modes) {
        const auto dataset = Dataset::open(petsSpec("trainval", mode));
        EXPECT_EQ(dataset->numClasses(), mode == PetsMode::Trimap ? 3 : 2);
        ASSERT_EQ(dataset->size(), 4u);
        for (std::size_t i = 0; i < dataset->size(); ++i) {
            const LabeledImage sample = dataset->load(i);
            EXPECT_EQ(sample.id, m["trainval"][i].get<std::string>());
            EXPECT_EQ(sample.image.channels(), 3);
            EXPECT_EQ(
                differingPixels(sample.label, expectedMatrix(std::string("pets_") + name + "_" + sample.id, 28, 36)), 0)
                << name << " " << sample.id;
        }
    }
}

TEST(PetsDataset, CommentsSkippedAndTestSplitRead) {
    const auto dataset = Dataset::open(petsSpec("test", PetsMode::Binary));
    ASSERT_EQ(dataset->size(), 2u);
    EXPECT_EQ(dataset->samples()[0].id, "Bombay_1");
    EXPECT_EQ(dataset->samples()[1].id, "pug_1");
    const DatasetReport report = checkDataset(*dataset);
    EXPECT_TRUE(report.ok());
    ASSERT_EQ(report.problems.size(), 1u);
    EXPECT_EQ(report.problems[0].message, "contains PNG data; decoded by content");
}

TEST(PetsDataset, TrimapCheckCountsMatchPython) {
    const auto m = manifest()["pets"];
    const DatasetReport report = checkDataset(*Dataset::open(petsSpec("trainval", PetsMode::Trimap)));
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(report.classPixels, m["trainval_trimap_pixels"].get<std::vector<std::uint64_t>>());
    EXPECT_EQ(report.classes, (std::vector<std::string>{"background", "pet", "border"}));
}

TEST(PetsDataset, ValidationCarvedDeterministicallyAndDisjoint) {
    DatasetSpec spec = petsSpec("train", PetsMode::Binary);
    spec.validationFraction = 0.25;
    const auto train = Dataset::open(spec);
    spec.split = "val";
    const auto val = Dataset::open(spec);
    EXPECT_EQ(train->size(), 3u);
    EXPECT_EQ(val->size(), 1u);
    std::set<std::string> all;
    for (const auto& s : train->samples()) all.insert(s.id);
    for (const auto& s : val->samples()) all.insert(s.id);
    EXPECT_EQ(all.size(), 4u);
    spec.split = "val";
    EXPECT_EQ(Dataset::open(spec)->samples()[0].id, val->samples()[0].id);
}

TEST(CarveValidation, SameSeedSameSplitOtherSeedOtherSplit) {
    std::vector<std::string> ids;
    for (int i = 0; i < 100; ++i) ids.push_back("id" + std::to_string(i));
    std::vector<std::string> t1, v1, t2, v2, t3, v3;
    carveValidation(ids, 0.1, 5, &t1, &v1);
    carveValidation(ids, 0.1, 5, &t2, &v2);
    carveValidation(ids, 0.1, 6, &t3, &v3);
    EXPECT_EQ(v1.size(), 10u);
    EXPECT_EQ(t1.size(), 90u);
    EXPECT_EQ(v1, v2);
    EXPECT_NE(v1, v3);
}

TEST(FolderDataset, ClassesFromFileAndExactLabels) {
    DatasetSpec spec;
    spec.kind = DatasetKind::Folder;
    spec.root = testData() / "formats" / "folder";
    spec.split = "all";
    const auto dataset = Dataset::open(spec);
    ASSERT_EQ(dataset->size(), 5u);
    EXPECT_EQ(dataset->classes()[1].name, "road");
    EXPECT_EQ(dataset->classes()[1].color, (Rgb{128, 64, 128}));
    for (std::size_t i = 0; i < 5; ++i) {
        const LabeledImage sample = dataset->load(i);
        EXPECT_EQ(differingPixels(sample.label, expectedMatrix("folder_" + sample.id, 20, 24)), 0);
    }
}

TEST(AvailableSplits, ListsSplitFiles) {
    EXPECT_EQ(availableSplits(DatasetKind::Voc, testData() / "formats" / "voc"),
              (std::vector<std::string>{"bad", "good"}));
    EXPECT_TRUE(availableSplits(DatasetKind::Voc, testData() / "formats" / "pets").empty());
}
