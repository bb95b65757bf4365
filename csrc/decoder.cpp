#include "decoder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "errors.h"

namespace pycodec {
namespace {

// export_internals value for "header only": POC, slice type and decode index, no sections.
constexpr int64_t kExportHeaderOnly = AV_CI_EXPORT_HEADER;

// Give up on a stream after this many consecutive failures of one call.
constexpr int kMaxConsecutiveReadErrors = 64;
constexpr int kMaxConsecutiveDecodeErrors = 1024;
// Packets after which a corrupt packet that gave no frame is forgotten.
constexpr int64_t kCorruptPacketHorizon = 64;

// The pixel formats whose pictures the patched decoders export.
bool is_exportable_format(AVCodecID codec, int fmt) {
    if (fmt == AV_PIX_FMT_YUV420P || fmt == AV_PIX_FMT_YUVJ420P) return true;
    return codec == AV_CODEC_ID_HEVC && fmt == AV_PIX_FMT_YUV420P10LE;
}

std::string chroma_format_of(const AVPixFmtDescriptor* d) {
    if (!d) return "";
    if (d->nb_components < 3) return "400";
    if (d->log2_chroma_w == 1 && d->log2_chroma_h == 1) return "420";
    if (d->log2_chroma_w == 1 && d->log2_chroma_h == 0) return "422";
    if (d->log2_chroma_w == 0 && d->log2_chroma_h == 0) return "444";
    return std::to_string(d->log2_chroma_w) + std::to_string(d->log2_chroma_h);
}

void set_format_info(StreamInfo& info, int fmt) {
    const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(fmt));
    if (!d) return;
    info.pix_fmt = d->name;
    info.bit_depth = d->comp[0].depth;
    info.chroma_format = chroma_format_of(d);
}

// Refuses what is not a regular file before FFmpeg opens it: opening a FIFO blocks until a writer
// comes, and a device reads forever (or as an empty file).
void check_regular_file(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return;  // avformat_open_input says why
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return;
    const char* what = S_ISFIFO(st.st_mode)   ? "a FIFO (named pipe)"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "a special file";
    throw UnsupportedInput(std::string("is ") + what +
                           ", not a video file; pycodec reads regular files: save the stream to "
                           "a file first");
}

// 0 when the file's first and last 64 KiB read back, else the errno of the failing read: tells
// a damaged container (the demuxer reports EIO for structures that run past the end of the file)
// from a file the system cannot read.
int read_errno(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    char buf[65536];
    int err = 0;
    struct stat st;
    if (::fstat(fd, &st) != 0) err = errno;
    for (off_t at : {off_t{0}, st.st_size > off_t(sizeof buf) ? st.st_size - off_t(sizeof buf) : 0}) {
        if (err) break;
        if (::pread(fd, buf, sizeof buf, at) < 0) err = errno;
    }
    ::close(fd);
    return err;
}

// detail: the demuxer's last error message, without its "[name @ 0x...] " prefix.
[[noreturn]] void throw_corrupt_container(std::string detail) {
    if (!detail.empty() && detail[0] == '[') {
        const size_t end = detail.find("] ");
        if (end != std::string::npos) detail.erase(0, end + 2);
    }
    throw UnsupportedInput("corrupt or truncated container" +
                           (detail.empty() ? std::string() : " (" + detail + ")") +
                           "; check that the file was copied or downloaded completely, or "
                           "re-encode it");
}

[[noreturn]] void throw_unexportable(int fmt) {
    const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(fmt));
    std::string name = d ? d->name : "unknown";
    std::string detail = d ? " (" + std::to_string(d->comp[0].depth) + "-bit " +
                                 chroma_format_of(d) + ")"
                           : "";
    throw UnsupportedInput("pixel format '" + name + "'" + detail +
                           " cannot be exported: pycodec exports 8-bit 4:2:0 H.264 and 8- or "
                           "10-bit 4:2:0 HEVC; re-encode with -pix_fmt yuv420p, or ask only "
                           "for the fields 'frame,decoded'");
}

}  // namespace

Decoder::Decoder(const std::string& path, uint32_t export_flags, bool want_header)
    : export_flags_(export_flags), want_header_(want_header) {
    install_log_callback();
    LogScope scope(log_);
    open_input(path);
    open_decoder();
    pkt_.reset(av_packet_alloc());
    frame_.reset(av_frame_alloc());
    if (!pkt_ || !frame_) throw std::bad_alloc();
    prime();
}

void Decoder::open_input(const std::string& path) {
    // "file:" keeps paths with a colon from being read as a protocol name.
    const std::string url = "file:" + path;
    check_regular_file(path);
    AVFormatContext* raw = nullptr;
    int ret = avformat_open_input(&raw, url.c_str(), nullptr, nullptr);
    if (ret < 0) {
        if (ret == AVERROR_INVALIDDATA || ret == AVERROR_EOF)
            throw UnsupportedInput(
                "not a video file (no supported container recognised); pass an MP4, MOV, "
                "MKV, AVI, MPEG-TS or raw H.264 or HEVC file");
        if (ret == AVERROR(EIO) && read_errno(path) == 0)  // the demuxer's EIO, not the system's
            throw_corrupt_container(log_.last_error);
        if (ret > -4096 && ret < 0) {  // AVERROR(errno)
            const int err = ret == AVERROR(EIO) ? read_errno(path) : -ret;
            throw InputOSError(err, std::strerror(err), path);
        }
        throw InputOSError(EIO, "cannot open: " + error_string(ret), path);
    }
    fmt_.reset(raw);

    ret = avformat_find_stream_info(fmt_.get(), nullptr);
    if (ret < 0 && fmt_->nb_streams == 0) {
        if (ret == AVERROR(EIO) || ret == AVERROR_INVALIDDATA || ret == AVERROR_EOF)
            throw_corrupt_container(log_.last_error);
        throw UnsupportedInput("cannot read the stream layout (" + error_string(ret) +
                               "); check that the file is a complete video file");
    }

    ret = av_find_best_stream(fmt_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (ret < 0)
        throw UnsupportedInput("no video stream; pass a file that contains a video track");
    stream_index_ = ret;
}

void Decoder::open_decoder() {
    AVStream* st = fmt_->streams[stream_index_];
    const AVCodecParameters* par = st->codecpar;
    codec_ = find_supported_codec(par->codec_id);
    if (!codec_)
        throw UnsupportedInput(std::string("codec '") + avcodec_get_name(par->codec_id) +
                               "' is not supported (pycodec decodes " +
                               supported_codecs_text() +
                               "); re-encode the video, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4");
    const AVCodec* dec = avcodec_find_decoder(par->codec_id);
    if (!dec)
        throw UnsupportedInput(std::string("no decoder for '") + codec_->name +
                               "' in this build; rebuild FFmpeg with `make ffmpeg`");

    if (export_flags_ && par->format >= 0 && !is_exportable_format(par->codec_id, par->format))
        throw_unexportable(par->format);

    ctx_.reset(avcodec_alloc_context3(dec));
    if (!ctx_) throw std::bad_alloc();
    int ret = avcodec_parameters_to_context(ctx_.get(), par);
    if (ret < 0) throw UnsupportedInput("bad codec parameters: " + error_string(ret));
    ctx_->thread_count = 1;
    ctx_->apply_cropping = 0;  // cropped here, identically for export and decoded planes
    ctx_->pkt_timebase = st->time_base;

    // Stock FFmpeg (or a codec without the patch) has no export option: frames then
    // carry no blob and are flagged NO_EXPORT.
    void* priv_class = const_cast<AVClass**>(&dec->priv_class);
    info_.export_supported = dec->priv_class && av_opt_find(priv_class, "export_internals", nullptr,
                                                            0, AV_OPT_SEARCH_FAKE_OBJ);
    Dictionary opts;
    opts.set("threads", int64_t{1});
    if (info_.export_supported && (export_flags_ || want_header_))
        opts.set("export_internals", export_flags_ ? int64_t{export_flags_} : kExportHeaderOnly);
    ret = avcodec_open2(ctx_.get(), dec, opts.get());
    if (ret < 0)
        throw UnsupportedInput("cannot open the " + std::string(codec_->name) +
                               " decoder: " + error_string(ret) + "; the stream may be damaged");

    info_.codec = codec_->name;
    const char* profile = avcodec_profile_name(par->codec_id, par->profile);
    info_.profile = profile ? profile : "";
    info_.width = par->width;
    info_.height = par->height;
    info_.frame_rate = av_guess_frame_rate(fmt_.get(), st, nullptr);
    info_.time_base = st->time_base;
    info_.nb_frames = st->nb_frames > 0 ? st->nb_frames : 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        info_.duration_s = st->duration * av_q2d(st->time_base);
    else if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0)
        info_.duration_s = fmt_->duration / double(AV_TIME_BASE);
    if (par->format >= 0) set_format_info(info_, par->format);
}

void Decoder::prime() {
    errors_seen_ = log_.errors;  // errors while probing belong to no frame
    if (!decode_next()) {
        // No picture at all: estimate the coded size from the macroblock grid.
        info_.coded_width = FFALIGN(info_.width, 16);
        info_.coded_height = FFALIGN(info_.height, 16);
        info_.crop_right = info_.coded_width - info_.width;
        info_.crop_bottom = info_.coded_height - info_.height;
        return;
    }
    primed_ = true;
    decodable_ = true;
    const AVFrame& f = *frame_;
    if (export_flags_ && !is_exportable_format(codec_->id, f.format))
        throw_unexportable(f.format);
    set_format_info(info_, f.format);
    info_.format = f.format;
    info_.coded_width = f.width;
    info_.coded_height = f.height;
    info_.crop_top = static_cast<int>(f.crop_top);
    info_.crop_bottom = static_cast<int>(f.crop_bottom);
    info_.crop_left = static_cast<int>(f.crop_left);
    info_.crop_right = static_cast<int>(f.crop_right);
    info_.width = f.width - info_.crop_left - info_.crop_right;
    info_.height = f.height - info_.crop_top - info_.crop_bottom;
}

void Decoder::close() {
    primed_ = false;
    finished_ = true;
    ctx_.reset();
    fmt_.reset();
    pkt_.reset();
    frame_.reset();
}

bool Decoder::next() {
    if (!ctx_) return false;
    if (primed_) {
        primed_ = false;
        return true;
    }
    LogScope scope(log_);
    return decode_next();
}

bool Decoder::decode_next() {
    av_frame_unref(frame_.get());
    int errors = 0;
    while (!finished_) {
        int ret = avcodec_receive_frame(ctx_.get(), frame_.get());
        if (ret >= 0) {
            const bool corrupt = pending_corrupt_ || log_.errors != errors_seen_ ||
                                 frame_->decode_error_flags != 0 ||
                                 (frame_->flags & AV_FRAME_FLAG_CORRUPT) ||
                                 from_corrupt_packet(frame_->reordered_opaque);
            frame_flags_ = corrupt ? uint32_t{FLAG_CORRUPT} : 0u;
            pending_corrupt_ = false;
            errors_seen_ = log_.errors;
            int64_t pts = frame_->pts;
            if (pts == AV_NOPTS_VALUE) pts = frame_->best_effort_timestamp;
            pts_ = pts;
            return true;
        }
        if (ret == AVERROR_EOF) {
            finished_ = true;
            break;
        }
        if (ret != AVERROR(EAGAIN)) {  // a decode error: note it and go on
            pending_corrupt_ = true;
            if (++errors > kMaxConsecutiveDecodeErrors) finished_ = true;
            continue;
        }
        if (flushing_) {  // nothing more can come
            finished_ = true;
            break;
        }
        feed_packet();
    }
    return false;
}

bool Decoder::from_corrupt_packet(int64_t packet) {
    if (corrupt_packets_.empty()) return false;
    // Frames come out within the decoder's reorder delay (at most 16 pictures) of their packet:
    // older entries are of packets that gave no frame.
    const auto old = std::lower_bound(corrupt_packets_.begin(), corrupt_packets_.end(),
                                      packets_sent_ - kCorruptPacketHorizon);
    corrupt_packets_.erase(corrupt_packets_.begin(), old);
    const auto it = std::lower_bound(corrupt_packets_.begin(), corrupt_packets_.end(), packet);
    if (it == corrupt_packets_.end() || *it != packet) return false;
    corrupt_packets_.erase(it);
    return true;
}

void Decoder::feed_packet() {
    int read_errors = 0;
    for (;;) {
        int ret = av_read_frame(fmt_.get(), pkt_.get());
        if (ret < 0) {
            // Damaged containers can fail one read and recover at the next packet.
            if (ret != AVERROR_EOF && ret != AVERROR_EXIT && !avio_feof(fmt_->pb) &&
                ++read_errors < kMaxConsecutiveReadErrors) {
                pending_corrupt_ = true;
                continue;
            }
            avcodec_send_packet(ctx_.get(), nullptr);  // flush the delayed pictures
            flushing_ = true;
            return;
        }
        if (pkt_->stream_index != stream_index_) {
            av_packet_unref(pkt_.get());
            read_errors = 0;
            continue;
        }
        if (pkt_->flags & AV_PKT_FLAG_CORRUPT) {
            // The demuxer knows the packet is damaged: flag its frame, and the next frame out
            // should the decoder drop it. Where a parser cuts the demuxer's packets into
            // pictures (MPEG-TS, raw), the flag of a damaged packet lands on the picture the
            // parser completes with it, mostly the one before the damaged one: flag the next
            // picture's frame too.
            corrupt_packets_.push_back(packets_sent_);
            if (av_stream_get_parser(fmt_->streams[stream_index_]))
                corrupt_packets_.push_back(packets_sent_ + 1);
            pending_corrupt_ = true;
        }
        ctx_->reordered_opaque = packets_sent_++;
        ret = avcodec_send_packet(ctx_.get(), pkt_.get());
        av_packet_unref(pkt_.get());
        if (ret < 0 && ret != AVERROR(EAGAIN)) pending_corrupt_ = true;  // packet dropped
        return;
    }
}

}  // namespace pycodec
