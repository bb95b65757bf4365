// Schema pycodec/1: which export-blob section becomes which array, and its extent.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ffmpeg.h"

namespace pycodec {

// Field groups (dev contract, section 4); "frame" is implicit and always present.
enum GroupBit : uint32_t {
    GROUP_DECODED = 1u << 0,
    GROUP_PREDICTION = 1u << 1,
    GROUP_RESIDUAL = 1u << 2,
    GROUP_RECON = 1u << 3,
    GROUP_COEFFS = 1u << 4,
    GROUP_LEVELS = 1u << 5,
    GROUP_QSTEP = 1u << 6,
    GROUP_BLOCK = 1u << 7,
    GROUP_H264 = 1u << 8,
    GROUP_HEVC = 1u << 9,
    GROUP_ALL = (1u << 10) - 1,
};

// What a section covers, which fixes its shape.
enum class Extent {
    DisplayPlane,   // sample plane, cropped to the display window
    CodedPlane,     // sample plane at coded size
    Block4x4,       // (H4, W4[, comps]) per 4x4 luma block
    MacroBlock,     // (mb_h, mb_w[, comps])
    SubMacroBlock,  // (2 * mb_h, 2 * mb_w) per 8x8 luma block
    Blob,           // the shape the decoder declared (lists, per-CTB tables)
    Internal,       // bookkeeping (MB_DONE), never returned
};

struct SectionSpec {
    const char* name;  // schema path, e.g. "block/mv_l0"
    uint32_t group;    // GroupBit
    int type;          // AVCodecInternalsType for 8-bit video
    Extent extent;
    int plane;         // 0 luma, 1 Cb, 2 Cr (planes only)
    int comps;         // trailing dimension (1 = none)
    int codec;         // AVCodecInternalsCodec of a codec-specific extra, -1 for all codecs
};

// Indexed by AVCodecInternalsSectionId.
const std::array<SectionSpec, AV_CI_SEC_NB>& section_specs();

// Group name -> bit; the names "frame" (implicit) and the ten above.  Throws
// std::invalid_argument for an unknown name.
uint32_t group_bit(const std::string& name);
std::vector<std::string> group_names();

// Size in bytes of one element of an AVCodecInternalsType, 0 if invalid.
size_t element_size(uint32_t type);

}  // namespace pycodec
