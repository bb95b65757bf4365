#include "chunks.h"

#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "lzf.h"

namespace pycodec {

bool all_zero(const uint8_t* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        if (w) return false;
    }
    for (; i < n; ++i)
        if (p[i]) return false;
    return true;
}

namespace {

// Buffers exported by Python objects, released on scope exit.
class BufferViews {
public:
    BufferViews() = default;
    BufferViews(const BufferViews&) = delete;
    BufferViews& operator=(const BufferViews&) = delete;
    ~BufferViews() {
        for (auto& v : views_) PyBuffer_Release(&v);
    }
    void reserve(size_t n) { views_.reserve(n); }
    // A C-contiguous view of obj with its format and shape; when obj is not C-contiguous it is
    // replaced by a contiguous copy (numpy.ascontiguousarray), which the caller keeps alive.
    const Py_buffer& get(py::object& obj) {
        Py_buffer v;
        const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
        if (PyObject_GetBuffer(obj.ptr(), &v, flags) < 0) {
            PyErr_Clear();
            obj = py::module_::import("numpy").attr("ascontiguousarray")(obj);
            if (PyObject_GetBuffer(obj.ptr(), &v, flags) < 0) throw py::error_already_set();
        }
        views_.push_back(v);
        return views_.back();
    }

private:
    std::vector<Py_buffer> views_;
};

// (data, filter mask) of a chunk of n bytes at in, compressed with LZF when lzf (mask 0), or
// stored raw (mask 1 under lzf, 0 otherwise); raw is the object to return for a raw chunk
// (nullptr: a new bytes copy of in). None when every byte is zero. The scan and the compression
// run without the GIL; in must stay valid meanwhile.
py::object pack_bytes(const uint8_t* in, size_t n, bool lzf, size_t row, const py::object* raw) {
    bool zero;
    {
        py::gil_scoped_release release;
        zero = all_zero(in, n);
    }
    if (zero) return py::none();
    auto raw_chunk = [&](int mask) -> py::object {
        if (raw) return py::make_tuple(*raw, mask);
        return py::make_tuple(
            py::bytes(reinterpret_cast<const char*>(in), static_cast<py::ssize_t>(n)), mask);
    };
    if (!lzf || n < 2) return raw_chunk(0);
    PyObject* res = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(n - 1));
    if (!res) throw py::error_already_set();
    size_t m;
    {
        py::gil_scoped_release release;
        m = lzf_compress(in, n, reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(res)), n - 1, row);
    }
    if (m == 0) {  // incompressible: stored raw, the filter marked skipped in the chunk's mask
        Py_DECREF(res);
        return raw_chunk(1);
    }
    if (_PyBytes_Resize(&res, Py_ssize_t(m)) < 0) throw py::error_already_set();
    return py::make_tuple(py::reinterpret_steal<py::object>(res), 0);
}

// One HDF5 chunk of nframes frames of frame_bytes each: items are the frames' arrays in order
// (None: zeros), at most nframes (the rest is zero). See the binding's docstring.
py::object pack_frames(const py::sequence& items, size_t frame_bytes, size_t nframes, bool lzf,
                       size_t row) {
    const size_t count = py::len(items);
    if (!frame_bytes || !nframes || count > nframes)
        throw py::value_error("pack_frames: need 0 < len(items) <= nframes and frame_bytes > 0");
    std::vector<py::object> objs(count);
    std::vector<const uint8_t*> src(count, nullptr);
    BufferViews views;
    views.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        objs[i] = items[i];
        if (objs[i].is_none()) continue;
        const Py_buffer& v = views.get(objs[i]);
        if (size_t(v.len) != frame_bytes)
            throw py::value_error("pack_frames: item " + std::to_string(i) + " has " +
                                  std::to_string(v.len) + " bytes, expected " +
                                  std::to_string(frame_bytes));
        src[i] = static_cast<const uint8_t*>(v.buf);
    }
    if (nframes == 1) {  // the array itself: no copy
        if (!count || !src[0]) return py::none();
        return pack_bytes(src[0], frame_bytes, lzf, row, &objs[0]);
    }
    thread_local std::vector<uint8_t> stage;
    stage.resize(frame_bytes * nframes);
    {
        py::gil_scoped_release release;
        uint8_t* dst = stage.data();
        for (size_t i = 0; i < nframes; ++i, dst += frame_bytes) {
            if (i < count && src[i])
                std::memcpy(dst, src[i], frame_bytes);
            else
                std::memset(dst, 0, frame_bytes);
        }
    }
    return pack_bytes(stage.data(), stage.size(), lzf, row, nullptr);
}

// Gathers the frames of several per-frame datasets ("series") into chunks of k frames each, one
// put() per frame for all of them (the arrays are not kept: the work is done during the call,
// without the GIL). A raw series copies each frame into its chunk buffer (then pack() compresses
// nothing more than the zero test, or take() hands the raw frames out). An LZF series compresses
// each frame as it arrives and appends it to the chunk's LZF stream (LZF streams concatenate;
// compressing frame by frame is as small as compressing the chunk at once on block maps, and saves
// the copy), zeros as a few bytes; pack() hands the stream out.
class ChunkStager {
public:
    // A series whose frames have shape and format (the struct format of the buffer protocol,
    // e.g. '<h' or 'b') and frame_bytes bytes; k frames per chunk; the first `skip` frames of its
    // first chunk are zero; lzf: an LZF series (row: bytes per row for the encoder), else raw.
    // Returns the series' index.
    size_t add(const std::vector<py::ssize_t>& shape, const std::string& format,
               size_t frame_bytes, size_t k, size_t row, size_t skip, bool lzf) {
        if (!frame_bytes || !k || skip >= k)
            throw py::value_error("ChunkStager.add: need frame_bytes > 0 and skip < k");
        Series s;
        s.shape = shape;
        s.format = format;
        s.frame_bytes = frame_bytes;
        s.k = k;
        s.row = row;
        s.lzf = lzf;
        if (lzf) {
            s.buf.reserve(frame_bytes * k / 8 + 64);
            for (size_t i = 0; i < skip; ++i) lzf_append_zeros(s.buf, frame_bytes);
        } else {
            s.buf.assign(frame_bytes * k, 0);
        }
        s.count = skip;
        series_.push_back(std::move(s));
        return series_.size() - 1;
    }

    // Adds one frame to every series: items[i] is the array of series i (None: zeros). Returns the
    // indices of the series whose chunk is now full (pack_full: with their chunk as pack() gives it,
    // the series starting its next chunk). Raises ValueError("series <i>") when an array's shape or
    // format differs from the series' (nothing is added then).
    py::list put(const py::sequence& items, bool pack_full) {
        const size_t n = series_.size();
        if (size_t(py::len(items)) != n)
            throw py::value_error("ChunkStager.put: one item per series expected");
        if (!pack_full)
            for (const Series& s : series_)
                if (s.lzf && s.k == 1)
                    throw py::value_error("ChunkStager.put: one-frame LZF series need pack_full");
        std::vector<py::object> objs(n);
        std::vector<const uint8_t*> src(n, nullptr);
        BufferViews views;
        views.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            objs[i] = items[i];
            if (objs[i].is_none()) continue;
            const Py_buffer& v = views.get(objs[i]);
            if (!matches(series_[i], v)) throw py::value_error("series " + std::to_string(i));
            src[i] = static_cast<const uint8_t*>(v.buf);
        }
        // One-frame LZF chunks are compressed straight into a bytes object (as pack_frames does).
        std::vector<PyObject*> direct(n, nullptr);
        std::vector<size_t> direct_len(n, 0);
        struct Release {
            std::vector<PyObject*>& v;
            ~Release() {
                for (PyObject* o : v) Py_XDECREF(o);
            }
        } release_direct{direct};
        for (size_t i = 0; i < n; ++i) {
            const Series& s = series_[i];
            if (s.lzf && s.k == 1 && src[i] && s.frame_bytes > 1) {
                direct[i] = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(s.frame_bytes - 1));
                if (!direct[i]) throw py::error_already_set();
            }
        }
        std::vector<size_t> full;
        std::vector<char> zero_frame(n, 0);
        {
            py::gil_scoped_release release;
            for (size_t i = 0; i < n; ++i) {
                Series& s = series_[i];
                const bool zero = !src[i] || all_zero(src[i], s.frame_bytes);
                zero_frame[i] = zero;
                s.nonzero |= !zero;
                if (direct[i]) {
                    if (!zero)
                        direct_len[i] = lzf_compress(
                            src[i], s.frame_bytes,
                            reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(direct[i])),
                            s.frame_bytes - 1, s.row);
                    if (++s.count == s.k) full.push_back(i);
                    continue;
                }
                if (!s.lzf) {
                    uint8_t* dst = s.buf.data() + s.count * s.frame_bytes;
                    if (zero)
                        std::memset(dst, 0, s.frame_bytes);
                    else
                        std::memcpy(dst, src[i], s.frame_bytes);
                } else if (zero) {
                    lzf_append_zeros(s.buf, s.frame_bytes);
                } else {
                    lzf_append(s.buf, src[i], s.frame_bytes, s.row);
                }
                if (++s.count == s.k) full.push_back(i);
            }
        }
        py::list out;
        for (size_t i : full) {
            if (direct[i]) {  // a one-frame LZF chunk
                Series& s = series_[i];
                s.count = 0;
                s.nonzero = false;
                py::object packed = py::none();
                if (!zero_frame[i]) {
                    if (direct_len[i]) {
                        PyObject* b = direct[i];
                        direct[i] = nullptr;
                        if (_PyBytes_Resize(&b, Py_ssize_t(direct_len[i])) < 0)
                            throw py::error_already_set();
                        packed = py::make_tuple(py::reinterpret_steal<py::object>(b), 0);
                    } else {  // LZF does not shrink it: the array itself, stored raw
                        packed = py::make_tuple(objs[i], 1);
                    }
                }
                out.append(py::make_tuple(i, packed));
                continue;
            }
            if (!pack_full) {
                out.append(i);
                continue;
            }
            // A one-frame chunk that LZF does not shrink is the array itself, stored raw.
            Series& s = series_[i];
            const py::object* raw = s.k == 1 && src[i] ? &objs[i] : nullptr;
            out.append(py::make_tuple(i, s.lzf ? pack_series(s, raw) : pack(i, false)));
        }
        return out;
    }

    size_t count(size_t i) const { return at(i).count; }

    // The chunk of series i for a direct chunk write (frames past the ones put are zero): None if
    // it is all zero, else (data, filter mask): the LZF stream and 0 (raw series under lzf: the
    // chunk compressed now), or the raw chunk and 1 when LZF does not shrink it (0 when lzf is
    // false). The series starts its next chunk.
    py::object pack(size_t i, bool lzf) {
        Series& s = at(i);
        if (!s.lzf) {
            std::memset(s.buf.data() + s.count * s.frame_bytes, 0, (s.k - s.count) * s.frame_bytes);
            s.count = 0;
            s.nonzero = false;
            return pack_bytes(s.buf.data(), s.buf.size(), lzf, s.row, nullptr);
        }
        return pack_series(s, nullptr);
    }

    // The frames put into the chunk of series i, as raw bytes; the series starts its next chunk.
    py::bytes take(size_t i) {
        Series& s = at(i);
        py::bytes out;
        if (s.lzf) {
            std::string raw(s.count * s.frame_bytes, '\0');
            if (!lzf_decompress(s.buf.data(), s.buf.size(), reinterpret_cast<uint8_t*>(raw.data()),
                                raw.size()))
                throw std::runtime_error("ChunkStager: corrupt LZF stream");
            out = py::bytes(raw);
            s.buf.clear();
        } else {
            out = py::bytes(reinterpret_cast<const char*>(s.buf.data()),
                            static_cast<py::ssize_t>(s.count * s.frame_bytes));
        }
        s.count = 0;
        s.nonzero = false;
        return out;
    }

private:
    struct Series {
        std::vector<py::ssize_t> shape;
        std::string format;
        size_t frame_bytes = 0, k = 1, row = 0, count = 0;
        bool lzf = false;
        bool nonzero = false;  // a frame of the current chunk is not all zero
        ByteBuf buf;  // raw: the chunk; lzf: the chunk's LZF stream so far
    };

    // The chunk of an LZF series (see pack()); raw: the object to store when LZF does not shrink
    // the chunk (one frame: the array), else the stream is decoded into a raw chunk.
    static py::object pack_series(Series& s, const py::object* raw) {
        py::object out = py::none();
        if (s.nonzero) {
            const size_t total = s.frame_bytes * s.k;
            for (size_t j = s.count; j < s.k; ++j) lzf_append_zeros(s.buf, s.frame_bytes);
            if (s.buf.size() < total) {
                out = py::make_tuple(py::bytes(reinterpret_cast<const char*>(s.buf.data()),
                                               static_cast<py::ssize_t>(s.buf.size())),
                                     0);
            } else if (raw) {
                out = py::make_tuple(*raw, 1);
            } else {  // incompressible: the raw chunk, the filter marked skipped
                std::string data(total, '\0');
                if (!lzf_decompress(s.buf.data(), s.buf.size(),
                                    reinterpret_cast<uint8_t*>(data.data()), total))
                    throw std::runtime_error("ChunkStager: corrupt LZF stream");
                out = py::make_tuple(py::bytes(data), 1);
            }
        }
        s.buf.clear();
        s.count = 0;
        s.nonzero = false;
        return out;
    }

    static bool matches(const Series& s, const Py_buffer& v) {
        if (size_t(v.len) != s.frame_bytes || size_t(v.ndim) != s.shape.size()) return false;
        for (int d = 0; d < v.ndim; ++d)
            if (v.shape[d] != s.shape[d]) return false;
        return (v.format ? std::string(v.format) : std::string("B")) == s.format;
    }

    Series& at(size_t i) {
        if (i >= series_.size()) throw py::index_error("ChunkStager: no such series");
        return series_[i];
    }
    const Series& at(size_t i) const {
        if (i >= series_.size()) throw py::index_error("ChunkStager: no such series");
        return series_[i];
    }

    std::vector<Series> series_;
};

}  // namespace

void bind_chunks(py::module_& m) {
    m.def("pack_frames", &pack_frames, py::arg("items"), py::arg("frame_bytes"),
          py::arg("nframes"), py::arg("lzf"), py::arg("row") = 0,
          "One chunk of nframes frames for a direct chunk write: None if it is all zero, else "
          "(data, HDF5 filter mask): LZF bytes (filter 32000) and 0, or the raw chunk and 1 when "
          "LZF would not shrink it (0 when lzf is false). items: the frames' arrays (None: "
          "zeros), at most nframes (the rest is zero); row: bytes per row for the row-aware LZF. "
          "With nframes 1 the array is used in place and returned itself when stored raw. The "
          "zero scan, copies and compression run without the GIL.");
    m.def(
        "buffer_format", [](py::object obj) {
            Py_buffer v;
            if (PyObject_GetBuffer(obj.ptr(), &v, PyBUF_FORMAT | PyBUF_STRIDES) < 0)
                throw py::error_already_set();
            std::string f = v.format ? v.format : "B";
            PyBuffer_Release(&v);
            return f;
        },
        py::arg("obj"), "The buffer-protocol struct format of obj (as ChunkStager compares it).");
    py::class_<ChunkStager>(m, "ChunkStager",
                            "Gathers frames of per-frame datasets into chunks of several frames.")
        .def(py::init<>())
        .def("add", &ChunkStager::add, py::arg("shape"), py::arg("format"),
             py::arg("frame_bytes"), py::arg("k"), py::arg("row") = 0, py::arg("skip") = 0,
             py::arg("lzf") = false,
             "Add a series (frames of this shape and buffer format, k per chunk, the first skip "
             "zero; lzf: compress each frame as it arrives); returns its index.")
        .def("put", &ChunkStager::put, py::arg("items"), py::arg("pack_full") = false,
             "Add one frame of every series (None: zeros); returns the series whose chunk is "
             "full, with pack_full=True as (index, pack(index)) pairs. ValueError('series <i>') when "
             "an array does not match its series.")
        .def("count", &ChunkStager::count, py::arg("i"), "Frames in the current chunk of series i.")
        .def("pack", &ChunkStager::pack, py::arg("i"), py::arg("lzf") = true,
             "The current chunk of series i for a direct chunk write (None if all zero), then a new "
             "chunk.")
        .def("take", &ChunkStager::take, py::arg("i"),
             "The frames of the current chunk of series i as raw bytes, then a new chunk.");
}

}  // namespace pycodec
