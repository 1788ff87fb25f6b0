// An experiment as the data pipeline takes it: dataset spec, transforms, loader options.
#include "segscope/core/experiment.h"

#include "segscope/core/data/demo_data.h"

namespace segscope::core {

std::filesystem::path datasetRoot(const Experiment& experiment) {
    if (experiment.dataset.kind == DataSource::Demo && experiment.dataset.root.empty()) return defaultDemoRoot();
    return experiment.dataset.root;
}

void prepareDemoDataset(const Experiment& experiment) {
    if (experiment.dataset.kind == DataSource::Demo) ensureDemoDataset(datasetRoot(experiment));
}

DatasetSpec datasetSpec(const Experiment& experiment, const std::string& split) {
    DatasetSpec spec;
    switch (experiment.dataset.kind) {
        case DataSource::Voc:
        case DataSource::Demo:
            spec.kind = DatasetKind::Voc;
            break;
        case DataSource::Pets:
            spec.kind = DatasetKind::Pets;
            break;
        case DataSource::Folder:
            spec.kind = DatasetKind::Folder;
            break;
    }
    spec.root = datasetRoot(experiment);
    spec.split = split;
    spec.petsMode = experiment.dataset.petsMode;
    spec.validationFraction = experiment.dataset.validationFraction;
    spec.validationSeed = experiment.dataset.validationSeed;
    return spec;
}

TransformConfig transformConfig(const Experiment& experiment) {
    TransformConfig config;
    static_cast<TransformSettings&>(config) = experiment.transforms;
    config.voidToBackground = experiment.dataset.voidToBackground;
    return config;
}

LoaderOptions loaderOptions(const Experiment& experiment, bool training) {
    LoaderOptions options;
    options.batchSize = static_cast<std::size_t>(experiment.training.batchSize);
    options.shuffle = training;
    options.dropLast = training;
    options.training = training;
    options.workers = experiment.runtime.workers;
    options.seed = experiment.runtime.seed;
    return options;
}

}  // namespace segscope::core
