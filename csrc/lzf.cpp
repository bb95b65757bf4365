// LZF compressor, written from the LZF stream format:
//   control byte c < 32: a literal run of c + 1 bytes follows;
//   otherwise a back reference: length L = c >> 5 (when 7, plus the next byte) + 2, then the low
//   8 bits of the offset; the copy starts (((c & 31) << 8) | low) + 1 bytes before the output end
//   (the source may overlap the bytes being written, which makes runs).
// Greedy matching over a hash of the next 3 bytes; with a row length (a 2-D array), the same
// position one row above is tried first, since block maps mostly repeat the row above. Output is
// deterministic (entries of earlier calls are never used).
#include "lzf.h"

#include <cstring>
#include <vector>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "lzf.cpp assumes a little-endian CPU");

namespace pycodec {
namespace {

constexpr int kHashLog = 13;
constexpr size_t kMaxLiteral = 32;
constexpr size_t kMaxOffset = 1 << 13;     // offsets 1..8192
constexpr size_t kMaxMatch = 7 + 255 + 2;  // 264

inline uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Length of the common prefix of a and b, at least from (known equal) and at most max.
inline size_t match_length(const uint8_t* a, const uint8_t* b, size_t from, size_t max) {
    size_t len = from;
    while (len + 8 <= max) {  // 8 bytes at a time, then the tail
        uint64_t x, y;
        std::memcpy(&x, a + len, 8);
        std::memcpy(&y, b + len, 8);
        if (x != y) return len + size_t(__builtin_ctzll(x ^ y) >> 3);  // little-endian
        len += 8;
    }
    while (len < max && a[len] == b[len]) ++len;
    return len;
}

// Hash of the 3 bytes at the low end of v.
inline uint32_t hash3(uint32_t v) { return ((v & 0xffffff) * 2654435761u) >> (32 - kHashLog); }

}  // namespace

size_t lzf_compress(const uint8_t* in, size_t n, uint8_t* out, size_t cap, size_t row) {
    if (n == 0) return 0;
    // Entries hold base + position + 1, base growing from call to call: entries of earlier calls
    // are <= base and ignored, so the table is not cleared per call (32 KiB, which showed on the
    // small per-frame inputs) and the output depends on this input only. Cleared when base wraps.
    thread_local std::vector<uint32_t> table(size_t(1) << kHashLog);
    thread_local uint32_t next_base = 0;
    uint32_t* htab = table.data();
    if (n >= 0x7fffffffu) return 0;  // input larger than 2 GiB is not supported
    if (next_base > 0xffffffffu - n - 1) {
        std::memset(htab, 0, sizeof(uint32_t) << kHashLog);
        next_base = 0;
    }
    const uint32_t base = next_base;
    next_base = base + uint32_t(n) + 1;
    if (row > kMaxOffset) row = 0;  // the row above is out of reach

    size_t op = 0;
    size_t lit = 0;  // start of the pending literal bytes
    size_t ip = 0;

    auto flush_literals = [&](size_t end) -> bool {
        while (lit < end) {
            const size_t cnt = end - lit < kMaxLiteral ? end - lit : kMaxLiteral;
            if (op + 1 + cnt > cap) return false;
            out[op++] = uint8_t(cnt - 1);
            std::memcpy(out + op, in + lit, cnt);
            op += cnt;
            lit += cnt;
        }
        return true;
    };

    // A back reference of len (3..264) bytes starting off + 1 bytes back; false when out is full.
    auto emit_match = [&](size_t len, size_t off) -> bool {
        const size_t l = len - 2;
        if (op + (l < 7 ? 2 : 3) > cap) return false;
        if (l < 7) {
            out[op++] = uint8_t(l << 5 | off >> 8);
        } else {
            out[op++] = uint8_t(7 << 5 | off >> 8);
            out[op++] = uint8_t(l - 7);
        }
        out[op++] = uint8_t(off & 0xff);
        return true;
    };

    // Positions with 4 readable bytes are searched; the last 3 bytes end as literals.
    const size_t limit = n >= 4 ? n - 3 : 0;
    while (ip < limit) {
        const uint32_t v = load32(in + ip);
        const uint32_t h = hash3(v);
        const uint32_t e = htab[h];
        size_t cand = e > base ? size_t(e - base) : 0;  // position + 1, 0: none
        htab[h] = base + uint32_t(ip + 1);
        if (row && ip >= row && load32(in + ip - row) == v) cand = ip - row + 1;
        if (cand) {
            const size_t ref = cand - 1;
            const size_t off = ip - ref - 1;
            if (off < kMaxOffset && ((load32(in + ref) ^ v) & 0xffffff) == 0) {
                size_t maxlen = n - ip;
                if (maxlen > kMaxMatch) maxlen = kMaxMatch;
                size_t len = match_length(in + ref, in + ip, 3, maxlen);
                if (!flush_literals(ip) || !emit_match(len, off)) return 0;
                ip += len;
                // A match cut at the maximum length usually goes on at the same offset (zero runs,
                // repeated rows): continue it without looking for a new candidate.
                while (len == kMaxMatch && ip + 3 <= n) {
                    const size_t ml = n - ip < kMaxMatch ? n - ip : kMaxMatch;
                    len = match_length(in + ip - off - 1, in + ip, 0, ml);
                    if (len < 3) break;
                    if (!emit_match(len, off)) return 0;
                    ip += len;
                }
                lit = ip;
                // Index the last two positions of the match (helps the next match in runs).
                if (ip < limit) {
                    htab[hash3(load32(in + ip - 2))] = base + uint32_t(ip - 2 + 1);
                    htab[hash3(load32(in + ip - 1))] = base + uint32_t(ip - 1 + 1);
                }
                continue;
            }
        }
        ++ip;
    }
    if (!flush_literals(n)) return 0;
    return op;
}

void lzf_append_zeros(ByteBuf& out, size_t n) {
    if (!n) return;
    out.push_back(0);  // one literal zero ...
    out.push_back(0);
    size_t left = n - 1;
    while (left >= 3) {  // ... then copies of the previous byte (offset 1)
        const size_t len = left < kMaxMatch ? left : kMaxMatch;
        const size_t l = len - 2;
        if (l < 7) {
            out.push_back(uint8_t(l << 5));
        } else {
            out.push_back(uint8_t(7 << 5));
            out.push_back(uint8_t(l - 7));
        }
        out.push_back(0);
        left -= len;
    }
    if (left) {
        out.push_back(uint8_t(left - 1));
        out.insert(out.end(), left, 0);
    }
}

void lzf_append_literals(ByteBuf& out, const uint8_t* in, size_t n) {
    while (n) {
        const size_t cnt = n < kMaxLiteral ? n : kMaxLiteral;
        out.push_back(uint8_t(cnt - 1));
        out.insert(out.end(), in, in + cnt);
        in += cnt;
        n -= cnt;
    }
}

void lzf_append(ByteBuf& out, const uint8_t* in, size_t n, size_t row) {
    if (!n) return;
    const size_t at = out.size();
    out.resize(at + n);  // room for a stream shorter than the input
    const size_t m = n > 1 ? lzf_compress(in, n, out.data() + at, n - 1, row) : 0;
    if (m) {
        out.resize(at + m);
    } else {
        out.resize(at);
        lzf_append_literals(out, in, n);
    }
}

bool lzf_decompress(const uint8_t* in, size_t len, uint8_t* out, size_t n) {
    size_t ip = 0, op = 0;
    while (ip < len) {
        const size_t ctrl = in[ip++];
        if (ctrl < 32) {  // literal run
            const size_t cnt = ctrl + 1;
            if (ip + cnt > len || op + cnt > n) return false;
            std::memcpy(out + op, in + ip, cnt);
            ip += cnt;
            op += cnt;
        } else {  // back reference
            size_t cnt = ctrl >> 5;
            if (cnt == 7) {
                if (ip >= len) return false;
                cnt += in[ip++];
            }
            cnt += 2;
            if (ip >= len) return false;
            const size_t off = ((ctrl & 31) << 8 | in[ip++]) + 1;
            if (off > op || op + cnt > n) return false;
            for (size_t i = 0; i < cnt; ++i, ++op) out[op] = out[op - off];
        }
    }
    return op == n;
}

}  // namespace pycodec
