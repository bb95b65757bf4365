// pybind11 bindings: the module pycodec._core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "blob.h"
#include "chunks.h"
#include "decode_ahead.h"
#include "decoder.h"
#include "errors.h"
#include "ffmpeg.h"
#include "frame_arrays.h"
#include "lzf.h"
#include "schema.h"

namespace py = pybind11;

namespace pycodec {
namespace {

py::object intern(const char* s) {
    return py::reinterpret_steal<py::object>(PyUnicode_InternFromString(s));
}

// 'I', 'P' or 'B' for an AVPictureType ('?' if unknown).
const char* type_name(int pict_type) {
    switch (pict_type) {
        case AV_PICTURE_TYPE_I:
        case AV_PICTURE_TYPE_SI: return "I";
        case AV_PICTURE_TYPE_P:
        case AV_PICTURE_TYPE_SP:
        case AV_PICTURE_TYPE_S: return "P";
        case AV_PICTURE_TYPE_B:
        case AV_PICTURE_TYPE_BI: return "B";
        default: return "?";
    }
}

uint32_t group_mask(const std::optional<std::vector<std::string>>& groups, bool want_decoded) {
    uint32_t mask = GROUP_ALL;
    if (groups) {
        mask = 0;
        for (const auto& g : *groups) mask |= group_bit(g);
    }
    return want_decoded ? (mask | GROUP_DECODED) : (mask & ~GROUP_DECODED);
}

class PyDecoder {
public:
    PyDecoder(const std::string& path, uint32_t export_flags, bool want_decoded,
              const std::optional<std::vector<std::string>>& groups, bool header, bool share,
              size_t ahead) {
        const uint32_t mask = group_mask(groups, want_decoded);  // validates the names first
        {
            py::gil_scoped_release release;
            dec_ = std::make_unique<Decoder>(path, export_flags, header);
            if (ahead)
                ahead_ = std::make_unique<DecodeAhead>(*dec_, ahead, (mask & GROUP_DECODED) != 0);
        }
        const int codec =
            dec_->codec().id == AV_CODEC_ID_HEVC ? AV_CI_CODEC_HEVC : AV_CI_CODEC_H264;
        // Frames of another size than the first (a size change mid-stream) are flagged and
        // returned at the first one's shapes.
        std::optional<PictureGeometry> stream;
        if (const StreamInfo& s = dec_->info(); s.format >= 0)
            stream = PictureGeometry{s.coded_width, s.coded_height,
                                     size_t(s.crop_top),   size_t(s.crop_bottom),
                                     size_t(s.crop_left),  size_t(s.crop_right),
                                     s.format};
        arrays_ = std::make_unique<FrameArrays>(mask, export_flags, codec, share, stream);
        for (const char* k : {"pts", "decode_index", "pkt_bytes", "key", "type", "poc", "flags",
                              "arrays"})
            keys_.push_back(intern(k));
        info_ = make_info(dec_->info());
        decodable_ = dec_->decodable();
    }

    // The next frame in display order as a dict, or None at the end.
    py::object read() {
        std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
        bool got;
        DecodeAhead::Item item;
        {
            py::gil_scoped_release release;
            lock.lock();
            // Frames decoded ahead come expanded (decode_ahead.h); here, as there, the expansion
            // comes before the decoder decodes on.
            got = ahead_ ? ahead_->pop(item) : dec_ && dec_->next();
            if (got && !ahead_) Blob::expand(dec_->frame());
        }
        if (!got) return py::none();
        if (ahead_) return frame_dict(*item.frame, item.pts, item.packet, item.errors);
        return frame_dict(dec_->frame(), dec_->pts(), dec_->packet_index(),
                          dec_->frame_error_flags());
    }

    // Decodes the next frame without building arrays; false at the end.
    bool skip() {
        std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
        py::gil_scoped_release release;
        lock.lock();
        if (ahead_) {
            DecodeAhead::Item item;
            return ahead_->pop(item);
        }
        return dec_ && dec_->next();
    }

    void close() {
        std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
        py::gil_scoped_release release;
        lock.lock();
        ahead_.reset();  // stops its thread before the decoder goes
        dec_.reset();
    }

    const py::dict& info() const { return info_; }
    uint32_t export_flags() const { return dec_ ? dec_->export_flags() : 0; }
    std::string last_error() const {
        if (ahead_) return ahead_->last_error();
        return dec_ ? dec_->last_error() : std::string();
    }
    bool ahead() const { return ahead_ != nullptr; }
    bool decodable() const { return decodable_; }
    bool closed() const { return !dec_; }

private:
    // The dict read() returns for a decoded frame.
    py::dict frame_dict(const AVFrame& f, int64_t pts, int64_t packet, uint32_t errors) {
        py::dict arrays;
        BlobMeta meta;
        const uint32_t flags = errors | arrays_->convert(f, arrays, meta);
        py::dict out;
        out[keys_[0]] = pts == AV_NOPTS_VALUE ? py::object(py::none()) : py::object(py::int_(pts));
        out[keys_[1]] = meta.present ? int64_t{meta.decode_index} : packet;
        out[keys_[2]] = f.pkt_size;
        out[keys_[3]] = py::bool_(f.key_frame != 0);
        out[keys_[4]] = type_name(meta.present ? meta.slice_type : f.pict_type);
        out[keys_[5]] = meta.present ? meta.poc : -1;
        out[keys_[6]] = flags;
        out[keys_[7]] = std::move(arrays);
        return out;
    }

    static py::dict make_info(const StreamInfo& s) {
        py::dict d;
        d["codec"] = s.codec;
        d["profile"] = s.profile;
        d["width"] = s.width;
        d["height"] = s.height;
        d["coded_width"] = s.coded_width;
        d["coded_height"] = s.coded_height;
        d["crop"] = py::make_tuple(s.crop_top, s.crop_bottom, s.crop_left, s.crop_right);
        d["bit_depth"] = s.bit_depth;
        d["chroma_format"] = s.chroma_format;
        d["pix_fmt"] = s.pix_fmt;
        d["frame_rate"] = py::make_tuple(s.frame_rate.num, s.frame_rate.den);
        d["time_base"] = py::make_tuple(s.time_base.num, s.time_base.den);
        d["nb_frames"] = s.nb_frames;
        d["duration_s"] = s.duration_s ? py::object(py::float_(*s.duration_s)) : py::none();
        d["ffmpeg"] = av_version_info();
        d["export_supported"] = s.export_supported;
        return d;
    }

    std::mutex mu_;
    std::unique_ptr<Decoder> dec_;
    std::unique_ptr<DecodeAhead> ahead_;  // after dec_: destroyed (its thread stopped) first
    std::unique_ptr<FrameArrays> arrays_;
    std::vector<py::object> keys_;
    py::dict info_;
    bool decodable_ = false;
};

// Test hook: runs the blob -> arrays conversion on a synthetic frame carrying blob.
py::tuple arrays_from_blob(const py::bytes& blob, int coded_width, int coded_height,
                           const std::tuple<int, int, int, int>& crop,
                           const std::vector<std::string>& groups, uint32_t export_flags,
                           bool share) {
    FramePtr f(av_frame_alloc());
    if (!f) throw std::bad_alloc();
    f->width = coded_width;
    f->height = coded_height;
    f->format = AV_PIX_FMT_YUV420P;
    std::tie(f->crop_top, f->crop_bottom, f->crop_left, f->crop_right) = crop;
    const std::string data = blob;
    if (!data.empty()) {
        AVFrameSideData* sd =
            av_frame_new_side_data(f.get(), AV_FRAME_DATA_CODEC_INTERNALS, data.size());
        if (!sd) throw std::bad_alloc();
        std::memcpy(sd->data, data.data(), data.size());
    }
    FrameArrays conv(group_mask(groups, false), export_flags, AV_CI_CODEC_H264, share);
    py::dict arrays;
    BlobMeta meta;
    const uint32_t flags = conv.convert(*f, arrays, meta);
    py::object m = py::none();
    if (meta.present)
        m = py::dict(py::arg("decode_index") = meta.decode_index, py::arg("poc") = meta.poc,
                     py::arg("type") = type_name(meta.slice_type));
    return py::make_tuple(flags, m, arrays);
}

void translate_exception(std::exception_ptr p) {
    try {
        if (p) std::rethrow_exception(p);
    } catch (const InputOSError& e) {
        py::object args = py::make_tuple(e.errnum(), e.what(), e.path());
        PyErr_SetObject(PyExc_OSError, args.ptr());
    } catch (const UnsupportedInput& e) {
        PyErr_SetString(PyExc_ValueError, e.what());
    }
}

}  // namespace
}  // namespace pycodec

PYBIND11_MODULE(_core, m) {
    using namespace pycodec;
    m.doc() = "pycodec core: demux, decode with the patched FFmpeg, export blob -> numpy.";
    py::register_exception_translator(&translate_exception);

    py::class_<PyDecoder>(m, "Decoder")
        .def(py::init<const std::string&, uint32_t, bool,
                      const std::optional<std::vector<std::string>>&, bool, bool, size_t>(),
             py::arg("path"), py::arg("export_flags") = 0, py::arg("want_decoded") = true,
             py::arg("groups") = py::none(), py::arg("header") = true, py::arg("share") = false,
             py::arg("ahead") = 0,
             "Open path; export_flags: EXPORT_* bits; groups: field groups to return "
             "(None: all); header: ask the decoder for POC/type/decode index even when "
             "exporting nothing (False: stock decoding); share: return exported arrays "
             "that need no cropping as read-only views of the frame's export buffer "
             "(kept alive by them) instead of copies; ahead: decode up to that many frames "
             "ahead in a thread of its own, without the GIL (0: decode in read()).")
        .def("read", &PyDecoder::read, "Next frame in display order as a dict, None at the end.")
        .def("skip", &PyDecoder::skip, "Decode the next frame without returning it.")
        .def("close", &PyDecoder::close, "Free the decoder; read() then returns None.")
        .def_property_readonly("info", &PyDecoder::info)
        .def_property_readonly("export_flags", &PyDecoder::export_flags)
        .def_property_readonly("last_error", &PyDecoder::last_error,
                               "The latest FFmpeg error message ('' if none).")
        .def_property_readonly("closed", &PyDecoder::closed)
        .def_property_readonly("ahead", &PyDecoder::ahead,
                               "Whether frames are decoded ahead in a thread.")
        .def_property_readonly("decodable", &PyDecoder::decodable,
                               "Whether a first frame was decoded when the file was opened "
                               "(False: the stream gives no frame at all).");

    m.def("ffmpeg_version", [] { return std::string(av_version_info()); },
          "Version of the (patched) FFmpeg linked into the module.");
    m.def(
        "pack_chunk",
        [](py::object arr, bool lzf) -> py::object {
            // One call per chunk for the HDF5 writer: None when every byte is zero (the chunk is
            // not written), else (data, filter_mask): LZF bytes and 0, or arr itself and 1 when LZF
            // would not shrink it (0 when lzf is false).
            Py_buffer view;
            if (PyObject_GetBuffer(arr.ptr(), &view, PyBUF_C_CONTIGUOUS) < 0)
                throw py::error_already_set();
            const auto* p = static_cast<const uint8_t*>(view.buf);
            const size_t n = size_t(view.len);
            // The buffer stays exported (view) and res is not shared yet: the scan and the
            // compression run without the GIL, so that a writer thread compresses while the
            // decoding thread decodes.
            bool zero = true;
            {
                py::gil_scoped_release release;
                size_t i = 0;
                for (; i + 8 <= n; i += 8) {
                    uint64_t w;
                    std::memcpy(&w, p + i, 8);
                    if (w) { zero = false; break; }
                }
                if (zero)
                    for (; i < n; ++i)
                        if (p[i]) { zero = false; break; }
            }
            if (zero) {
                PyBuffer_Release(&view);
                return py::none();
            }
            if (!lzf || n < 2) {
                PyBuffer_Release(&view);
                return py::make_tuple(arr, lzf ? 1 : 0);
            }
            PyObject* res = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(n - 1));
            if (!res) {
                PyBuffer_Release(&view);
                throw py::error_already_set();
            }
            // Bytes per row of the first axis (a frame's image row): the compressor tries the
            // row above first.
            const size_t row = view.ndim >= 2 && view.shape && view.shape[0] > 0
                                   ? n / size_t(view.shape[0])
                                   : 0;
            size_t m;
            {
                py::gil_scoped_release release;
                m = lzf_compress(p, n, reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(res)), n - 1,
                                 row);
            }
            PyBuffer_Release(&view);
            if (m == 0) {
                Py_DECREF(res);
                return py::make_tuple(arr, 1);
            }
            if (_PyBytes_Resize(&res, Py_ssize_t(m)) < 0) throw py::error_already_set();
            return py::make_tuple(py::reinterpret_steal<py::object>(res), 0);
        },
        py::arg("arr"), py::arg("lzf"),
        "None if the C-contiguous buffer is all zero, else (data, HDF5 filter mask) for a direct "
        "chunk write: LZF bytes (filter 32000) or the buffer itself when LZF would not shrink it.");
    bind_chunks(m);
    m.def("group_names", &group_names, "Field group names, 'frame' first.");
    m.def(
        "schema_arrays",
        [] {
            py::list out;
            out.append(py::make_tuple("decoded/y", "decoded"));
            out.append(py::make_tuple("decoded/u", "decoded"));
            out.append(py::make_tuple("decoded/v", "decoded"));
            const auto names = group_names();
            for (const auto& s : section_specs()) {
                if (s.extent == Extent::Internal) continue;
                for (const auto& g : names)
                    if (group_bit(g) == s.group) out.append(py::make_tuple(s.name, g));
            }
            return out;
        },
        "(array path, group) of every array the core can return.");

    m.def("_arrays_from_blob", &arrays_from_blob, py::arg("blob"), py::arg("coded_width"),
          py::arg("coded_height"), py::arg("crop"), py::arg("groups"), py::arg("export_flags"),
          py::arg("share") = false,
          "Test hook: (flags, header metadata, arrays) of a synthetic 4:2:0 frame carrying blob.");
    m.attr("BLOB_HEADER_SIZE") = sizeof(AVCodecInternalsHeader);
    m.attr("BLOB_SECTIONS") = int(AV_CI_SEC_NB);
    m.attr("BLOB_VERSION") = int(AV_CODEC_INTERNALS_VERSION);
    m.attr("BLOB_MAGIC") = AV_CODEC_INTERNALS_MAGIC;

    m.attr("EXPORT_MV") = int(AV_CI_EXPORT_MV);
    m.attr("EXPORT_PART") = int(AV_CI_EXPORT_PART);
    m.attr("EXPORT_QP") = int(AV_CI_EXPORT_QP);
    m.attr("EXPORT_PRED") = int(AV_CI_EXPORT_PRED);
    m.attr("EXPORT_RES") = int(AV_CI_EXPORT_RES);
    m.attr("EXPORT_RECON") = int(AV_CI_EXPORT_RECON);
    m.attr("EXPORT_COEF") = int(AV_CI_EXPORT_COEF);
    m.attr("EXPORT_LEVEL") = int(AV_CI_EXPORT_LEVEL);
    m.attr("EXPORT_QSTEP") = int(AV_CI_EXPORT_QSTEP);

    m.attr("FLAG_CORRUPT") = int(FLAG_CORRUPT);
    m.attr("FLAG_INCOMPLETE") = int(FLAG_INCOMPLETE);
    m.attr("FLAG_UNSUPPORTED") = int(FLAG_UNSUPPORTED);
    m.attr("FLAG_LOSSLESS") = int(FLAG_LOSSLESS);
    m.attr("FLAG_PCM") = int(FLAG_PCM);
    m.attr("FLAG_NO_EXPORT") = int(FLAG_NO_EXPORT);
    m.attr("FLAG_SIZE_CHANGED") = int(FLAG_SIZE_CHANGED);
}
