// HDF5 chunks for the writer (pycodec/store.py): packing frames into one chunk for a direct chunk
// write (zero test, LZF), and a stager that gathers the frames of small per-frame datasets into
// multi-frame chunks.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>

namespace pycodec {

namespace py = pybind11;

// True when every byte of p[0..n) is zero.
bool all_zero(const uint8_t* p, size_t n);

// Adds pack_frames and ChunkStager to the module.
void bind_chunks(py::module_& m);

}  // namespace pycodec
