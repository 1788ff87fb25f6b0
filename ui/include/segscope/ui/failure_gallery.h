#pragma once
// The Predictions tab's failure gallery: thumbnails with overlays, sorted by per-image IoU
// (overall or one class) or by the pixels where a class was confused, filtered to images
// containing a class or where it was confused, a page at a time; a click opens the image.
// Thumbnails are drawn by a Worker (worker.h) off the GUI thread, a page at a time, so the masks
// stay on disk; a new list cancels the drawing of the old one. GUI thread only.
#include "segscope/core/analysis/predictions.h"
#include "segscope/ui/label_style.h"

#include <QPointer>
#include <QWidget>

#include <memory>
#include <vector>

class QComboBox;
class QListWidget;
class QPushButton;

namespace segscope::ui {

class ThumbnailWorker;

enum class GallerySort { MeanIouAscending, MeanIouDescending, ClassIouAscending, ClassIouDescending, ConfusedPixels };
enum class GalleryFilter { All, ContainsClass, ClassConfused };

// The gallery's list for a prediction set: `sort` orders the images (the class sorts use
// `classIndex` and leave out images where the class has union 0; ConfusedPixels lists
// mostConfused(classIndex)), then `filter` keeps those containing the class (ground truth) or
// where it was confused (confusedPixels > 0), preserving the order.
std::vector<std::size_t> galleryIndices(const core::PredictionSet& set, GallerySort sort, GalleryFilter filter,
                                        int classIndex);

class FailureGallery : public QWidget {
    Q_OBJECT
public:
    explicit FailureGallery(QWidget* parent = nullptr);
    ~FailureGallery() override;  // cancels the thumbnails and waits for their worker

    // A new set (or none): its classes in the class picker (class 1 chosen when there is one),
    // the list rebuilt with the chosen sort and filter. Thumbnails use `style`'s colours and
    // shown classes, blended at half opacity.
    void setPredictions(std::shared_ptr<const core::PredictionSet> set, LabelStyle style);
    // New colours or shown classes: the thumbnails are drawn again.
    void setStyle(LabelStyle style);
    void setGallery(GallerySort sort, GalleryFilter filter, int classIndex);
    const std::vector<std::size_t>& list() const { return list_; }
    QListWidget* listWidget() const { return view_; }
    // Opens the image of `row` (emits imageActivated).
    void activate(int row);

Q_SIGNALS:
    void imageActivated(int index);

private:
    void rebuild();

    std::shared_ptr<const core::PredictionSet> set_;
    LabelStyle style_;
    std::vector<std::size_t> list_;
    int shown_ = 0;
    quint64 generation_ = 0;  // bumped on every rebuild; thumbnails of an older one are dropped
    QPointer<ThumbnailWorker> thumbnails_;

    QComboBox* sort_ = nullptr;
    QComboBox* filter_ = nullptr;
    QComboBox* class_ = nullptr;
    QListWidget* view_ = nullptr;
    QPushButton* more_ = nullptr;
};

}  // namespace segscope::ui
