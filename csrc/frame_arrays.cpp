#include "frame_arrays.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "blob.h"
#include "decoder.h"
#include "errors.h"
#include "schema.h"

namespace pycodec {
namespace {

int ceil_rshift(int v, int s) { return -((-v) >> s); }
int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The power of two nearest to x (>= 1).
int pow2_round(double x) { return x <= 1.0 ? 1 : 1 << static_cast<int>(std::lround(std::log2(x))); }
// The smallest power of two >= x (>= 1).
int pow2_ceil(int x) {
    int p = 1;
    while (p < x) p <<= 1;
    return p;
}

py::object interned(const char* s) {
    return py::reinterpret_steal<py::object>(PyUnicode_InternFromString(s));
}

bool is_plane(Extent e) { return e == Extent::DisplayPlane || e == Extent::CodedPlane; }

uint32_t frame_flags_of(uint32_t ci_flags) {
    uint32_t f = 0;
    if (ci_flags & AV_CI_FRAME_UNSUPPORTED) f |= FLAG_UNSUPPORTED;
    if (ci_flags & AV_CI_FRAME_LOSSLESS) f |= FLAG_LOSSLESS;
    if (ci_flags & AV_CI_FRAME_INCOMPLETE) f |= FLAG_INCOMPLETE;
    if (ci_flags & AV_CI_FRAME_PCM) f |= FLAG_PCM;
    return f;
}

std::string shape_text(const uint32_t* dims, size_t n) {
    std::string s = "(";
    for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + ")";
}

// Copies rows of row_bytes from a strided source into a dense destination.
void copy_rows(uint8_t* dst, const uint8_t* src, ptrdiff_t src_stride, size_t row_bytes,
               py::ssize_t rows) {
    if (src_stride == static_cast<ptrdiff_t>(row_bytes)) {
        std::memcpy(dst, src, row_bytes * rows);
        return;
    }
    for (py::ssize_t r = 0; r < rows; ++r, dst += row_bytes, src += src_stride)
        std::memcpy(dst, src, row_bytes);
}

// Which units (MBs/CTBs) were decoded and exported.
struct UnitGrid {
    const uint8_t* done = nullptr;  // nullptr: all done
    int rows = 0, cols = 0;
    int luma = 16;  // luma samples per unit side
};

// Zeroes, in a dense (rows, cols, cell_bytes) array whose element [0][0] is the
// section's element (row0, col0), the footprint of every unit not done; a unit
// spans cells_y x cells_x elements of the section.
void zero_undone(uint8_t* out, py::ssize_t rows, py::ssize_t cols, size_t cell_bytes, int row0,
                 int col0, int cells_y, int cells_x, const UnitGrid& units) {
    for (int uy = 0; uy < units.rows; ++uy) {
        const py::ssize_t r0 = std::max<py::ssize_t>(uy * cells_y - row0, 0);
        const py::ssize_t r1 = std::min<py::ssize_t>((uy + 1) * cells_y - row0, rows);
        if (r0 >= r1) continue;
        for (int ux = 0; ux < units.cols; ++ux) {
            if (units.done[uy * units.cols + ux]) continue;
            const py::ssize_t c0 = std::max<py::ssize_t>(ux * cells_x - col0, 0);
            const py::ssize_t c1 = std::min<py::ssize_t>((ux + 1) * cells_x - col0, cols);
            if (c0 >= c1) continue;
            for (py::ssize_t r = r0; r < r1; ++r)
                std::memset(out + (r * cols + c0) * cell_bytes, 0, (c1 - c0) * cell_bytes);
        }
    }
}

}  // namespace

// Array shape (up to 4 dims) without heap allocation.
struct FrameArrays::Shape {
    py::ssize_t dims[4] = {0, 0, 0, 0};
    int ndim = 0;

    Shape() = default;
    Shape(py::ssize_t rows, py::ssize_t cols) : dims{rows, cols, 0, 0}, ndim(2) {}
    void push_back(py::ssize_t d) { dims[ndim++] = d; }
    size_t size() const { return static_cast<size_t>(ndim); }
    py::ssize_t operator[](size_t i) const { return dims[i]; }
};

// Luma geometry of a frame decoded without cropping, and its chroma subsampling.
struct FrameArrays::Geometry {
    int coded_w = 0, coded_h = 0;  // picture buffer (luma)
    int top = 0, left = 0;         // display window origin
    int width = 0, height = 0;     // display size
    int log2_cw = 0, log2_ch = 0;
    int bit_depth = 8;

    int sw(int plane) const { return plane ? log2_cw : 0; }
    int sh(int plane) const { return plane ? log2_ch : 0; }

    static Geometry of(const AVFrame& f) { return of(PictureGeometry::of(f)); }

    static Geometry of(const PictureGeometry& p) {
        Geometry g;
        g.coded_w = p.coded_width;
        g.coded_h = p.coded_height;
        size_t l = p.crop_left, r = p.crop_right, t = p.crop_top, b = p.crop_bottom;
        if (l + r >= static_cast<size_t>(p.coded_width) ||
            t + b >= static_cast<size_t>(p.coded_height))
            l = r = t = b = 0;  // invalid crop: FFmpeg ignores it too
        g.left = static_cast<int>(l);
        g.top = static_cast<int>(t);
        g.width = p.coded_width - static_cast<int>(l + r);
        g.height = p.coded_height - static_cast<int>(t + b);
        if (const AVPixFmtDescriptor* d =
                av_pix_fmt_desc_get(static_cast<AVPixelFormat>(p.format))) {
            g.log2_cw = d->log2_chroma_w;
            g.log2_ch = d->log2_chroma_h;
            g.bit_depth = d->comp[0].depth;
        }
        return g;
    }

    // Shape of a section as the schema defines it; planes of DisplayPlane
    // sections at display size when display is true, else at coded size.
    Shape shape(const SectionSpec& s, bool display) const {
        Shape out;
        const int mb_w = ceil_div(coded_w, 16), mb_h = ceil_div(coded_h, 16);
        switch (s.extent) {
            case Extent::DisplayPlane:
                if (display) {
                    out = Shape(ceil_rshift(height, sh(s.plane)), ceil_rshift(width, sw(s.plane)));
                    break;
                }
                [[fallthrough]];
            case Extent::CodedPlane:
                out = Shape(ceil_rshift(coded_h, sh(s.plane)), ceil_rshift(coded_w, sw(s.plane)));
                break;
            case Extent::Block4x4: out = Shape(ceil_div(coded_h, 4), ceil_div(coded_w, 4)); break;
            case Extent::MacroBlock: out = Shape(mb_h, mb_w); break;
            case Extent::SubMacroBlock: out = Shape(2 * mb_h, 2 * mb_w); break;
            case Extent::Blob:
            case Extent::Internal: break;
        }
        if (s.comps > 1) out.push_back(s.comps);
        return out;
    }
};

PictureGeometry PictureGeometry::of(const AVFrame& f) {
    PictureGeometry p;
    p.coded_width = f.width;
    p.coded_height = f.height;
    p.crop_top = f.crop_top;
    p.crop_bottom = f.crop_bottom;
    p.crop_left = f.crop_left;
    p.crop_right = f.crop_right;
    p.format = f.format;
    return p;
}

bool PictureGeometry::operator==(const PictureGeometry& o) const {
    return coded_width == o.coded_width && coded_height == o.coded_height &&
           crop_top == o.crop_top && crop_bottom == o.crop_bottom &&
           crop_left == o.crop_left && crop_right == o.crop_right && format == o.format;
}

FrameArrays::FrameArrays(uint32_t groups, uint32_t export_flags, int codec, bool share,
                         std::optional<PictureGeometry> stream)
    : groups_(groups), export_flags_(export_flags), share_(share), stream_(stream) {
    const auto& specs = section_specs();
    for (int id = 0; id < AV_CI_SEC_NB; ++id) {
        const SectionSpec& s = specs[id];
        if (s.extent == Extent::Internal || !(s.group & groups_) ||
            (s.codec >= 0 && s.codec != codec))
            continue;
        keys_[id] = interned(s.name);
        if (export_flags_) sections_.push_back(id);
    }
    decoded_keys_ = {interned("decoded/y"), interned("decoded/u"), interned("decoded/v")};
    dtypes_ = {py::dtype::of<uint8_t>(),  py::dtype::of<int8_t>(),  py::dtype::of<uint16_t>(),
               py::dtype::of<int16_t>(),  py::dtype::of<uint32_t>(), py::dtype::of<int32_t>(),
               py::dtype::of<float>()};
}

py::array FrameArrays::new_array(uint32_t type, const Shape& shape) const {
    // numpy's C API directly: py::array's constructor costs about twice as much,
    // which shows at hundreds of small arrays per frame.
    static_assert(sizeof(Py_intptr_t) == sizeof(py::ssize_t), "numpy dims are ssize_t");
    auto& api = py::detail::npy_api::get();
    PyObject* descr = dtypes_.at(type).ptr();
    Py_INCREF(descr);  // stolen by PyArray_NewFromDescr
    PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, shape.ndim,
                                              const_cast<Py_intptr_t*>(shape.dims), nullptr,
                                              nullptr, 0, nullptr);
    if (!arr) throw py::error_already_set();
    return py::reinterpret_steal<py::array>(arr);
}

py::array FrameArrays::view_array(uint32_t type, const Shape& shape, const uint8_t* data,
                                  const py::object& base) const {
    auto& api = py::detail::npy_api::get();
    PyObject* descr = dtypes_.at(type).ptr();
    Py_INCREF(descr);  // stolen by PyArray_NewFromDescr
    const int flags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                      py::detail::npy_api::NPY_ARRAY_ALIGNED_;  // not writeable
    PyObject* arr = api.PyArray_NewFromDescr_(
        api.PyArray_Type_, descr, shape.ndim, const_cast<Py_intptr_t*>(shape.dims), nullptr,
        const_cast<uint8_t*>(data), flags, nullptr);
    if (!arr) throw py::error_already_set();
    if (api.PyArray_SetBaseObject_(arr, base.inc_ref().ptr()) < 0) {  // steals the reference
        Py_DECREF(arr);
        throw py::error_already_set();
    }
    return py::reinterpret_steal<py::array>(arr);
}

namespace {

// A capsule holding a reference to buf (released with the capsule).
py::object buffer_owner(AVBufferRef* buf) {
    AVBufferRef* ref = av_buffer_ref(buf);
    if (!ref) throw std::bad_alloc();
    return py::capsule(ref, "pycodec.AVBufferRef", [](PyObject* cap) {
        auto* r = static_cast<AVBufferRef*>(PyCapsule_GetPointer(cap, "pycodec.AVBufferRef"));
        av_buffer_unref(&r);
    });
}

}  // namespace

uint32_t FrameArrays::convert(const AVFrame& frame, py::dict& arrays, BlobMeta& meta) {
    const Blob blob = Blob::of(frame);
    meta = BlobMeta{};
    if (blob.valid()) {  // also present without export: header only
        const AVCodecInternalsHeader& h = blob.header();
        meta.present = true;
        meta.decode_index = h.decode_index;
        meta.poc = h.poc;
        meta.slice_type = h.slice_type;
    }
    if (stream_ && PictureGeometry::of(frame) != *stream_) {
        // Another size (or format) than the stream's: every array at the stream's shape, zero.
        const Geometry g = Geometry::of(*stream_);
        if (groups_ & GROUP_DECODED) add_decoded_zeros(g, arrays);
        for (int id : sections_) add_zeros(id, g, nullptr, arrays, true);
        return FLAG_SIZE_CHANGED;
    }
    const Geometry g = Geometry::of(frame);
    if (groups_ & GROUP_DECODED) add_decoded(frame, g, arrays);
    if (!export_flags_) return 0;
    if (blob.valid()) note_blob_shapes(blob);
    py::object owner;  // the blob's buffer, for views (share)
    if (share_ && blob.valid()) {
        const AVFrameSideData* sd =
            av_frame_get_side_data(&frame, AV_FRAME_DATA_CODEC_INTERNALS);
        if (sd && sd->buf && sd->data == sd->buf->data) owner = buffer_owner(sd->buf);
    }
    return add_exported(blob, g, arrays, owner);
}

void FrameArrays::add_decoded(const AVFrame& frame, const Geometry& g, py::dict& arrays) const {
    const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(frame.format));
    const uint64_t unusable = AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM |
                              AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_BE;
    const std::string name = d ? d->name : "unknown";
    if (!d || (d->flags & unusable))
        throw UnsupportedInput("decoded pixel format '" + name +
                               "' cannot be returned as Y/U/V planes; leave out the field "
                               "group 'decoded'");
    const int ncomp = std::min<int>(d->nb_components, 3);  // alpha is not returned
    for (int c = 0; c < ncomp; ++c) {
        const AVComponentDescriptor& comp = d->comp[c];
        const int bytes = comp.depth > 8 ? 2 : 1;
        if (comp.step != bytes || comp.offset || comp.shift)
            throw UnsupportedInput("decoded pixel format '" + name +
                                   "' is not planar; leave out the field group 'decoded'");
        const int sw = g.sw(c), sh = g.sh(c);
        const py::ssize_t rows = ceil_rshift(g.height, sh), cols = ceil_rshift(g.width, sw);
        py::array arr = new_array(bytes == 1 ? AV_CI_U8 : AV_CI_U16, Shape(rows, cols));
        const uint8_t* src = frame.data[comp.plane] +
                             static_cast<ptrdiff_t>(g.top >> sh) * frame.linesize[comp.plane] +
                             static_cast<ptrdiff_t>(g.left >> sw) * bytes;
        copy_rows(static_cast<uint8_t*>(arr.mutable_data()), src, frame.linesize[comp.plane],
                  static_cast<size_t>(cols) * bytes, rows);
        arrays[decoded_keys_[c]] = std::move(arr);
    }
}

void FrameArrays::add_decoded_zeros(const Geometry& g, py::dict& arrays) const {
    const uint32_t type = g.bit_depth > 8 ? AV_CI_U16 : AV_CI_U8;
    const AVPixFmtDescriptor* d =
        stream_ ? av_pix_fmt_desc_get(static_cast<AVPixelFormat>(stream_->format)) : nullptr;
    const int ncomp = d ? std::min<int>(d->nb_components, 3) : 3;  // as add_decoded
    for (int c = 0; c < ncomp; ++c) {
        py::array arr = new_array(type, Shape(ceil_rshift(g.height, g.sh(c)),
                                              ceil_rshift(g.width, g.sw(c))));
        std::memset(arr.mutable_data(), 0, arr.nbytes());
        arrays[decoded_keys_[c]] = std::move(arr);
    }
}

void FrameArrays::note_blob_shapes(const Blob& blob) {
    const auto& specs = section_specs();
    for (int id : sections_) {
        if (specs[id].extent != Extent::Blob || !blob.has(id)) continue;
        const AVCodecInternalsSection& sec = blob.section(id);
        BlobShape& b = blob_shapes_[id];
        b.ndim = std::min<uint32_t>(sec.ndim, 4);
        for (uint32_t i = 0; i < b.ndim; ++i) b.dims[i] = sec.dims[i];
    }
}

void FrameArrays::add_zeros(int id, const Geometry& g, const Blob* blob, py::dict& arrays,
                            bool stream_shape) const {
    const SectionSpec& s = section_specs()[id];
    uint32_t type = s.type;
    if (g.bit_depth > 8 && type == AV_CI_U8 && is_plane(s.extent)) type = AV_CI_U16;
    Shape shape = g.shape(s, true);
    if (s.extent == Extent::Blob) {
        if (stream_shape) {
            const BlobShape& b = blob_shapes_[id];
            if (!b.ndim) return;
            for (uint32_t i = 0; i < b.ndim; ++i) shape.push_back(b.dims[i]);
        } else {
            if (!blob || !blob->valid() || !blob->has(id)) return;
            const AVCodecInternalsSection& sec = blob->section(id);
            for (uint32_t i = 0; i < sec.ndim && i < 4; ++i) shape.push_back(sec.dims[i]);
        }
    }
    py::array arr = new_array(type, shape);
    std::memset(arr.mutable_data(), 0, arr.nbytes());
    arrays[keys_[id]] = std::move(arr);
}

uint32_t FrameArrays::add_exported(const Blob& blob, const Geometry& g, py::dict& arrays,
                                   const py::object& owner) const {
    if (!blob.valid()) {
        for (int id : sections_) add_zeros(id, g, nullptr, arrays);
        return FLAG_NO_EXPORT;
    }
    const AVCodecInternalsHeader& h = blob.header();
    uint32_t flags = frame_flags_of(h.frame_flags);
    if (flags & FLAG_UNSUPPORTED) {
        for (int id : sections_) add_zeros(id, g, &blob, arrays);
        return flags;
    }
    if (h.coded_width != g.coded_w || h.coded_height != g.coded_h)
        throw std::runtime_error(
            "codec internals cover " + std::to_string(h.coded_width) + "x" +
            std::to_string(h.coded_height) + " but the picture is " + std::to_string(g.coded_w) +
            "x" + std::to_string(g.coded_h) +
            " (the patched FFmpeg and pycodec._core are out of step)");

    UnitGrid units;
    if (blob.has(AV_CI_SEC_MB_DONE)) {
        const AVCodecInternalsSection& s = blob.section(AV_CI_SEC_MB_DONE);
        if (s.type != AV_CI_U8 || s.ndim != 2 || !s.dims[0] || !s.dims[1])
            throw std::runtime_error("codec internals: bad MB_DONE section");
        const uint8_t* done = blob.data(AV_CI_SEC_MB_DONE);
        if (std::memchr(done, 0, blob.count(AV_CI_SEC_MB_DONE))) {
            units.done = done;
            units.rows = static_cast<int>(s.dims[0]);
            units.cols = static_cast<int>(s.dims[1]);
            units.luma = pow2_ceil(ceil_div(h.coded_width, units.cols));
            flags |= FLAG_INCOMPLETE;
        }
    }

    const auto& specs = section_specs();
    for (int id : sections_) {
        const SectionSpec& spec = specs[id];
        if (!blob.has(id)) {  // asked for but not exported: zeros, flagged
            add_zeros(id, g, &blob, arrays);
            flags |= FLAG_NO_EXPORT;
            continue;
        }
        const AVCodecInternalsSection& sec = blob.section(id);
        const bool wide_samples = is_plane(spec.extent) && spec.type == AV_CI_U8 &&
                                  sec.type == AV_CI_U16;
        if (sec.type != static_cast<uint32_t>(spec.type) && !wide_samples)
            throw std::runtime_error(std::string("codec internals: section '") + spec.name +
                                     "' has element type " + std::to_string(sec.type) +
                                     ", expected " + std::to_string(spec.type));
        Shape want = g.shape(spec, false);
        if (spec.extent == Extent::Blob)
            for (uint32_t i = 0; i < sec.ndim && i < 4; ++i) want.push_back(sec.dims[i]);
        bool same = want.size() == sec.ndim;
        for (size_t i = 0; same && i < want.size(); ++i) same = want[i] == sec.dims[i];
        if (!same)
            throw std::runtime_error(std::string("codec internals: section '") + spec.name +
                                     "' has shape " + shape_text(sec.dims, sec.ndim) +
                                     " but the schema expects another for " +
                                     std::to_string(g.coded_w) + "x" + std::to_string(g.coded_h));

        const size_t esize = element_size(sec.type);
        const size_t inner = (sec.ndim > 2 ? sec.dims[2] : 1) * (sec.ndim > 3 ? sec.dims[3] : 1);
        const size_t cell_bytes = esize * inner;
        const uint8_t* src = blob.data(id);
        int row0 = 0, col0 = 0;
        py::array arr;
        const bool whole = !units.done || spec.extent == Extent::Blob;  // nothing to zero
        if (spec.extent == Extent::DisplayPlane) {
            const Shape out = g.shape(spec, true);
            row0 = g.top >> g.sh(spec.plane);
            col0 = g.left >> g.sw(spec.plane);
            if (owner && whole && out[1] == py::ssize_t(sec.dims[1])) {  // whole rows: contiguous
                arrays[keys_[id]] = view_array(
                    sec.type, out, src + static_cast<size_t>(row0) * sec.dims[1] * esize, owner);
                continue;
            }
            arr = new_array(sec.type, out);
            copy_rows(static_cast<uint8_t*>(arr.mutable_data()),
                      src + (static_cast<size_t>(row0) * sec.dims[1] + col0) * esize,
                      static_cast<ptrdiff_t>(sec.dims[1] * esize), out[1] * esize, out[0]);
        } else {
            if (owner && whole) {
                arrays[keys_[id]] = view_array(sec.type, want, src, owner);
                continue;
            }
            arr = new_array(sec.type, want);
            std::memcpy(arr.mutable_data(), src, blob.count(id) * esize);
        }
        if (units.done && spec.extent != Extent::Blob) {  // the decoder clears those
            // Luma samples per element (1 luma plane, 2 chroma, 4 block map, 16 MB map,
            // 8 sub-MB map); a unit spans luma / that elements.
            const int per_y = pow2_round(double(h.coded_height) / sec.dims[0]);
            const int per_x = pow2_round(double(h.coded_width) / sec.dims[1]);
            const int cells_y = std::max(1, units.luma / per_y);
            const int cells_x = std::max(1, units.luma / per_x);
            zero_undone(static_cast<uint8_t*>(arr.mutable_data()), arr.shape(0), arr.shape(1),
                        cell_bytes, row0, col0, cells_y, cells_x, units);
        }
        arrays[keys_[id]] = std::move(arr);
    }
    return flags;
}

}  // namespace pycodec
