#include "segscope/ui/failure_gallery.h"

#include "prediction_text.h"
#include "segscope/ui/worker.h"

#include <QtWidgets>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <unordered_set>

namespace segscope::ui {

namespace {

constexpr int kGalleryPage = 48;
constexpr int kThumbnailSide = 120;

}  // namespace

// Draws the thumbnails of one page; each crosses to the GUI thread as a value.
class ThumbnailWorker : public Worker {
    Q_OBJECT
public:
    ThumbnailWorker(std::shared_ptr<const core::PredictionSet> set, LabelStyle style, std::vector<std::size_t> page)
        : set_(std::move(set)), style_(std::move(style)), page_(std::move(page)) {}

Q_SIGNALS:
    void thumbnail(int position, const QImage& image);

protected:
    void work() override {
        for (std::size_t position = 0; position < page_.size(); ++position) {
            if (cancelFlag()) return;
            QImage image;
            try {
                cv::Mat rgb = set_->loadImage(page_[position]);
                cv::Mat labels = set_->loadPrediction(page_[position]);
                if (rgb.size() != labels.size()) cv::resize(rgb, rgb, labels.size());
                const double scale = double(kThumbnailSide) / std::max(rgb.cols, rgb.rows);
                const cv::Size size(std::max(1, int(rgb.cols * scale)), std::max(1, int(rgb.rows * scale)));
                cv::resize(rgb, rgb, size, 0, 0, cv::INTER_AREA);
                cv::resize(labels, labels, size, 0, 0, cv::INTER_NEAREST);
                image = style_.render(rgb, labels);
            } catch (const std::exception&) {
                continue;  // the item keeps its text; opening it reports the error
            }
            Q_EMIT thumbnail(int(position), image);
        }
    }

private:
    std::shared_ptr<const core::PredictionSet> set_;
    LabelStyle style_;
    std::vector<std::size_t> page_;
};

std::vector<std::size_t> galleryIndices(const core::PredictionSet& set, GallerySort sort, GalleryFilter filter,
                                        int classIndex) {
    std::vector<std::size_t> order;
    switch (sort) {
        case GallerySort::MeanIouAscending:
            order = set.rankByMeanIou(core::SortOrder::Ascending);
            break;
        case GallerySort::MeanIouDescending:
            order = set.rankByMeanIou(core::SortOrder::Descending);
            break;
        case GallerySort::ClassIouAscending:
            order = set.rankByClassIou(classIndex, core::SortOrder::Ascending);
            break;
        case GallerySort::ClassIouDescending:
            order = set.rankByClassIou(classIndex, core::SortOrder::Descending);
            break;
        case GallerySort::ConfusedPixels:
            order = set.mostConfused(classIndex);
            break;
    }
    if (filter == GalleryFilter::All) return order;
    std::unordered_set<std::size_t> keep;
    if (filter == GalleryFilter::ContainsClass)
        for (std::size_t i : set.containingClass(classIndex)) keep.insert(i);
    else
        for (std::size_t i : set.mostConfused(classIndex)) keep.insert(i);
    std::vector<std::size_t> filtered;
    for (std::size_t i : order)
        if (keep.count(i)) filtered.push_back(i);
    return filtered;
}

FailureGallery::FailureGallery(QWidget* parent) : QWidget(parent) {
    auto* galleryLayout = new QVBoxLayout(this);
    auto* galleryControls = new QHBoxLayout;
    sort_ = new QComboBox;
    sort_->addItems({tr("mIoU, worst first"), tr("mIoU, best first"), tr("IoU of class, worst first"),
                     tr("IoU of class, best first"), tr("Pixels where class was confused")});
    filter_ = new QComboBox;
    filter_->addItems({tr("All images"), tr("Images containing class"), tr("Images where class was confused")});
    class_ = new QComboBox;
    more_ = new QPushButton(tr("More"));
    galleryControls->addWidget(new QLabel(tr("Sort")));
    galleryControls->addWidget(sort_);
    galleryControls->addWidget(new QLabel(tr("Show")));
    galleryControls->addWidget(filter_);
    galleryControls->addWidget(new QLabel(tr("Class")));
    galleryControls->addWidget(class_);
    galleryControls->addStretch(1);
    galleryControls->addWidget(more_);
    galleryLayout->addLayout(galleryControls);
    view_ = new QListWidget;
    view_->setViewMode(QListView::IconMode);
    view_->setIconSize(QSize(kThumbnailSide, kThumbnailSide));
    view_->setGridSize(QSize(kThumbnailSide + 24, kThumbnailSide + 44));
    view_->setResizeMode(QListView::Adjust);
    view_->setMovement(QListView::Static);
    view_->setWordWrap(true);
    galleryLayout->addWidget(view_, 1);

    const auto changed = [this] {
        setGallery(GallerySort(sort_->currentIndex()), GalleryFilter(filter_->currentIndex()),
                   std::max(0, class_->currentIndex()));
    };
    connect(sort_, &QComboBox::currentIndexChanged, this, changed);
    connect(filter_, &QComboBox::currentIndexChanged, this, changed);
    connect(class_, &QComboBox::currentIndexChanged, this, changed);
    connect(more_, &QPushButton::clicked, this, [this] {
        shown_ += kGalleryPage;
        rebuild();
    });
    connect(view_, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) { activate(view_->row(item)); });
    connect(view_, &QListWidget::itemClicked, this, [this](QListWidgetItem* item) { activate(view_->row(item)); });
}

FailureGallery::~FailureGallery() {
    Worker::cancelAndWait(thumbnails_);
}

void FailureGallery::setPredictions(std::shared_ptr<const core::PredictionSet> set, LabelStyle style) {
    set_ = std::move(set);
    style_ = std::move(style);
    style_.opacity = 0.5;
    {
        QSignalBlocker block(class_);
        class_->clear();
        if (set_) {
            for (const auto& name : set_->classNames()) class_->addItem(QString::fromStdString(name));
            class_->setCurrentIndex(set_->classes() > 1 ? 1 : 0);
        }
    }
    setGallery(GallerySort(sort_->currentIndex()), GalleryFilter(filter_->currentIndex()),
               std::max(0, class_->currentIndex()));
}

void FailureGallery::setStyle(LabelStyle style) {
    style_ = std::move(style);
    style_.opacity = 0.5;
    rebuild();
}

void FailureGallery::setGallery(GallerySort sort, GalleryFilter filter, int classIndex) {
    {
        QSignalBlocker a(sort_), b(filter_), c(class_);
        sort_->setCurrentIndex(int(sort));
        filter_->setCurrentIndex(int(filter));
        if (classIndex < class_->count()) class_->setCurrentIndex(classIndex);
    }
    list_.clear();
    if (set_ && set_->classes() > 0 && classIndex >= 0 && classIndex < set_->classes())
        list_ = galleryIndices(*set_, sort, filter, classIndex);
    shown_ = kGalleryPage;
    rebuild();
}

void FailureGallery::rebuild() {
    view_->clear();
    const quint64 generation = ++generation_;
    // The old page's worker stops after its current thumbnail.
    Worker::cancelAndWait(thumbnails_);
    thumbnails_ = nullptr;
    if (!set_) return;
    const int shown = std::min<int>(shown_, int(list_.size()));
    more_->setEnabled(shown < int(list_.size()));
    more_->setText(tr("More (%1 of %2 shown)").arg(shown).arg(list_.size()));
    const int classIndex = std::max(0, class_->currentIndex());
    const bool classSort = sort_->currentIndex() >= int(GallerySort::ClassIouAscending);
    const auto names = set_->classNames();
    std::vector<std::size_t> page(list_.begin(), list_.begin() + shown);
    for (std::size_t index : page) {
        QString text = QString::fromStdString(set_->image(index).id) + QLatin1Char('\n');
        if (sort_->currentIndex() == int(GallerySort::ConfusedPixels))
            text += tr("%1 px confused").arg(set_->confusedPixels(index, classIndex));
        else if (classSort)
            text += tr("%1 IoU %2")
                        .arg(QString::fromStdString(names[std::size_t(classIndex)]),
                             percentText(set_->imageClassIou(index, classIndex)));
        else
            text += tr("mIoU %1").arg(percentText(set_->imageMeanIou(index)));
        auto* item = new QListWidgetItem(text, view_);
        item->setData(Qt::UserRole, qulonglong(index));
        item->setTextAlignment(Qt::AlignHCenter | Qt::AlignTop);
    }
    if (page.empty()) return;
    thumbnails_ = Worker::start(new ThumbnailWorker(set_, style_, std::move(page)), this);
    connect(thumbnails_, &ThumbnailWorker::thumbnail, this, [this, generation](int position, const QImage& image) {
        if (generation != generation_) return;
        if (QListWidgetItem* item = view_->item(position)) item->setIcon(QIcon(QPixmap::fromImage(image)));
    });
}

void FailureGallery::activate(int row) {
    if (row < 0 || row >= view_->count()) return;
    Q_EMIT imageActivated(int(view_->item(row)->data(Qt::UserRole).toULongLong()));
}

}  // namespace segscope::ui

#include "failure_gallery.moc"
