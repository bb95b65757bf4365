#include "codecs.h"

#include <array>

namespace pycodec {
namespace {

constexpr std::array kSupported = {
    CodecSupport{AV_CODEC_ID_H264, "h264", "H.264"},
    CodecSupport{AV_CODEC_ID_HEVC, "hevc", "HEVC"},
};

}  // namespace

const CodecSupport* find_supported_codec(AVCodecID id) {
    for (const auto& c : kSupported)
        if (c.id == id) return &c;
    return nullptr;
}

std::string supported_codecs_text() {
    std::string out;
    for (size_t i = 0; i < kSupported.size(); ++i) {
        if (i) out += (i + 1 == kSupported.size()) ? " and " : ", ";
        out += kSupported[i].display;
    }
    return out;
}

}  // namespace pycodec
