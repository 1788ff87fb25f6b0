#pragma once
// The dataset tab: browse a split's samples with their label overlays, and run the dataset check
// (in a worker) whose report shows a class-frequency chart and the problem list.
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/dataset_check.h"
#include "segscope/ui/worker.h"

#include <QPointer>
#include <QWidget>

#include <memory>

class QComboBox;
class QCustomPlot;
class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QSlider;

namespace segscope::ui {

class DatasetPanel : public QWidget {
    Q_OBJECT
public:
    explicit DatasetPanel(QString workspace, QWidget* parent = nullptr);
    ~DatasetPanel() override;

    // Opens a dataset split; shows the error in statusMessage() and returns false when unusable.
    bool openDataset(const core::DatasetSpec& spec);
    // Prepares the demo dataset in the workspace (generated in a worker when missing) and opens it.
    void openDemoDataset();
    // Starts a dataset check in a worker; checkFinished() fires on the GUI thread.
    void startCheck();
    bool checking() const { return bool(checkWorker_); }

    QListWidget* sampleList() const { return sampleList_; }
    QCustomPlot* frequencyPlot() const { return frequencyPlot_; }
    const core::DatasetReport& lastReport() const { return lastReport_; }

Q_SIGNALS:
    void statusMessage(const QString& text);
    void datasetOpened(int samples);
    void checkFinished(bool ok);

private:
    void buildUi();
    void showSample(int row);
    void showReport(const core::DatasetReport& report);
    void browseRoot();
    void openFromFields();

    QString workspace_;
    std::shared_ptr<const core::Dataset> dataset_;
    core::DatasetReport lastReport_;
    QPointer<TaskWorker> checkWorker_;
    QPointer<TaskWorker> demoWorker_;

    QComboBox* kind_ = nullptr;
    QLineEdit* root_ = nullptr;
    QComboBox* split_ = nullptr;
    QComboBox* petsMode_ = nullptr;
    QPushButton* checkButton_ = nullptr;
    QListWidget* sampleList_ = nullptr;
    QLabel* imageView_ = nullptr;
    QSlider* opacity_ = nullptr;
    QCustomPlot* frequencyPlot_ = nullptr;
    QPlainTextEdit* problems_ = nullptr;
    QLabel* summary_ = nullptr;
};

}  // namespace segscope::ui
