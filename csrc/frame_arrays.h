// One decoded frame (+ its export blob) -> fresh numpy arrays under schema paths.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
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

class FrameArrays {
public:
    // groups: GroupBit mask of what to return; export_flags: what the decoder was
    // asked to export (0: nothing); codec: AVCodecInternalsCodec of the stream,
    // which selects the codec-specific extras (h264/..., hevc/...). share: exported
    // arrays that lie in the blob as they are (not cropped, all units decoded) are
    // returned as read-only views of the frame's blob, which they keep alive (a
    // reference to its buffer), instead of copies.
    FrameArrays(uint32_t groups, uint32_t export_flags, int codec, bool share = false);

    // Fills arrays with the wanted arrays of frame; returns the frame flags
    // contributed by the export (INCOMPLETE, UNSUPPORTED, ...).  Needs the GIL.
    uint32_t convert(const AVFrame& frame, py::dict& arrays, BlobMeta& meta) const;

private:
    struct Geometry;
    struct Shape;

    void add_decoded(const AVFrame& frame, const Geometry& g, py::dict& arrays) const;
    // owner: the blob's buffer when arrays may be views of it (share), else None.
    uint32_t add_exported(const Blob& blob, const Geometry& g, py::dict& arrays,
                          const py::object& owner) const;
    // Zeros of the section's schema shape (export absent or unusable); sections
    // shaped by the decoder take their shape from blob, and are left out without it.
    void add_zeros(int id, const Geometry& g, const Blob* blob, py::dict& arrays) const;
    // A fresh, uninitialised C-contiguous array.
    py::array new_array(uint32_t type, const Shape& shape) const;
    // A read-only C-contiguous view of data, kept alive by base.
    py::array view_array(uint32_t type, const Shape& shape, const uint8_t* data,
                         const py::object& base) const;

    uint32_t groups_;
    uint32_t export_flags_;
    bool share_;
    std::vector<int> sections_;                // ids of the wanted sections
    std::array<py::object, AV_CI_SEC_NB> keys_;  // interned schema paths
    std::array<py::object, 3> decoded_keys_;
    std::vector<py::dtype> dtypes_;             // by AVCodecInternalsType
};

}  // namespace pycodec
