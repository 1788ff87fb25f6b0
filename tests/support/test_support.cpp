#include "test_support.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>

namespace segscope::test {

namespace {
std::string fromEnvironment(const char* name, const char* fallback) {
    const char* value = std::getenv(name);
    return value && *value ? value : fallback;
}
}  // namespace

std::filesystem::path testData() {
    return fromEnvironment("SEGSCOPE_TEST_DATA", SEGSCOPE_DEFAULT_TEST_DATA);
}
std::filesystem::path sourceDir() {
    return fromEnvironment("SEGSCOPE_SOURCE_DIR", SEGSCOPE_DEFAULT_SOURCE_DIR);
}
std::string pythonExecutable() {
    return fromEnvironment("SEGSCOPE_PYTHON", SEGSCOPE_DEFAULT_PYTHON);
}
std::string cliExecutable() {
    return fromEnvironment("SEGSCOPE_CLI", SEGSCOPE_DEFAULT_CLI);
}

TempDir::TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "segscope";
    for (auto& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("segscope_" + name + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

CommandResult runCommand(const std::string& command) {
    CommandResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return result;
    std::array<char, 4096> buffer{};
    std::size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
    const int status = pclose(pipe);
    result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

CommandResult runCli(const std::string& arguments) {
    return runCommand("'" + cliExecutable() + "' " + arguments);
}

}  // namespace segscope::test

#include <fstream>

namespace segscope::test {

cv::Mat expectedMatrix(const std::string& name, int rows, int cols, int channels) {
    const auto path = testData() / "formats" / "expected" / (name + ".bin");
    std::ifstream in(path, std::ios::binary);
    cv::Mat m(rows, cols, CV_8UC(channels));
    if (!in.read(reinterpret_cast<char*>(m.data), std::streamsize(m.total() * m.elemSize()))) {
        ADD_FAILURE() << "cannot read " << path;
        return {};
    }
    return m;
}

std::int64_t differingPixels(const cv::Mat& a, const cv::Mat& b) {
    if (a.size() != b.size() || a.type() != b.type()) return -1;
    std::int64_t n = 0;
    for (int y = 0; y < a.rows; ++y)
        for (int x = 0; x < a.cols * a.channels(); ++x) n += a.ptr<std::uint8_t>(y)[x] != b.ptr<std::uint8_t>(y)[x];
    return n;
}

int maxAbsDifference(const cv::Mat& a, const cv::Mat& b) {
    if (a.size() != b.size() || a.type() != b.type()) return 256;
    int worst = 0;
    for (int y = 0; y < a.rows; ++y)
        for (int x = 0; x < a.cols * a.channels(); ++x)
            worst = std::max(worst, std::abs(int(a.ptr<std::uint8_t>(y)[x]) - int(b.ptr<std::uint8_t>(y)[x])));
    return worst;
}

}  // namespace segscope::test

namespace segscope::test {

std::string quoted(const std::filesystem::path& path) {
    return "'" + path.string() + "'";
}

std::string readFileText(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

core::DemoSummary writeDemo(const std::filesystem::path& root, int images, int width, int height) {
    core::DemoOptions options;
    options.images = images;
    options.width = width;
    options.height = height;
    return core::writeDemoDataset(root, options);
}

core::DemoSummary writeDemo(const std::filesystem::path& root, int images, int side) {
    return writeDemo(root, images, side, side);
}

core::Experiment tinyExperiment(const std::filesystem::path& demoRoot) {
    core::Experiment e;
    e.name = "tiny";
    e.dataset.kind = core::DataSource::Voc;
    e.dataset.root = demoRoot;
    e.model.id = "segformer-b0";
    e.transforms.height = e.transforms.width = 64;
    e.optimizer.type = core::OptimizerType::AdamW;
    e.optimizer.learningRate = 1e-3;
    e.training.epochs = 2;
    e.training.batchSize = 4;
    e.runtime.device = "cpu";
    e.runtime.threads = 1;
    e.runtime.workers = 1;
    e.runtime.seed = 0;
    return e;
}

core::NewRun sampleRun(const std::string& name) {
    core::NewRun run;
    run.name = name;
    run.model = "segformer-b0";
    run.dataset = "demo:/data/demo";
    run.experimentJson = R"({"version": 1, "name": ")" + name + R"("})";
    run.device = "cpu";
    run.parameters = 3715429;
    return run;
}

core::SegmentationMetrics metricsWith(double iou0, double iou1) {
    core::SegmentationMetrics m;
    m.aAcc = 0.9;
    m.mIoU = (iou0 + iou1) / 2;
    m.mAcc = 0.8;
    m.mDice = 0.7;
    m.perClass.resize(2);
    m.perClass[0].name = "background";
    m.perClass[0].iou = iou0;
    m.perClass[0].acc = 0.95;
    m.perClass[1].name = "circle";
    m.perClass[1].iou = iou1;
    m.perClass[1].pixelShare = 0.25;
    return m;
}

std::string recordFullRun(core::RunStore& store, const std::string& name) {
    const std::string id = store.createRun(sampleRun(name));
    store.updateStatus(id, core::RunStatus::Running);
    store.updateParameters(id, 1234);
    const std::filesystem::path folder = store.run(id)->folder;
    for (int step = 1; step <= 12; ++step) {
        core::StepRecord s;
        s.step = step;
        s.epoch = (step - 1) / 6;
        s.loss = step == 3 ? std::nan("") : 1.0 / step;
        s.learningRate = 1e-3 * step;
        s.imagesPerSecond = 10 + step;
        if (step % 2) s.memoryBytes = 1000 * step;
        s.wallSeconds = 0.5 * step;
        store.appendStep(id, s);
        if (step % 6 == 0) {
            const int epoch = step / 6;
            store.appendEpoch(
                id, core::epochRecord(metricsWith(0.5 + 0.1 * epoch, 0.2 * epoch), epoch, step, 0.3 / epoch, step),
                core::classRecords(metricsWith(0.5 + 0.1 * epoch, 0.2 * epoch)),
                {{"img_a", 0.25 * epoch, "[0.5,null]"}, {"img_\xff", 0.1, "[0.1,0.1]"}});
            store.addCheckpoint(
                id, {epoch, step, folder / "checkpoints" / ("epoch-" + std::to_string(epoch) + ".state.pt"), {}});
        }
        if (step == 8) {
            // A resume from the step-6 checkpoint: steps 7 and 8 are recorded again.
            store.truncateAfter(id, 6);
        }
    }
    store.removeCheckpoint(id, folder / "checkpoints" / "epoch-1.state.pt");
    store.updateTotals(id, 6.5, 14.25);
    store.updateStatus(id, core::RunStatus::Finished, "done");
    return id;
}

void writeFileBytes(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
}

std::string randomBytes(std::size_t n) {
    std::mt19937 random(7);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(random() & 0xff);
    return s;
}

cv::Mat matOf(const std::vector<std::int64_t>& values) {
    cv::Mat m(2, 5, CV_8UC1);
    for (int i = 0; i < 10; ++i)
        m.at<std::uint8_t>(i / 5, i % 5) = static_cast<std::uint8_t>(values[static_cast<std::size_t>(i)]);
    return m;
}

}  // namespace segscope::test
