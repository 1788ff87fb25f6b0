// predictSplit: a run's model over one split, into the prediction cache.
#include "segscope/core/analysis/predictions.h"

#include "analysis/batch_prediction.h"

#include "segscope/core/data/loader.h"
#include "segscope/core/experiment.h"
#include "segscope/core/runs/loaded_run.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace segscope::core {
namespace fs = std::filesystem;

SplitPrediction predictSplit(const LoadedRun& run, const fs::path& runFolder, const std::string& split,
                             const PredictionOptions& options) {
    if (!run.model) throw Error("predictSplit needs a loaded model");
    if (run.classes > 255)
        throw Error("a prediction cache holds at most 255 classes; the model has " + std::to_string(run.classes));
    const Experiment& experiment = run.experiment;
    prepareDemoDataset(experiment);
    SplitPrediction result;
    result.folder = predictionFolder(runFolder, run.checkpoint, split);
    const PredictionKey key = predictionKey(run, split);
    if (!options.force) {
        CacheLookup lookup = openPredictions(result.folder, key);
        if (lookup.state == CacheState::Valid) {
            result.set = std::move(lookup.set);
            result.fromCache = true;
            return result;
        }
    }

    const auto dataset = Dataset::open(datasetSpec(experiment, split));
    // The split's own class table first: loadRun() falls back to "classN" when the run's val split
    // cannot be opened (e.g. a Pets copy holding only test.txt), but this split can.
    std::vector<ClassInfo> classes(std::size_t(run.classes));
    for (int c = 0; c < run.classes; ++c) {
        const std::size_t i = std::size_t(c);
        if (c < dataset->numClasses())
            classes[i] = dataset->classes()[i];
        else if (i < run.classInfo.size() && !run.classInfo[i].name.empty())
            classes[i] = run.classInfo[i];
        else
            classes[i] = {"class" + std::to_string(c), vocColor(c)};
    }
    PredictionCacheWriter writer(result.folder, key, std::move(classes));

    LoaderOptions loaderOpts = loaderOptions(experiment, false);
    if (options.batchSize > 0) loaderOpts.batchSize = options.batchSize;
    if (options.workers >= 0) loaderOpts.workers = options.workers;
    BatchLoader loader(dataset, transformConfig(experiment), loaderOpts);

    BatchPredictionOptions batches;
    batches.device = run.device;
    batches.amp = experiment.training.amp;
    batches.channelsLast = experiment.training.channelsLast;
    batches.trimHeapAfterBatch = true;
    const std::size_t total = dataset->size();
    const bool done = forEachPredictedBatch(
        *run.model, loader, batches, options.cancel, [&](const Batch& batch, const torch::Tensor& logits) {
            for (std::size_t i = 0; i < batch.indices.size(); ++i) {
                // The label at its stored size, as evaluate() reloads it for EvalResolution::Original.
                const cv::Mat label = originalLabel(*dataset, batch.indices[i], experiment.dataset.voidToBackground);
                const torch::Tensor prediction =
                    predictAtSize(logits, i, label.rows, label.cols).squeeze(0).to(torch::kUInt8).cpu().contiguous();
                const cv::Mat predicted(label.rows, label.cols, CV_8UC1, prediction.data_ptr<std::uint8_t>());
                writer.add(batch.ids[i], predicted, label, dataset->samples()[batch.indices[i]].image);
            }
            if (options.progress) options.progress(writer.size(), total);
        });
    if (!done) {
        result.cancelled = true;
        return result;  // the writer removes its partial folder
    }
    result.set = writer.commit();
    return result;
}

}  // namespace segscope::core
