// LZF compressor (the format of HDF5 filter 32000 as shipped with h5py), written from the format.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pycodec {

// Compresses n bytes of in into out (capacity cap). Returns the compressed size, or 0 when the
// output would not fit in cap (callers pass cap < n to get 0 for incompressible data). row: bytes
// per row when in is a C-ordered array of rows (0: unknown); matches with the row above are tried
// first, which is faster and smaller on block maps. Any row value gives a valid LZF stream.
size_t lzf_compress(const uint8_t* in, size_t n, uint8_t* out, size_t cap, size_t row = 0);

}  // namespace pycodec
