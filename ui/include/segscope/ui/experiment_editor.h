#pragma once
// Editor for the experiment file's main fields. Fields the form does not show are kept from the
// loaded experiment. Validation is the core's: invalid fields are flagged next to the field with
// the core's message before launch. GUI thread only; the parameter count is computed in a worker.
#include "segscope/core/experiment.h"
#include "segscope/ui/worker.h"

#include <nlohmann/json.hpp>

#include <QHash>
#include <QPointer>
#include <QTimer>
#include <QWidget>

#include <optional>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;

namespace segscope::ui {

class ExperimentEditor : public QWidget {
    Q_OBJECT
public:
    explicit ExperimentEditor(QWidget* parent = nullptr);
    ~ExperimentEditor() override;

    void setExperiment(const core::Experiment& experiment);
    // The edited experiment, or nothing when it does not validate (the fields are flagged).
    std::optional<core::Experiment> experiment();
    // The document as edited, before validation.
    nlohmann::json document() const;
    // Field path -> message of the last validation; empty when valid.
    const QHash<QString, QString>& fieldErrors() const { return errors_; }
    QWidget* fieldWidget(const QString& path) const { return fields_.value(path); }
    // The parameter count line ("3,715,429 (5 classes, from the dataset)") once counted.
    QString parameterText() const;
    // What loading model.pretrained into the model would do (the core's load report: what loads,
    // what stays unloaded outside the encoder and why), or why it is refused; empty without
    // pretrained weights. Known before the run starts.
    QString pretrainedReport() const;
    // Why the dataset cannot be opened as configured; empty when it opens.
    QString datasetProblem() const;
    // True while a count is running.
    bool isCounting() const { return bool(countWorker_) || countTimer_.isActive(); }
    // The name derived from the dataset kind and architecture ("demo-segformer-b0"), which the
    // Name field follows until the user edits it.
    QString derivedName() const;

Q_SIGNALS:
    void validityChanged(bool valid);
    // The parameter count was updated (parameterText()).
    void parametersCounted();

private:
    void addField(const QString& path, QWidget* widget);
    void validate();
    void updateParameterCount();
    void updateVisibleFields();
    void followDerivedName();

    struct Count {
        qlonglong parameters = -1;
        int classes = 0;
        QString source;  // where the class count came from
        QString datasetProblem;
        QString pretrainedReport;
        bool pretrainedRefused = false;
    };
    void showCount(const Count& count);

    nlohmann::json base_;
    QHash<QString, QWidget*> fields_;
    QHash<QString, QString> errors_;
    QLineEdit* name_;
    QComboBox* kind_;
    QLineEdit* root_;
    QLineEdit* trainSplit_;
    QLineEdit* valSplit_;
    QComboBox* petsMode_;
    QCheckBox* voidToBackground_;
    QComboBox* model_;
    QLabel* parameters_;
    QLabel* pretrainedReport_;
    QLabel* datasetProblem_;
    QLineEdit* pretrained_;
    QSpinBox* height_;
    QSpinBox* width_;
    QComboBox* resizeMode_;
    QCheckBox* flip_;
    QComboBox* optimizer_;
    QDoubleSpinBox* learningRate_;
    QDoubleSpinBox* weightDecay_;
    QComboBox* schedule_;
    QSpinBox* epochs_;
    QSpinBox* batch_;
    QComboBox* amp_;
    QComboBox* device_;
    QSpinBox* seed_;
    QSpinBox* workers_;
    QSpinBox* erfEvery_;
    QLabel* errorSummary_;
    QPointer<TaskWorker> countWorker_;
    QTimer countTimer_;
    QString countedKey_;
    QString derivedName_;  // what the Name field was derived to; empty: the user named the run
    class QFormLayout* form_ = nullptr;
};

}  // namespace segscope::ui
