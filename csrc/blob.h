// Finding and validating the AV_FRAME_DATA_CODEC_INTERNALS blob of a frame.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ffmpeg.h"

namespace pycodec {

class Blob {
public:
    // The frame's blob, or an invalid Blob when the frame carries none.  Throws
    // std::runtime_error when the blob is malformed (a bug in the FFmpeg patch).
    static Blob of(const AVFrame& frame);
    // Completes the frame's blob: the decoder leaves its block maps to the consumer
    // (avcodec_expand_internals). Once per frame, before Blob::of; needs no GIL.
    static void expand(AVFrame& frame);

    bool valid() const { return hdr_ != nullptr; }
    const AVCodecInternalsHeader& header() const { return *hdr_; }
    const AVCodecInternalsSection& section(int id) const { return hdr_->sec[id]; }
    bool has(int id) const { return hdr_->sec[id].offset != 0; }
    const uint8_t* data(int id) const { return base_ + hdr_->sec[id].offset; }
    // Number of elements of a present section (product of its dims).
    size_t count(int id) const;

private:
    const AVCodecInternalsHeader* hdr_ = nullptr;
    const uint8_t* base_ = nullptr;
};

}  // namespace pycodec
