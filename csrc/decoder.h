// Demux + decode of the best video stream of a file, one frame at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "codecs.h"
#include "ffmpeg.h"
#include "log_capture.h"

namespace pycodec {

// Static description of the stream (Decoder.info).
struct StreamInfo {
    std::string codec;    // "h264"
    std::string profile;  // "High", "" if unknown
    int width = 0, height = 0;              // display size
    int coded_width = 0, coded_height = 0;  // decoded picture buffer size
    int crop_top = 0, crop_bottom = 0, crop_left = 0, crop_right = 0;
    int bit_depth = 0;         // 0 if unknown
    std::string chroma_format; // "420", "422", "444", "400", "" if unknown
    std::string pix_fmt;       // "" if unknown
    int format = -1;           // AVPixelFormat of the first picture, -1 if none was decoded
    AVRational frame_rate{0, 1};
    AVRational time_base{0, 1};
    int64_t nb_frames = 0;
    std::optional<double> duration_s;
    bool export_supported = false;  // the decoder has the export_internals option
};

// Flag bits of frame/flags (dev contract, section 3).
enum FrameFlag : uint32_t {
    FLAG_CORRUPT = 1u << 0,
    FLAG_INCOMPLETE = 1u << 1,
    FLAG_UNSUPPORTED = 1u << 2,
    FLAG_LOSSLESS = 1u << 3,
    FLAG_PCM = 1u << 4,
    FLAG_NO_EXPORT = 1u << 5,
    FLAG_SIZE_CHANGED = 1u << 6,
};

class Decoder {
public:
    // Opens path and primes the first frame.  With export_flags 0 and want_header, a
    // patched decoder is still asked for the per-frame header (POC, slice type,
    // decode index) without any section.  Throws InputOSError or UnsupportedInput.
    Decoder(const std::string& path, uint32_t export_flags, bool want_header = true);
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;

    // Decodes the next frame in display order; false at the end of the stream.
    bool next();
    // Frees the FFmpeg objects; next() then returns false.
    void close();

    // The current frame (valid after next() returned true, until the next call).
    const AVFrame& frame() const { return *frame_; }
    AVFrame& frame() { return *frame_; }
    // FLAG_CORRUPT if FFmpeg reported an error for this frame or since the last one.
    uint32_t frame_error_flags() const { return frame_flags_; }
    // Position of the frame's packet among the packets sent to the decoder.
    int64_t packet_index() const { return frame_->reordered_opaque; }
    // pts of the frame (best effort; AV_NOPTS_VALUE if the stream has none).
    int64_t pts() const { return pts_; }

    const StreamInfo& info() const { return info_; }
    const CodecSupport& codec() const { return *codec_; }
    uint32_t export_flags() const { return export_flags_; }
    const std::string& last_error() const { return log_.last_error; }
    // Whether a first frame was decoded when the file was opened (false: the stream gives none).
    bool decodable() const { return decodable_; }

private:
    void open_input(const std::string& path);
    void open_decoder();
    void prime();
    bool decode_next();
    void feed_packet();
    // Whether packet (an index) was marked corrupt by the demuxer; forgets it.
    bool from_corrupt_packet(int64_t packet);

    uint32_t export_flags_;
    bool want_header_;
    const CodecSupport* codec_ = nullptr;
    FormatContextPtr fmt_;
    CodecContextPtr ctx_;
    PacketPtr pkt_;
    FramePtr frame_;
    int stream_index_ = -1;
    StreamInfo info_;
    LogSink log_;

    bool primed_ = false;      // frame_ holds a decoded frame not yet returned
    bool decodable_ = false;   // a first frame was decoded at open
    bool flushing_ = false;    // the end of input was sent to the decoder
    bool finished_ = false;    // the decoder returned EOF
    bool pending_corrupt_ = false;
    // Packets the demuxer marked corrupt (AV_PKT_FLAG_CORRUPT: cut short by the end of the
    // file, TS packets lost, ...), by index, ascending; the frame decoded from one is flagged.
    std::vector<int64_t> corrupt_packets_;
    uint64_t errors_seen_ = 0;
    int64_t packets_sent_ = 0;
    uint32_t frame_flags_ = 0;
    int64_t pts_ = AV_NOPTS_VALUE;
};

}  // namespace pycodec
