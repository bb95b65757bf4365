// The codecs pycodec decodes.  Adding one is one line in codecs.cpp.
#pragma once

#include <string>

extern "C" {
#include <libavcodec/codec_id.h>
}

namespace pycodec {

struct CodecSupport {
    AVCodecID id;
    const char* name;     // short name used in info() and HDF5 attributes
    const char* display;  // name used in messages
};

// The entry for id, or nullptr when pycodec does not decode it.
const CodecSupport* find_supported_codec(AVCodecID id);

// "H.264" or "H.264 and HEVC": the list used in error messages.
std::string supported_codecs_text();

}  // namespace pycodec
