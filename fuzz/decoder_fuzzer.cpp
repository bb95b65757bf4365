// libFuzzer harness: one patched FFmpeg decoder (FUZZ_CODEC_ID) with every export on.
//
// Per input: open the decoder (threads=1, export_internals = every AV_CI_EXPORT_* bit, no
// cropping, as pycodec decodes), split the input into packets with the codec's parser, decode,
// flush, and for every output frame expand and check the AV_FRAME_DATA_CODEC_INTERNALS blob:
// pycodec's own reader (csrc/blob.cpp) must accept it, every section must lie inside the side
// data without overlapping another and have the shape the schema (csrc/schema.cpp) gives it,
// and every byte of every section is read so that ASan sees any section reaching past the
// buffer.  Any inconsistency abort()s, so libFuzzer counts it as a crash.  docs/fuzzing.md.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "blob.h"
#include "schema.h"

#ifndef FUZZ_CODEC_ID
#error "build with -DFUZZ_CODEC_ID=AV_CODEC_ID_H264 or AV_CODEC_ID_HEVC"
#endif

namespace {

// Every export bit, AV_CI_EXPORT_MV (1 << 0) to AV_CI_EXPORT_HEADER (1 << 9).
constexpr int kAllExports = (AV_CI_EXPORT_HEADER << 1) - 1;
// Pictures larger than this are refused by the decoder (AVCodecContext.max_pixels): big
// pictures cost time, not coverage.  The seeds (fuzz/make_seeds.py) are at most 96x64.
constexpr int64_t kMaxPixels = 8192;
// Bound the work per input (packets sent to the decoder).
constexpr int kMaxPackets = 32;

[[noreturn]] void fail(const char* what, int detail = 0) {
    std::fprintf(stderr, "decoder_fuzzer: %s (%d)\n", what, detail);
    std::abort();
}

// Sink for the bytes read from the sections, so the reads are not optimised away.
volatile uint64_t g_sink;
// FUZZ_VERBOSE=1: decoder log and a line per input (frames, blobs, section bytes read).
bool g_verbose;
struct Counts {
    int frames, blobs;
    uint64_t bytes;
} g_counts;

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The shape pycodec expects for a section at coded size (csrc/frame_arrays.cpp); false for
// sections whose shape the decoder declares (Extent::Blob) or that are bookkeeping.
bool expected_shape(const pycodec::SectionSpec& s, const AVCodecInternalsHeader& h, uint32_t* dims,
                    uint32_t* ndim) {
    const int w = h.coded_width, hh = h.coded_height;
    const int cw = s.plane ? h.log2_chroma_w : 0, ch = s.plane ? h.log2_chroma_h : 0;
    const int mb_w = ceil_div(w, 16), mb_h = ceil_div(hh, 16);
    switch (s.extent) {
        case pycodec::Extent::DisplayPlane:
        case pycodec::Extent::CodedPlane:
            dims[0] = ceil_div(hh, 1 << ch);
            dims[1] = ceil_div(w, 1 << cw);
            break;
        case pycodec::Extent::Block4x4:
            dims[0] = ceil_div(hh, 4);
            dims[1] = ceil_div(w, 4);
            break;
        case pycodec::Extent::MacroBlock:
            dims[0] = mb_h;
            dims[1] = mb_w;
            break;
        case pycodec::Extent::SubMacroBlock:
            dims[0] = 2 * mb_h;
            dims[1] = 2 * mb_w;
            break;
        default:
            return false;
    }
    *ndim = 2;
    if (s.comps > 1) dims[(*ndim)++] = s.comps;
    return true;
}

void check_frame(AVFrame* frame) {
    ++g_counts.frames;
    if (avcodec_expand_internals(frame) < 0) fail("avcodec_expand_internals failed");
    if (av_frame_get_side_data(frame, AV_FRAME_DATA_CODEC_INTERNALS_TABLES))
        fail("tables left on the frame after the expansion");
    const AVFrameSideData* sd = av_frame_get_side_data(frame, AV_FRAME_DATA_CODEC_INTERNALS);
    if (!sd) return;  // allowed: pycodec flags the frame NO_EXPORT
    ++g_counts.blobs;
    if (!sd->data || sd->size < sizeof(AVCodecInternalsHeader)) fail("blob shorter than its header");

    // pycodec's reader first: it throws on what it would refuse.
    try {
        if (!pycodec::Blob::of(*frame).valid()) fail("pycodec::Blob rejected the blob");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "decoder_fuzzer: %s\n", e.what());
        fail("pycodec::Blob threw");
    }

    // Then our own walk.  Copy the header: the blob's alignment is the side data's.
    AVCodecInternalsHeader h;
    std::memcpy(&h, sd->data, sizeof(h));
    if (h.magic != AV_CODEC_INTERNALS_MAGIC || h.version != AV_CODEC_INTERNALS_VERSION ||
        h.header_size != sizeof(h))
        fail("bad header");
    if (h.codec != (FUZZ_CODEC_ID == AV_CODEC_ID_H264 ? AV_CI_CODEC_H264 : AV_CI_CODEC_HEVC))
        fail("wrong codec in the header", h.codec);
    if (h.exported & ~static_cast<uint32_t>(kAllExports)) fail("unknown export bits", h.exported);
    const bool unsupported = h.frame_flags & AV_CI_FRAME_UNSUPPORTED;
    if (!unsupported && (h.coded_width != frame->width || h.coded_height != frame->height))
        fail("header size differs from the frame's", h.coded_width);
    if (h.blocks_done < 0 || h.blocks_done > h.blocks_total) fail("blocks_done", h.blocks_done);

    struct Range {
        uint64_t begin, end;
    } ranges[AV_CI_SEC_NB];
    int nranges = 0;
    const auto& specs = pycodec::section_specs();
    uint64_t sum = 0;
    for (int id = 0; id < AV_CI_SEC_NB; ++id) {
        const AVCodecInternalsSection& s = h.sec[id];
        if (!s.offset) continue;
        const size_t esize = pycodec::element_size(s.type);
        if (!esize || s.ndim < 1 || s.ndim > 4) fail("bad section type or rank", id);
        uint64_t bytes = esize;
        for (uint32_t d = 0; d < s.ndim; ++d) {
            if (s.dims[d] && bytes > UINT64_MAX / s.dims[d]) fail("section size overflows", id);
            bytes *= s.dims[d];
        }
        if (s.offset < sizeof(h) || s.offset > sd->size || bytes > sd->size - s.offset)
            fail("section outside the side data", id);
        if (s.offset % esize) fail("misaligned section", id);
        ranges[nranges++] = {s.offset, s.offset + bytes};

        // Shape as pycodec reads it (planes may be 16-bit where the schema says 8).
        uint32_t want[4], nwant = 0;
        if (!unsupported && expected_shape(specs[id], h, want, &nwant)) {
            const bool wide = specs[id].type == AV_CI_U8 && s.type == AV_CI_U16;
            if (s.type != static_cast<uint32_t>(specs[id].type) && !wide)
                fail("section element type", id);
            if (s.ndim != nwant || !std::equal(want, want + nwant, s.dims))
                fail("section shape differs from the schema", id);
        }

        // Read every byte, a word at a time (ASan checks the range of each access).
        const uint8_t* p = sd->data + s.offset;
        uint64_t i = 0;
        for (uint64_t w; i + 8 <= bytes; i += 8) {
            std::memcpy(&w, p + i, 8);
            sum += w;
        }
        for (; i < bytes; ++i) sum += p[i];
    }
    g_sink = g_sink + sum;
    for (int i = 0; i < nranges; ++i) g_counts.bytes += ranges[i].end - ranges[i].begin;

    // Sections must not overlap.
    std::sort(ranges, ranges + nranges,
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (int i = 1; i < nranges; ++i)
        if (ranges[i].begin < ranges[i - 1].end) fail("overlapping sections", i);
}

// Send one packet (NULL: flush) and check every frame that comes out.
void decode(AVCodecContext* ctx, AVPacket* pkt, AVFrame* frame) {
    int ret = avcodec_send_packet(ctx, pkt);
    if (ret < 0 && ret != AVERROR(EAGAIN)) return;  // a decoding error: the input's fault
    while ((ret = avcodec_receive_frame(ctx, frame)) >= 0) {
        check_frame(frame);
        av_frame_unref(frame);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // The decoders' complaints about broken input are noise; FUZZ_VERBOSE=1 shows them.
    const char* verbose = std::getenv("FUZZ_VERBOSE");
    g_verbose = verbose && *verbose == '1';
    av_log_set_level(g_verbose ? AV_LOG_DEBUG : AV_LOG_PANIC);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const AVCodec* codec = avcodec_find_decoder(FUZZ_CODEC_ID);
    if (!codec) fail("decoder not built in");
    if (size > INT32_MAX / 2) return 0;

    AVCodecContext* ctx = avcodec_alloc_context3(codec);
    AVCodecParserContext* parser = av_parser_init(FUZZ_CODEC_ID);
    AVPacket* pkt = av_packet_alloc();
    AVFrame* frame = av_frame_alloc();
    // libFuzzer's buffer has no padding; the parser reads up to AV_INPUT_BUFFER_PADDING_SIZE
    // bytes past its input, which the API allows.
    auto* buf = static_cast<uint8_t*>(av_malloc(size + AV_INPUT_BUFFER_PADDING_SIZE));
    AVDictionary* opts = nullptr;
    if (!ctx || !parser || !pkt || !frame || !buf) fail("out of memory");
    std::memcpy(buf, data, size);
    std::memset(buf + size, 0, AV_INPUT_BUFFER_PADDING_SIZE);

    ctx->thread_count = 1;
    ctx->max_pixels = kMaxPixels;
    ctx->apply_cropping = 0;  // pycodec reads the coded picture
    av_dict_set_int(&opts, "export_internals", kAllExports, 0);
    if (avcodec_open2(ctx, codec, &opts) >= 0) {
        if (av_dict_count(opts)) fail("export_internals not taken by the decoder");
        const uint8_t* in = buf;
        int left = static_cast<int>(size), packets = 0;
        for (bool flushing = false; packets < kMaxPackets;) {
            uint8_t* out = nullptr;
            int out_size = 0;
            // An empty input flushes the parser's last packet.
            const int used = av_parser_parse2(parser, ctx, &out, &out_size, flushing ? nullptr : in,
                                              flushing ? 0 : left, AV_NOPTS_VALUE, AV_NOPTS_VALUE, 0);
            if (used < 0) break;
            in += used;
            left -= used;
            if (out_size > 0) {
                pkt->data = out;  // not reference-counted: avcodec_send_packet copies it
                pkt->size = out_size;
                decode(ctx, pkt, frame);
                ++packets;
            }
            if (flushing) break;
            if (left <= 0 || (!used && !out_size)) flushing = true;
        }
        decode(ctx, nullptr, frame);  // drain the decoder
    }

    if (g_verbose)
        std::fprintf(stderr, "decoder_fuzzer: %zu bytes, %d frames, %d blobs, %llu section bytes\n", size,
                     g_counts.frames, g_counts.blobs, static_cast<unsigned long long>(g_counts.bytes));
    g_counts = {};
    av_dict_free(&opts);
    av_free(buf);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    av_parser_close(parser);
    avcodec_free_context(&ctx);
    return 0;
}
