#pragma once
// Multi-threaded, prefetching batch loader over a Dataset.
//
// Worker threads decode, transform and normalise whole batches straight into the batch tensors;
// the consumer receives them in order. Every random choice derives from (seed, epoch, sample), so
// the batches of an epoch are the same whatever the number of workers or their timing, and an
// epoch can be restarted part-way (resume) by skipping batches.
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/transforms.h"

#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace segscope::core {

struct LoaderOptions {
    std::size_t batchSize = 8;
    bool shuffle = true;
    bool dropLast = false;
    bool training = true;             // training (random) transform, else the eval transform
    int workers = 2;                  // 0: batches are built on the consumer's thread
    std::size_t prefetchBatches = 4;  // bound on batches built ahead of the consumer
    std::uint64_t seed = 0;
};

struct Batch {
    torch::Tensor images;              // (B, 3, H, W) float32, normalised
    torch::Tensor labels;              // (B, H, W) int64, kIgnoreIndex for ignored pixels
    std::vector<std::size_t> indices;  // dataset indices
    std::vector<std::string> ids;
    std::uint64_t epoch = 0;
    std::size_t batchIndex = 0;
};

class BatchLoader {
public:
    BatchLoader(std::shared_ptr<const Dataset> dataset, TransformConfig transform, LoaderOptions options);
    ~BatchLoader();
    BatchLoader(const BatchLoader&) = delete;
    BatchLoader& operator=(const BatchLoader&) = delete;

    std::size_t batchesPerEpoch() const;
    const Dataset& dataset() const { return *dataset_; }

    // Sample order of an epoch (a seeded shuffle, or identity without shuffle).
    std::vector<std::size_t> epochOrder(std::uint64_t epoch) const;

    // Starts producing `epoch`, skipping its first `skipBatches` batches. Discards anything
    // prefetched for an earlier epoch. Call from the consumer's thread.
    void startEpoch(std::uint64_t epoch, std::size_t skipBatches = 0);

    // The next batch of the current epoch in order, or nullopt at its end. Blocks while the
    // batch is being built. Rethrows a worker's exception (FileError names the file).
    std::optional<Batch> next();

    // Builds one batch from explicit dataset indices on the calling thread.
    Batch buildBatch(const std::vector<std::size_t>& indices, std::uint64_t epoch, std::size_t batchIndex) const;

private:
    struct Slot {
        std::optional<Batch> batch;
        std::exception_ptr error;
    };
    void workerLoop();

    std::shared_ptr<const Dataset> dataset_;
    TransformConfig transform_;
    LoaderOptions options_;

    std::mutex mutex_;
    std::condition_variable workAvailable_;
    std::condition_variable batchReady_;
    std::vector<std::thread> workers_;
    bool stopping_ = false;
    std::uint64_t generation_ = 0;
    std::uint64_t epoch_ = 0;
    std::vector<std::size_t> order_;
    std::size_t totalBatches_ = 0;
    std::size_t nextToClaim_ = 0;
    std::size_t nextToDeliver_ = 0;
    std::map<std::size_t, Slot> ready_;
};

}  // namespace segscope::core
