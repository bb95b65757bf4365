// LZF compressor (the format of HDF5 filter 32000 as shipped with h5py), written from the format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace pycodec {

// Compresses n bytes of in into out (capacity cap). Returns the compressed size, or 0 when the
// output would not fit in cap (callers pass cap < n to get 0 for incompressible data). row: bytes
// per row when in is a C-ordered array of rows (0: unknown); matches with the row above are tried
// first, which is faster and smaller on block maps. Any row value gives a valid LZF stream.
size_t lzf_compress(const uint8_t* in, size_t n, uint8_t* out, size_t cap, size_t row = 0);

// An allocator whose resize() leaves new bytes uninitialised (they are written right after).
template <typename T, typename A = std::allocator<T>>
class DefaultInitAllocator : public A {
    using Traits = std::allocator_traits<A>;

public:
    template <typename U>
    struct rebind {
        using other = DefaultInitAllocator<U, typename Traits::template rebind_alloc<U>>;
    };
    using A::A;
    template <typename U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
        ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
        Traits::construct(static_cast<A&>(*this), p, std::forward<Args>(args)...);
    }
};
using ByteBuf = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

// LZF streams concatenate: the stream of a + b is the stream of a followed by that of b, as long as
// each part's back references stay inside that part (which those made here do). The helpers below
// append parts to a growing stream.

// Appends the stream of n zero bytes (n >= 1): 2 + ~3 bytes per 264 bytes.
void lzf_append_zeros(ByteBuf& out, size_t n);
// Appends a stream of n bytes stored as literals (for data LZF does not shrink).
void lzf_append_literals(ByteBuf& out, const uint8_t* in, size_t n);
// Appends the stream of in[0..n): compressed, or as literals when that is not smaller.
void lzf_append(ByteBuf& out, const uint8_t* in, size_t n, size_t row = 0);
// Decodes a stream into out[0..n); false when it is malformed or does not decode to n bytes.
bool lzf_decompress(const uint8_t* in, size_t len, uint8_t* out, size_t n);

}  // namespace pycodec
