// One decoded frame (+ its export blob) -> fresh numpy arrays under schema paths.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "ffmpeg.h"

namespace pycodec {

namespace py = pybind11;

class Blob;

// Per-frame metadata read from the blob header.
struct BlobMeta {
    bool present = false;
    int32_t decode_index = 0;
    int32_t poc = 0;
    int32_t slice_type = 0;  // AVPictureType
};

// What shapes a picture's arrays: its coded size, crop and pixel format (AVFrame fields, the
// frame decoded without cropping).
struct PictureGeometry {
    int coded_width = 0, coded_height = 0;
    size_t crop_top = 0, crop_bottom = 0, crop_left = 0, crop_right = 0;
    int format = -1;  // AVPixelFormat

    static PictureGeometry of(const AVFrame& f);
    bool operator==(const PictureGeometry& o) const;
    bool operator!=(const PictureGeometry& o) const { return !(*this == o); }
};

class FrameArrays {
public:
    // groups: GroupBit mask of what to return; export_flags: what the decoder was
    // asked to export (0: nothing); codec: AVCodecInternalsCodec of the stream,
    // which selects the codec-specific extras (h264/..., hevc/...). share: exported
    // arrays that lie in the blob as they are (not cropped, all units decoded) are
    // returned as read-only views of the frame's blob, which they keep alive (a
    // reference to its buffer), instead of copies. stream: the geometry of the
    // stream's first picture; a frame of another one (a size change mid-stream) is
    // flagged SIZE_CHANGED and its arrays are zeros of the stream's shapes, so that
    // every frame of a stream has the same array shapes.
    FrameArrays(uint32_t groups, uint32_t export_flags, int codec, bool share = false,
                std::optional<PictureGeometry> stream = std::nullopt);

    // Fills arrays with the wanted arrays of frame; returns the frame flags
    // contributed by the export and the geometry (INCOMPLETE, UNSUPPORTED,
    // SIZE_CHANGED, ...).  Needs the GIL.
    uint32_t convert(const AVFrame& frame, py::dict& arrays, BlobMeta& meta);

private:
    struct Geometry;
    struct Shape;

    void add_decoded(const AVFrame& frame, const Geometry& g, py::dict& arrays) const;
    // Zero planes of the decoded group at geometry g.
    void add_decoded_zeros(const Geometry& g, py::dict& arrays) const;
    // owner: the blob's buffer when arrays may be views of it (share), else None.
    uint32_t add_exported(const Blob& blob, const Geometry& g, py::dict& arrays,
                          const py::object& owner) const;
    // Zeros of the section's schema shape (export absent or unusable); sections
    // shaped by the decoder take their shape from blob, or with stream_shape from
    // the last frame of the stream's geometry, and are left out without either.
    void add_zeros(int id, const Geometry& g, const Blob* blob, py::dict& arrays,
                   bool stream_shape = false) const;
    // Notes the shapes the decoder declared for its sections in blob (a frame of the
    // stream's geometry).
    void note_blob_shapes(const Blob& blob);
    // A fresh, uninitialised C-contiguous array.
    py::array new_array(uint32_t type, const Shape& shape) const;
    // A read-only C-contiguous view of data, kept alive by base.
    py::array view_array(uint32_t type, const Shape& shape, const uint8_t* data,
                         const py::object& base) const;

    uint32_t groups_;
    uint32_t export_flags_;
    bool share_;
    std::optional<PictureGeometry> stream_;
    // Shapes of the decoder-shaped (Extent::Blob) sections at the stream's geometry;
    // ndim 0: not seen yet.
    struct BlobShape {
        uint32_t ndim = 0;
        uint32_t dims[4] = {0, 0, 0, 0};
    };
    std::array<BlobShape, AV_CI_SEC_NB> blob_shapes_{};
    std::vector<int> sections_;                // ids of the wanted sections
    std::array<py::object, AV_CI_SEC_NB> keys_;  // interned schema paths
    std::array<py::object, 3> decoded_keys_;
    std::vector<py::dtype> dtypes_;             // by AVCodecInternalsType
};

}  // namespace pycodec
