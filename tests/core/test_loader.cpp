#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/loader.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

using namespace segscope::core;

namespace {

// A small demo dataset shared by the loader tests.
std::shared_ptr<const Dataset> demo(const std::string& split = "train") {
    static segscope::test::TempDir* dir = nullptr;
    if (!dir) {
        dir = new segscope::test::TempDir();  // lives for the process; tiny
        DemoOptions options;
        options.images = 23;
        options.width = options.height = 40;
        writeDemoDataset(dir->path(), options);
    }
    DatasetSpec spec;
    spec.root = dir->path();
    spec.split = split;
    return Dataset::open(spec);
}

TransformConfig smallTransform() {
    TransformConfig t;
    t.height = t.width = 32;
    t.mode = ResizeMode::RandomScaleCrop;
    t.horizontalFlip = true;
    return t;
}

}  // namespace

TEST(BatchLoader, EverySampleExactlyOncePerEpochWithSeveralWorkers) {
    const auto dataset = demo();
    LoaderOptions options;
    options.batchSize = 4;
    options.workers = 3;
    options.seed = 11;
    BatchLoader loader(dataset, smallTransform(), options);
    EXPECT_EQ(loader.batchesPerEpoch(), (dataset->size() + 3) / 4);
    for (std::uint64_t epoch = 0; epoch < 2; ++epoch) {
        loader.startEpoch(epoch);
        std::map<std::size_t, int> seen;
        std::size_t batches = 0;
        while (auto batch = loader.next()) {
            EXPECT_EQ(batch->batchIndex, batches++);
            EXPECT_EQ(batch->images.sizes(),
                      (std::vector<std::int64_t>{std::int64_t(batch->indices.size()), 3, 32, 32}));
            EXPECT_EQ(batch->labels.scalar_type(), torch::kInt64);
            for (auto i : batch->indices) ++seen[i];
        }
        EXPECT_EQ(seen.size(), dataset->size());
        for (const auto& [index, count] : seen) EXPECT_EQ(count, 1) << index;
    }
}

TEST(BatchLoader, ShuffleDiffersPerEpochAndIsSeeded) {
    const auto dataset = demo();
    LoaderOptions options;
    options.seed = 3;
    BatchLoader a(dataset, smallTransform(), options);
    options.workers = 0;
    BatchLoader b(dataset, smallTransform(), options);
    EXPECT_EQ(a.epochOrder(0), b.epochOrder(0));
    EXPECT_NE(a.epochOrder(0), a.epochOrder(1));
}

TEST(BatchLoader, SameBatchesWhateverTheWorkerCount) {
    const auto dataset = demo();
    std::vector<torch::Tensor> reference;
    for (int workers : {0, 1, 3}) {
        LoaderOptions options;
        options.batchSize = 5;
        options.workers = workers;
        options.seed = 9;
        BatchLoader loader(dataset, smallTransform(), options);
        loader.startEpoch(2);
        std::size_t k = 0;
        while (auto batch = loader.next()) {
            if (workers == 0) {
                reference.push_back(batch->images);
                reference.push_back(batch->labels);
            } else {
                ASSERT_TRUE(torch::equal(batch->images, reference[k++])) << "workers " << workers;
                ASSERT_TRUE(torch::equal(batch->labels, reference[k++])) << "workers " << workers;
            }
        }
    }
}

TEST(BatchLoader, SkippingBatchesResumesTheSameEpoch) {
    const auto dataset = demo();
    LoaderOptions options;
    options.batchSize = 4;
    options.workers = 2;
    BatchLoader loader(dataset, smallTransform(), options);
    loader.startEpoch(1);
    std::vector<torch::Tensor> full;
    while (auto batch = loader.next()) full.push_back(batch->images);
    loader.startEpoch(1, 3);
    std::size_t k = 3;
    while (auto batch = loader.next()) {
        EXPECT_EQ(batch->batchIndex, k);
        ASSERT_TRUE(torch::equal(batch->images, full[k++]));
    }
    EXPECT_EQ(k, full.size());
}

TEST(BatchLoader, DropLastDropsThePartialBatch) {
    const auto dataset = demo();
    LoaderOptions options;
    options.batchSize = 4;
    options.dropLast = true;
    BatchLoader loader(dataset, smallTransform(), options);
    loader.startEpoch(0);
    std::size_t images = 0;
    while (auto batch = loader.next()) {
        EXPECT_EQ(batch->indices.size(), 4u);
        images += 4;
    }
    EXPECT_EQ(images, dataset->size() / 4 * 4);
}

TEST(BatchLoader, WorkerErrorSurfacesInConsumerNamingTheFile) {
    segscope::test::TempDir dir;
    DemoOptions demoOptions;
    demoOptions.images = 8;
    demoOptions.width = demoOptions.height = 32;
    writeDemoDataset(dir.path(), demoOptions);
    const auto broken = dir.path() / "JPEGImages" / "demo_00002.jpg";
    std::filesystem::resize_file(broken, 100);
    DatasetSpec spec;
    spec.root = dir.path();
    spec.split = "trainval";
    LoaderOptions options;
    options.batchSize = 2;
    options.shuffle = false;
    options.workers = 2;
    BatchLoader loader(Dataset::open(spec), smallTransform(), options);
    loader.startEpoch(0);
    ASSERT_TRUE(loader.next().has_value());  // demo_00000, demo_00001
    try {
        loader.next();
        FAIL() << "the truncated image must fail its batch";
    } catch (const FileError& e) {
        EXPECT_EQ(e.path(), broken.string());
    }
    EXPECT_TRUE(loader.next().has_value());  // later batches still come
}

TEST(BatchLoader, EvalTransformIsDeterministicAndUnshuffledOrder) {
    const auto dataset = demo("val");
    LoaderOptions options;
    options.training = false;
    options.shuffle = false;
    options.batchSize = 3;
    BatchLoader loader(dataset, smallTransform(), options);
    loader.startEpoch(0);
    std::size_t expected = 0;
    while (auto batch = loader.next())
        for (auto i : batch->indices) EXPECT_EQ(i, expected++);
    EXPECT_EQ(expected, dataset->size());
}
