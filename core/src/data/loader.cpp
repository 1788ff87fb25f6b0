#include "segscope/core/data/loader.h"

#include "segscope/core/data/random.h"

#include <algorithm>
#include <cstring>

namespace segscope::core {

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> dataset, TransformConfig transform, LoaderOptions options)
    : dataset_(std::move(dataset)), transform_(transform), options_(options) {
    if (!dataset_) throw Error("BatchLoader needs a dataset");
    if (options_.batchSize == 0) throw Error("batch size must be at least 1");
    options_.prefetchBatches = std::max<std::size_t>(1, options_.prefetchBatches);
    for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { workerLoop(); });
}

BatchLoader::~BatchLoader() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    workAvailable_.notify_all();
    for (auto& t : workers_) t.join();
}

std::size_t BatchLoader::batchesPerEpoch() const {
    const std::size_t n = dataset_->size();
    return options_.dropLast ? n / options_.batchSize : (n + options_.batchSize - 1) / options_.batchSize;
}

std::vector<std::size_t> BatchLoader::epochOrder(std::uint64_t epoch) const {
    std::vector<std::size_t> order(dataset_->size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (options_.shuffle) {
        Random random(mixSeed(options_.seed, epoch, 0x0DA7A0DDull));
        shuffleInPlace(order, random);
    }
    return order;
}

void BatchLoader::startEpoch(std::uint64_t epoch, std::size_t skipBatches) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++generation_;
        epoch_ = epoch;
        order_ = epochOrder(epoch);
        totalBatches_ = batchesPerEpoch();
        nextToClaim_ = nextToDeliver_ = std::min(skipBatches, totalBatches_);
        ready_.clear();
    }
    workAvailable_.notify_all();
}

Batch BatchLoader::buildBatch(const std::vector<std::size_t>& indices, std::uint64_t epoch,
                              std::size_t batchIndex) const {
    const int h = transform_.height, w = transform_.width;
    const auto count = static_cast<std::int64_t>(indices.size());
    Batch batch;
    batch.images = torch::empty({count, 3, h, w}, torch::kFloat32);
    batch.labels = torch::empty({count, h, w}, torch::kInt64);
    batch.epoch = epoch;
    batch.batchIndex = batchIndex;
    float* images = batch.images.data_ptr<float>();
    std::int64_t* labels = batch.labels.data_ptr<std::int64_t>();
    const std::size_t plane = std::size_t(h) * w;
    for (std::size_t i = 0; i < indices.size(); ++i) {
        const LabeledImage raw = dataset_->load(indices[i]);
        LabeledImage sample;
        if (options_.training) {
            Random random(mixSeed(options_.seed, epoch, indices[i]));
            sample = applyTrainTransform(raw, transform_, random);
        } else {
            sample = applyEvalTransform(raw, transform_);
        }
        normalizeToChw(sample.image, transform_.normalization, images + i * 3 * plane);
        std::int64_t* dst = labels + i * plane;
        for (int y = 0; y < h; ++y) {
            const auto* row = sample.label.ptr<std::uint8_t>(y);
            for (int x = 0; x < w; ++x) dst[std::size_t(y) * w + x] = row[x];
        }
        batch.indices.push_back(indices[i]);
        batch.ids.push_back(raw.id);
    }
    return batch;
}

void BatchLoader::workerLoop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        workAvailable_.wait(lock, [this] {
            return stopping_ ||
                   (nextToClaim_ < totalBatches_ && nextToClaim_ < nextToDeliver_ + options_.prefetchBatches);
        });
        if (stopping_) return;
        const std::size_t batchIndex = nextToClaim_++;
        const std::uint64_t generation = generation_, epoch = epoch_;
        const std::size_t begin = batchIndex * options_.batchSize;
        const std::size_t end = std::min(order_.size(), begin + options_.batchSize);
        Slot slot;
        // Nothing may escape a worker thread (std::terminate): every failure, an allocation
        // included, goes to the consumer, which rethrows it from next().
        try {
            std::vector<std::size_t> indices(order_.begin() + long(begin), order_.begin() + long(end));
            lock.unlock();
            slot.batch = buildBatch(indices, epoch, batchIndex);
        } catch (...) {
            slot.error = std::current_exception();
        }
        if (!lock.owns_lock()) lock.lock();
        if (generation == generation_) {
            ready_[batchIndex] = std::move(slot);
            batchReady_.notify_all();
        }
    }
}

std::optional<Batch> BatchLoader::next() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (nextToDeliver_ >= totalBatches_) return std::nullopt;
    const std::size_t batchIndex = nextToDeliver_;
    if (workers_.empty()) {
        const std::size_t begin = batchIndex * options_.batchSize;
        const std::size_t end = std::min(order_.size(), begin + options_.batchSize);
        std::vector<std::size_t> indices(order_.begin() + long(begin), order_.begin() + long(end));
        ++nextToDeliver_;
        nextToClaim_ = nextToDeliver_;
        const std::uint64_t epoch = epoch_;
        lock.unlock();
        return buildBatch(indices, epoch, batchIndex);
    }
    batchReady_.wait(lock, [&] { return ready_.count(batchIndex) > 0; });
    Slot slot = std::move(ready_[batchIndex]);
    ready_.erase(batchIndex);
    ++nextToDeliver_;
    lock.unlock();
    workAvailable_.notify_all();
    if (slot.error) std::rethrow_exception(slot.error);
    return std::move(slot.batch);
}

}  // namespace segscope::core
