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

// Gathers the frames of several per-frame datasets ("series") into chunk buffers of k frames
// each: put() copies one frame of every series (one call per frame, the copies without the GIL;
// the arrays are not kept), pack() / take() hand out a series' chunk and start the next one.
class ChunkStager {
public:
    // A series whose frames have shape and format (the struct format of the buffer protocol,
    // e.g. '<h' or 'b') and frame_bytes bytes; k frames per chunk; the first `skip` frames of its
    // first chunk are zero. Returns the series' index.
    size_t add(const std::vector<py::ssize_t>& shape, const std::string& format,
               size_t frame_bytes, size_t k, size_t row, size_t skip) {
        if (!frame_bytes || !k || skip >= k)
            throw py::value_error("ChunkStager.add: need frame_bytes > 0 and skip < k");
        Series s;
        s.shape = shape;
        s.format = format;
        s.frame_bytes = frame_bytes;
        s.k = k;
        s.row = row;
        s.buf.assign(frame_bytes * k, 0);
        s.count = skip;
        series_.push_back(std::move(s));
        return series_.size() - 1;
    }

    // Copies one frame: items[i] is the array of series i (None: zeros). Returns the indices of the
    // series whose chunk is now full. Raises ValueError("series <i>") when an array's shape or
    // format differs from the series' (nothing is copied then).
    std::vector<size_t> put(const py::sequence& items) {
        const size_t n = series_.size();
        if (size_t(py::len(items)) != n)
            throw py::value_error("ChunkStager.put: one item per series expected");
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
        std::vector<size_t> full;
        {
            py::gil_scoped_release release;
            for (size_t i = 0; i < n; ++i) {
                Series& s = series_[i];
                uint8_t* dst = s.buf.data() + s.count * s.frame_bytes;
                if (src[i])
                    std::memcpy(dst, src[i], s.frame_bytes);
                else
                    std::memset(dst, 0, s.frame_bytes);
                if (++s.count == s.k) full.push_back(i);
            }
        }
        return full;
    }

    size_t count(size_t i) const { return at(i).count; }

    // The chunk of series i for a direct chunk write, as pack_frames gives it (frames past the
    // ones put are zero); the series starts its next chunk.
    py::object pack(size_t i, bool lzf) {
        Series& s = at(i);
        std::memset(s.buf.data() + s.count * s.frame_bytes, 0, (s.k - s.count) * s.frame_bytes);
        s.count = 0;
        return pack_bytes(s.buf.data(), s.buf.size(), lzf, s.row, nullptr);
    }

    // The frames put into the chunk of series i, as bytes; the series starts its next chunk.
    py::bytes take(size_t i) {
        Series& s = at(i);
        py::bytes out(reinterpret_cast<const char*>(s.buf.data()),
                      static_cast<py::ssize_t>(s.count * s.frame_bytes));
        s.count = 0;
        return out;
    }

private:
    struct Series {
        std::vector<py::ssize_t> shape;
        std::string format;
        size_t frame_bytes = 0, k = 1, row = 0, count = 0;
        std::vector<uint8_t> buf;
    };

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
                            "Gathers frames of per-frame datasets into multi-frame chunk buffers.")
        .def(py::init<>())
        .def("add", &ChunkStager::add, py::arg("shape"), py::arg("format"),
             py::arg("frame_bytes"), py::arg("k"), py::arg("row") = 0, py::arg("skip") = 0,
             "Add a series (frames of this shape and buffer format, k per chunk, the first skip "
             "zero); returns its index.")
        .def("put", &ChunkStager::put, py::arg("items"),
             "Copy one frame of every series (None: zeros); returns the series whose chunk is "
             "full. ValueError('series <i>') when an array does not match its series.")
        .def("count", &ChunkStager::count, py::arg("i"), "Frames in the current chunk of series i.")
        .def("pack", &ChunkStager::pack, py::arg("i"), py::arg("lzf"),
             "The current chunk of series i for a direct chunk write (None if all zero), then a new "
             "chunk.")
        .def("take", &ChunkStager::take, py::arg("i"),
             "The frames of the current chunk of series i as bytes, then a new chunk.");
}

}  // namespace pycodec
