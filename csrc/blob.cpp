#include "blob.h"

#include <stdexcept>
#include <string>

#include "schema.h"

namespace pycodec {
namespace {

[[noreturn]] void malformed(const std::string& what) {
    throw std::runtime_error("malformed codec internals side data: " + what +
                             " (the patched FFmpeg and pycodec._core are out of step)");
}

}  // namespace

size_t Blob::count(int id) const {
    const AVCodecInternalsSection& s = hdr_->sec[id];
    size_t n = 1;
    for (uint32_t d = 0; d < s.ndim; ++d) n *= s.dims[d];
    return n;
}

void Blob::expand(AVFrame& frame) {
    if (avcodec_expand_internals(&frame) < 0) malformed("its tables do not match the blob");
}

Blob Blob::of(const AVFrame& frame) {
    Blob b;
    const AVFrameSideData* sd = av_frame_get_side_data(&frame, AV_FRAME_DATA_CODEC_INTERNALS);
    if (!sd || !sd->data) return b;
    if (sd->size < sizeof(AVCodecInternalsHeader)) malformed("shorter than its header");
    const auto* hdr = reinterpret_cast<const AVCodecInternalsHeader*>(sd->data);
    if (hdr->magic != AV_CODEC_INTERNALS_MAGIC) malformed("bad magic");
    if (hdr->version != AV_CODEC_INTERNALS_VERSION)
        malformed("version " + std::to_string(hdr->version) + ", expected " +
                  std::to_string(AV_CODEC_INTERNALS_VERSION));
    if (hdr->header_size != sizeof(AVCodecInternalsHeader)) malformed("unexpected header size");

    b.hdr_ = hdr;
    b.base_ = sd->data;
    for (int id = 0; id < AV_CI_SEC_NB; ++id) {
        const AVCodecInternalsSection& s = hdr->sec[id];
        if (!s.offset) continue;
        const size_t esize = element_size(s.type);
        if (!esize || s.ndim < 1 || s.ndim > 4)
            malformed("section " + std::to_string(id) + " has a bad type or rank");
        const size_t bytes = b.count(id) * esize;
        if (s.offset < sizeof(AVCodecInternalsHeader) || s.offset > sd->size ||
            bytes > sd->size - s.offset)
            malformed("section " + std::to_string(id) + " lies outside the blob");
        if (s.offset % esize) malformed("section " + std::to_string(id) + " is misaligned");
    }
    return b;
}

}  // namespace pycodec
