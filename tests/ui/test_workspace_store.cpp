// The GUI's hold on the run database: a file dialog on the workspace and another process reading
// it cannot make the GUI's writes disappear; a corrupt database is repaired at start with a message.
#include "segscope/core/runs/run_store.h"
#include "segscope/ui/runs_panel.h"
#include "segscope/ui/workspace.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileSystemModel>
#include <QMessageBox>
#include <QMimeDatabase>
#include <QSignalSpy>
#include <QTimer>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <fstream>

using namespace segscope;
namespace fs = std::filesystem;

namespace {

core::StepRecord stepAt(std::int64_t step) {
    core::StepRecord s;
    s.step = step;
    s.loss = 1.0 / double(step);
    s.learningRate = 1e-3;
    s.wallSeconds = double(step);
    return s;
}

core::SegmentationMetrics metrics(double miou) {
    core::SegmentationMetrics m;
    m.mIoU = miou;
    m.aAcc = 0.9;
    m.perClass.resize(1);
    m.perClass[0].name = "background";
    m.perClass[0].iou = miou;
    return m;
}

// Descriptors of this process whose file was deleted while open (Linux /proc).
std::vector<std::string> deletedDatabaseDescriptors() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd", ec)) {
        const auto target = fs::read_symlink(entry.path(), ec).string();
        if (target.find("segscope.db") != std::string::npos && target.find("(deleted)") != std::string::npos)
            out.push_back(target);
    }
    return out;
}

// Closes the next modal message box, keeping its text.
void acceptNextMessageBox(QString* text) {
    QTimer::singleShot(50, [text] {
        if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget())) {
            *text = box->text();
            box->accept();
        } else {
            acceptNextMessageBox(text);
        }
    });
}

}  // namespace

// The scenario that lost a workspace's history: the GUI's connection open, a file dialog opened
// and closed on the workspace (its model lists the folder and sniffs each file's type by content,
// opening and closing it), a second process reading the database, then more GUI writes.
TEST(WorkspaceStore, FileDialogAndAnotherProcessLoseNoGuiWrite) {
    test::TempDir dir;
    const fs::path ws = dir / "ws";
    auto gui = core::RunStore::open(ws);
    core::NewRun run;
    run.name = "demo";
    run.model = "segformer-b0";
    run.experimentJson = "{}";
    const std::string id = gui->createRun(run);
    gui->updateStatus(id, core::RunStatus::Running);
    for (int s = 1; s <= 20; ++s) gui->appendStep(id, stepAt(s));

    {
        QFileDialog dialog(nullptr, QStringLiteral("Open experiment"), QString::fromStdString(ws.string()),
                           QStringLiteral("Experiments (*.json)"));
        dialog.setOption(QFileDialog::DontUseNativeDialog);
        dialog.setFileMode(QFileDialog::AnyFile);
        auto* model = dialog.findChild<QFileSystemModel*>();
        ASSERT_NE(model, nullptr);
        QSignalSpy loaded(model, &QFileSystemModel::directoryLoaded);
        dialog.show();
        ASSERT_TRUE(loaded.count() > 0 || loaded.wait(5000));
        const QModelIndex root = model->index(QString::fromStdString(ws.string()));
        QMimeDatabase mime;
        QStringList listed;
        for (int row = 0; row < model->rowCount(root); ++row) {
            const QString path = model->filePath(model->index(row, 0, root));
            listed << QFileInfo(path).fileName();
            (void)mime.mimeTypeForFile(path, QMimeDatabase::MatchContent);
        }
        EXPECT_FALSE(listed.contains(QStringLiteral("segscope.db"))) << listed.join(QLatin1Char(' ')).toStdString();
        EXPECT_FALSE(listed.contains(QStringLiteral(".segscope"))) << "the database folder is hidden";
        dialog.reject();
    }

    const auto reader = test::runCli("runs --json --workspace '" + ws.string() + "'");
    ASSERT_EQ(reader.exitCode, 0) << reader.output;

    for (int s = 21; s <= 40; ++s) gui->appendStep(id, stepAt(s));
    gui->appendEpoch(id, core::epochRecord(metrics(0.625), 1, 40, std::nullopt, 40), core::classRecords(metrics(0.625)),
                     {});
    gui->updateStatus(id, core::RunStatus::Finished, "done");
    EXPECT_TRUE(deletedDatabaseDescriptors().empty());

    // A fresh process sees every write, and the file is sound.
    const auto after = test::runCli("runs --json --workspace '" + ws.string() + "'");
    ASSERT_EQ(after.exitCode, 0) << after.output;
    const auto runs = nlohmann::json::parse(after.output)["runs"];
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["status"], "finished");
    EXPECT_DOUBLE_EQ(runs[0]["best_miou"].get<double>(), 0.625);
    const auto check = test::runCli("workspace check --json --workspace '" + ws.string() + "'");
    ASSERT_EQ(check.exitCode, 0) << check.output;
    EXPECT_EQ(nlohmann::json::parse(check.output)["integrity"], "ok");
    gui.reset();
    EXPECT_EQ(core::RunStore::open(ws, core::StoreAccess::ReadOnly)->steps(id).size(), 40u);
}

TEST(WorkspaceStore, GarbageDatabaseIsRepairedAtStartWithAMessage) {
    test::TempDir dir;
    const fs::path ws = dir / "ws";
    std::string id;
    {
        auto store = core::RunStore::open(ws);
        core::NewRun run;
        run.name = "before-the-crash";
        run.model = "unet-resnet18";
        run.experimentJson = "{}";
        id = store->createRun(run);
        store->appendStep(id, stepAt(1));
        store->appendEpoch(id, core::epochRecord(metrics(0.5), 1, 1, std::nullopt, 1), core::classRecords(metrics(0.5)),
                           {});
        store->updateStatus(id, core::RunStatus::Finished);
    }
    {
        std::ofstream garbage(core::workspaceDatabasePath(ws), std::ios::binary | std::ios::trunc);
        for (int i = 0; i < 4096; ++i) garbage.put(char((i * 131 + 7) & 0xff));
    }
    QString shown, summary;
    acceptNextMessageBox(&shown);
    EXPECT_TRUE(ui::prepareWorkspace(QString::fromStdString(ws.string()), nullptr, &summary));
    EXPECT_TRUE(shown.contains(QStringLiteral("moved aside"))) << shown.toStdString();
    EXPECT_TRUE(summary.contains(QStringLiteral("1 run recovered"))) << summary.toStdString();

    ui::RunsPanel panel(QString::fromStdString(ws.string()));
    ASSERT_EQ(panel.model()->rowCount(), 1);
    EXPECT_EQ(panel.model()->run(0).name, "before-the-crash");
    EXPECT_DOUBLE_EQ(panel.model()->run(0).bestMiou.value_or(-1), 0.5);

    // A healthy workspace opens without a word.
    EXPECT_TRUE(ui::prepareWorkspace(QString::fromStdString(ws.string()), nullptr, &summary));
    EXPECT_TRUE(summary.isEmpty()) << summary.toStdString();
}

TEST(WorkspaceStore, UnusableWorkspaceIsRefusedWithAMessage) {
    test::TempDir dir;
    {
        std::ofstream blocker(dir / "file");
        blocker << "x";
    }
    QString shown, summary;
    acceptNextMessageBox(&shown);
    EXPECT_FALSE(ui::prepareWorkspace(QString::fromStdString((dir / "file" / "ws").string()), nullptr, &summary));
    EXPECT_TRUE(shown.contains(QString::fromStdString((dir / "file" / "ws").string()))) << shown.toStdString();
}
