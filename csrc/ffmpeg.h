// FFmpeg C headers and RAII owners for the FFmpeg objects pycodec uses.
#pragma once

#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/codec_internals.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace pycodec {

struct FormatContextCloser {
    void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct CodecContextFreer {
    void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct PacketFreer {
    void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameFreer {
    void operator()(AVFrame* p) const { av_frame_free(&p); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextCloser>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFreer>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFreer>;
using FramePtr = std::unique_ptr<AVFrame, FrameFreer>;

// Owns an AVDictionary (options passed to the *_open functions).
class Dictionary {
public:
    Dictionary() = default;
    Dictionary(const Dictionary&) = delete;
    Dictionary& operator=(const Dictionary&) = delete;
    ~Dictionary() { av_dict_free(&dict_); }
    AVDictionary** get() { return &dict_; }
    void set(const char* key, const char* value) { av_dict_set(&dict_, key, value, 0); }
    void set(const char* key, int64_t value) { av_dict_set_int(&dict_, key, value, 0); }

private:
    AVDictionary* dict_ = nullptr;
};

// Text of an FFmpeg error code (av_err2str is a C-only macro).
inline std::string error_string(int err) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(err, buf, sizeof(buf));
    return buf;
}

}  // namespace pycodec
