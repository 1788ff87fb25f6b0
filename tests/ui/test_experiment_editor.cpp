// Offscreen tests of the experiment editor: the parameter count at the dataset's class count, a
// run name that follows the architecture until edited, and fields shown only where they apply.
#include "segscope/core/data/demo_data.h"
#include "segscope/core/models/model.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/ui/experiment_editor.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QComboBox>
#include <QFormLayout>
#include <QLineEdit>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTest>

using namespace segscope;

namespace {

QString countOf(const std::string& model, int classes) {
    return QLocale().toString(qlonglong(core::countParameters(*core::createModel(model, classes))));
}

// Waits until the editor's count settles and returns its text.
QString settledCount(ui::ExperimentEditor& editor) {
    EXPECT_TRUE(QTest::qWaitFor(
        [&] { return !editor.isCounting() && !editor.parameterText().contains(QStringLiteral("counting")); }, 12000))
        << "the count did not settle";
    return editor.parameterText();
}

core::Experiment demoExperiment(const std::filesystem::path& root) {
    core::Experiment e;
    e.name = "demo-segformer-b0";
    e.dataset.kind = core::DataSource::Demo;
    e.dataset.root = root;
    e.model.id = "segformer-b0";
    e.training.epochs = 2;
    return e;
}

}  // namespace

TEST(ExperimentEditor, ParameterCountUsesTheDatasetsClasses) {
    test::TempDir dir;
    test::writeDemo(dir / "demo", 12, 32);
    ui::ExperimentEditor editor;
    editor.setExperiment(demoExperiment(dir / "demo"));
    EXPECT_EQ(settledCount(editor), QStringLiteral("%1 (5 classes, from the dataset)").arg(countOf("segformer-b0", 5)));
    // Another architecture is counted at the same 5 classes.
    auto* model = qobject_cast<QComboBox*>(editor.fieldWidget(QStringLiteral("model.id")));
    model->setCurrentIndex(model->findData(QStringLiteral("deeplabv3plus-resnet50")));
    EXPECT_EQ(settledCount(editor),
              QStringLiteral("%1 (5 classes, from the dataset)").arg(countOf("deeplabv3plus-resnet50", 5)));
    // model.classes wins over the dataset.
    core::Experiment e = demoExperiment(dir / "demo");
    e.model.classes = 3;
    editor.setExperiment(e);
    EXPECT_EQ(settledCount(editor), QStringLiteral("%1 (3 classes, model.classes)").arg(countOf("segformer-b0", 3)));
}

TEST(ExperimentEditor, RunNameFollowsTheArchitectureUntilEdited) {
    test::TempDir dir;
    ui::ExperimentEditor editor;
    editor.setExperiment(demoExperiment(dir / "demo"));
    auto* name = qobject_cast<QLineEdit*>(editor.fieldWidget(QStringLiteral("name")));
    auto* model = qobject_cast<QComboBox*>(editor.fieldWidget(QStringLiteral("model.id")));
    auto* kind = qobject_cast<QComboBox*>(editor.fieldWidget(QStringLiteral("dataset.kind")));
    EXPECT_EQ(name->text(), QStringLiteral("demo-segformer-b0"));
    model->setCurrentIndex(model->findData(QStringLiteral("deeplabv3plus-resnet50")));
    EXPECT_EQ(name->text(), QStringLiteral("demo-deeplabv3plus-resnet50"));
    kind->setCurrentText(QStringLiteral("voc"));
    EXPECT_EQ(name->text(), QStringLiteral("voc-deeplabv3plus-resnet50"));
    // Typed by the user: kept.
    name->clear();
    QTest::keyClicks(name, QStringLiteral("my baseline"));
    model->setCurrentIndex(model->findData(QStringLiteral("segformer-b0")));
    EXPECT_EQ(name->text(), QStringLiteral("my baseline"));
    EXPECT_EQ(editor.document()["name"], "my baseline");
    // A loaded experiment with its own name keeps it too.
    core::Experiment named = demoExperiment(dir / "demo");
    named.name = "lesson 3";
    editor.setExperiment(named);
    model->setCurrentIndex(model->findData(QStringLiteral("deeplabv3plus-resnet50")));
    EXPECT_EQ(name->text(), QStringLiteral("lesson 3"));
}

TEST(ExperimentEditor, FieldsAreShownOnlyForTheKindsTheyApplyTo) {
    test::TempDir dir;
    ui::ExperimentEditor editor;
    editor.setExperiment(demoExperiment(dir / "demo"));
    editor.show();
    QWidget* petsMode = editor.fieldWidget(QStringLiteral("dataset.pets_mode"));
    QWidget* voidToBackground = editor.fieldWidget(QStringLiteral("dataset.void_to_background"));
    auto* kind = qobject_cast<QComboBox*>(editor.fieldWidget(QStringLiteral("dataset.kind")));
    const struct {
        const char* kind;
        bool pets, voids;
    } cases[] = {{"demo", false, false}, {"voc", false, true}, {"pets", true, false}, {"folder", false, true}};
    for (const auto& c : cases) {
        kind->setCurrentText(QString::fromLatin1(c.kind));
        EXPECT_EQ(petsMode->isVisible(), c.pets) << c.kind;
        EXPECT_EQ(voidToBackground->isVisible(), c.voids) << c.kind;
    }
}

TEST(ExperimentEditor, PretrainedLoadReportAndMissingDatasetShowBeforeStart) {
    test::TempDir dir;
    test::writeDemo(dir / "demo", 12, 32);
    // Weights of another architecture: refused, naming keys, before any run starts.
    core::writeSafetensors(dir / "unet.safetensors", core::stateDict(*core::createModel("unet-resnet18", 5)));
    core::writeSafetensors(dir / "segformer.safetensors", core::stateDict(*core::createModel("segformer-b0", 5)));
    ui::ExperimentEditor editor;
    core::Experiment e = demoExperiment(dir / "demo");
    e.model.pretrained = dir / "unet.safetensors";
    editor.setExperiment(e);
    settledCount(editor);
    EXPECT_TRUE(editor.pretrainedReport().contains(QString::fromStdString((dir / "unet.safetensors").string())))
        << editor.pretrainedReport().toStdString();
    EXPECT_TRUE(editor.pretrainedReport().contains(QStringLiteral("encoder")))
        << editor.pretrainedReport().toStdString();
    // The model's own weights load whole.
    auto* pretrained = qobject_cast<QLineEdit*>(editor.fieldWidget(QStringLiteral("model.pretrained")));
    pretrained->setText(QString::fromStdString((dir / "segformer.safetensors").string()));
    ASSERT_TRUE(editor.isCounting()) << "an edit schedules a count";
    settledCount(editor);
    EXPECT_FALSE(editor.pretrainedReport().isEmpty());
    EXPECT_FALSE(editor.pretrainedReport().contains(QStringLiteral("refus")))
        << editor.pretrainedReport().toStdString();
    EXPECT_TRUE(editor.datasetProblem().isEmpty()) << editor.datasetProblem().toStdString();

    // A VOC root that does not exist is flagged as soon as it is entered.
    core::Experiment voc = demoExperiment(dir / "nowhere");
    voc.dataset.kind = core::DataSource::Voc;
    editor.setExperiment(voc);
    settledCount(editor);
    EXPECT_TRUE(editor.datasetProblem().contains(QString::fromStdString((dir / "nowhere").string())))
        << editor.datasetProblem().toStdString();
}

TEST(ExperimentEditor, FlagsInvalidFieldsWithTheCoreMessage) {
    ui::ExperimentEditor editor;
    core::Experiment e = demoExperiment("/tmp/somewhere");
    editor.setExperiment(e);
    ASSERT_TRUE(editor.experiment().has_value());
    EXPECT_TRUE(editor.fieldErrors().isEmpty());
    auto* batch = qobject_cast<QSpinBox*>(editor.fieldWidget(QStringLiteral("training.batch_size")));
    ASSERT_NE(batch, nullptr);
    batch->setValue(0);
    EXPECT_FALSE(editor.experiment().has_value());
    ASSERT_TRUE(editor.fieldErrors().contains(QStringLiteral("training.batch_size")));
    EXPECT_EQ(editor.fieldErrors().value(QStringLiteral("training.batch_size")),
              QStringLiteral("must be an integer >= 1, got 0"));
    EXPECT_FALSE(batch->styleSheet().isEmpty());
    EXPECT_EQ(batch->toolTip(), QStringLiteral("must be an integer >= 1, got 0"));
    batch->setValue(4);
    EXPECT_TRUE(editor.experiment().has_value());
    EXPECT_TRUE(batch->styleSheet().isEmpty());
}
