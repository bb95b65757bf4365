#include "schema.h"

#include <stdexcept>

namespace pycodec {
namespace {

using E = Extent;

constexpr SectionSpec plane(const char* name, uint32_t group, int type, Extent e, int p) {
    return {name, group, type, e, p, 1, -1};
}
constexpr SectionSpec block(const char* name, uint32_t group, int type, int comps = 1) {
    return {name, group, type, E::Block4x4, 0, comps, -1};
}
constexpr SectionSpec h264(const char* name, int type, Extent e, int comps = 1) {
    return {name, GROUP_H264, type, e, 0, comps, AV_CI_CODEC_H264};
}
constexpr SectionSpec hevc(const char* name, int type, Extent e) {
    return {name, GROUP_HEVC, type, e, 0, 1, AV_CI_CODEC_HEVC};
}

constexpr std::array<SectionSpec, AV_CI_SEC_NB> kSpecs = {{
    plane("prediction/y", GROUP_PREDICTION, AV_CI_U8, E::DisplayPlane, 0),
    plane("prediction/u", GROUP_PREDICTION, AV_CI_U8, E::DisplayPlane, 1),
    plane("prediction/v", GROUP_PREDICTION, AV_CI_U8, E::DisplayPlane, 2),
    plane("residual/y", GROUP_RESIDUAL, AV_CI_I16, E::DisplayPlane, 0),
    plane("residual/u", GROUP_RESIDUAL, AV_CI_I16, E::DisplayPlane, 1),
    plane("residual/v", GROUP_RESIDUAL, AV_CI_I16, E::DisplayPlane, 2),
    plane("recon/y", GROUP_RECON, AV_CI_U8, E::DisplayPlane, 0),
    plane("recon/u", GROUP_RECON, AV_CI_U8, E::DisplayPlane, 1),
    plane("recon/v", GROUP_RECON, AV_CI_U8, E::DisplayPlane, 2),
    plane("coeffs/y", GROUP_COEFFS, AV_CI_I32, E::CodedPlane, 0),
    plane("coeffs/u", GROUP_COEFFS, AV_CI_I32, E::CodedPlane, 1),
    plane("coeffs/v", GROUP_COEFFS, AV_CI_I32, E::CodedPlane, 2),
    plane("levels/y", GROUP_LEVELS, AV_CI_I32, E::CodedPlane, 0),
    plane("levels/u", GROUP_LEVELS, AV_CI_I32, E::CodedPlane, 1),
    plane("levels/v", GROUP_LEVELS, AV_CI_I32, E::CodedPlane, 2),
    plane("qstep/y", GROUP_QSTEP, AV_CI_F32, E::CodedPlane, 0),
    plane("qstep/u", GROUP_QSTEP, AV_CI_F32, E::CodedPlane, 1),
    plane("qstep/v", GROUP_QSTEP, AV_CI_F32, E::CodedPlane, 2),
    block("block/mv_l0", GROUP_BLOCK, AV_CI_I16, 2),
    block("block/mv_l1", GROUP_BLOCK, AV_CI_I16, 2),
    block("block/ref_l0", GROUP_BLOCK, AV_CI_I8),
    block("block/ref_l1", GROUP_BLOCK, AV_CI_I8),
    block("block/ref_poc_l0", GROUP_BLOCK, AV_CI_I32),
    block("block/ref_poc_l1", GROUP_BLOCK, AV_CI_I32),
    block("block/qp_y", GROUP_BLOCK, AV_CI_I8),
    block("block/qp_cb", GROUP_BLOCK, AV_CI_I8),
    block("block/qp_cr", GROUP_BLOCK, AV_CI_I8),
    block("block/mode", GROUP_BLOCK, AV_CI_U8),
    block("block/cu_log2", GROUP_BLOCK, AV_CI_U8),
    block("block/pu_w", GROUP_BLOCK, AV_CI_U8),
    block("block/pu_h", GROUP_BLOCK, AV_CI_U8),
    block("block/tu_log2", GROUP_BLOCK, AV_CI_U8),
    block("block/tkind", GROUP_BLOCK, AV_CI_U8),
    block("block/intra_mode", GROUP_BLOCK, AV_CI_U8),
    h264("h264/mb_type", AV_CI_U32, E::MacroBlock),
    h264("h264/cbp", AV_CI_U8, E::MacroBlock),
    h264("h264/chroma_pred_mode", AV_CI_U8, E::MacroBlock),
    h264("h264/sub_mb_type", AV_CI_U32, E::SubMacroBlock),
    h264("h264/dc_qmul", AV_CI_I32, E::MacroBlock, 3),
    {"", 0, AV_CI_U16, E::Internal, 0, 1, -1},  // AV_CI_SEC_H264_SLICE
    {"", 0, AV_CI_U8, E::Internal, 0, 1, -1},  // AV_CI_SEC_MB_DONE
    hevc("hevc/cu", AV_CI_I32, E::Blob),
    hevc("hevc/tu", AV_CI_I32, E::Blob),
    hevc("hevc/counts", AV_CI_I32, E::Blob),
    hevc("hevc/sao", AV_CI_I16, E::Blob),
    hevc("hevc/bs_v", AV_CI_U8, E::Block4x4),
    hevc("hevc/bs_h", AV_CI_U8, E::Block4x4),
}};

struct NamedGroup {
    const char* name;
    uint32_t bit;
};
constexpr NamedGroup kGroups[] = {
    {"frame", 0},
    {"decoded", GROUP_DECODED},
    {"prediction", GROUP_PREDICTION},
    {"residual", GROUP_RESIDUAL},
    {"recon", GROUP_RECON},
    {"coeffs", GROUP_COEFFS},
    {"levels", GROUP_LEVELS},
    {"qstep", GROUP_QSTEP},
    {"block", GROUP_BLOCK},
    {"h264", GROUP_H264},
    {"hevc", GROUP_HEVC},
};

}  // namespace

static_assert(AV_CI_SEC_HEVC_BS_H == AV_CI_SEC_NB - 1, "schema table out of step with the header");

const std::array<SectionSpec, AV_CI_SEC_NB>& section_specs() { return kSpecs; }

uint32_t group_bit(const std::string& name) {
    for (const auto& g : kGroups)
        if (name == g.name) return g.bit;
    throw std::invalid_argument("unknown field group '" + name + "'");
}

std::vector<std::string> group_names() {
    std::vector<std::string> out;
    for (const auto& g : kGroups) out.emplace_back(g.name);
    return out;
}

size_t element_size(uint32_t type) {
    switch (type) {
        case AV_CI_U8:
        case AV_CI_I8: return 1;
        case AV_CI_U16:
        case AV_CI_I16: return 2;
        case AV_CI_U32:
        case AV_CI_I32:
        case AV_CI_F32: return 4;
        default: return 0;
    }
}

}  // namespace pycodec
