// 4-bit PQ "fast scan": distance estimates for 32 codes at a time from
// byte-shuffle table lookups, the query's tables held in SIMD registers. A
// building block for IVF-PQ with nbits = 4 (16 centroids per sub-space); the
// caller re-ranks the best estimates with exact float tables.
//
//   auto packed = fast_scan::pack(codes, n, m);            // once, at build time
//   auto lut = fast_scan::quantize_lut(table, m);          // per query (and list)
//   std::vector<std::uint16_t> est(n);
//   fast_scan::estimates(packed.data(), n, lut, est.data());
//   float d = lut.estimate(est[i]);                        // ~ sum_j table[j][code_ij]
//
// Packed layout (the same for every instruction set and build: a buffer
// packed by one target is read by every other and may be stored in a file).
// Codes are m sub-space indices 0..15 per vector. Sub-spaces go in pairs
// (2q, 2q + 1), q < pairs(m) = ceil(m / 2); an odd m gets a zero sub-space
// m. Vectors go in blocks of 32, the last block padded with zero codes. The
// buffer is blocks(n) blocks of pairs(m) * 32 bytes, block after block; in
// block b, pair q's 32 bytes start at (b * pairs(m) + q) * 32, and byte i of
// them is
//     code(32 b + i, 2q)  |  code(32 b + i, 2q + 1) << 4
// (low nibble the even sub-space). Natural vector order keeps the format
// simple; the kernels reorder in registers, which costs a few shuffles per
// block, not per sub-space.
//
// Tables. A float table T[j][c] (j < m, c < 16; the contribution of centroid
// c of sub-space j, smaller = closer: pass -<q, c> for inner products) becomes
// bytes Q[j][c] = round((T[j][c] - min_c T[j][c]) * scale), stored as
// 16 * 2 pairs(m) bytes (the padding sub-space all zero). One scale for all
// sub-spaces, the largest with every Q <= 255 and sum_j max_c Q[j][c] <=
// 65535, so a vector's sum never saturates its uint16 accumulator:
//     scale = min(255 / max_j R_j, (65535 - m / 2) / sum_j R_j),
// R_j = max_c T[j][c] - min_c T[j][c] (the m / 2 covers rounding up).
//
// Arithmetic. A vector's estimate is acc = the sum over all 2 pairs(m)
// sub-spaces of Q[j][code_j], accumulated as uint16 with saturating adds:
// min(65535, exact sum), whatever the order, since every term is >= 0. Every
// instruction set computes exactly this (bit for bit; tested), and for
// tables from quantize_lut it never saturates. When no sum can saturate
// (quantize_lut's tables say so in sums_fit; any table when m <= 256), the
// AVX2 path adds without saturating, in fewer operations, to the same sums.
// The float estimate is bias + acc / scale, bias = sum_j min_c T[j][c], and
//     |estimate - sum_j T[j][code_j]| <= m * 0.5 / scale
// plus float rounding (a few ulp of |bias| + acc / scale).
//
// Instruction sets: AVX-512BW (two pairs per 64-byte shuffle), AVX2, SSSE3
// when the translation unit is compiled for it (x86-64-v2), NEON on aarch64,
// and the scalar reference (the SSE2 baseline). Chosen as core/dispatch.hpp
// chooses the distance kernels: at compile time in a unit built for AVX2 or
// AVX-512 (or not x86), otherwise once at run time from the CPU, capped by
// ANNULUS_SIMD_MAX. fast_scan_kernels.hpp holds the SIMD code.
//
// Every function is pure (reads its arguments, writes only its outputs):
// safe to call from any number of threads. Memory: pack, unpack and
// quantize_lut return owning vectors; the scan functions read the caller's
// buffers and write the caller's output, no pointer needs any alignment.
// Sizes are checked before anything is allocated; bad ones throw
// invalid_argument.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/simd/target.hpp"
#include "annulus/quant/fast_scan_kernels.hpp"

#if ANNULUS_DETAIL_SIMD_RUN_TIME
#include "annulus/core/dispatch.hpp"
#endif

namespace annulus::fast_scan {

/// Vectors per block.
inline constexpr std::size_t block_size = 32;
/// The most sub-spaces quantize_lut accepts (its no-saturation guarantee
/// needs m / 2 < 65535; real PQ uses a few hundred at most).
inline constexpr std::size_t max_m = 16384;

/// Blocks holding n vectors.
inline constexpr std::size_t blocks(std::size_t n) { return (n + block_size - 1) / block_size; }
/// Sub-space pairs for m sub-spaces (an odd m gets a zero sub-space).
inline constexpr std::size_t pairs(std::size_t m) { return (m + 1) / 2; }
/// Bytes of one packed block.
inline constexpr std::size_t block_bytes(std::size_t m) { return pairs(m) * block_size; }
/// Bytes of a quantized table for m sub-spaces: 16 per sub-space, padding included.
inline constexpr std::size_t lut_bytes(std::size_t m) { return pairs(m) * 32; }

/// Bytes of the packed codes of n vectors of m sub-spaces. Throws
/// invalid_argument when m = 0 or the size overflows.
inline std::size_t packed_bytes(std::size_t n, std::size_t m) {
  if (m == 0) throw invalid_argument("fast_scan: m must be at least 1");
  constexpr std::size_t most = std::numeric_limits<std::size_t>::max();
  // n * m (the unpacked codes) and the padded size must both fit.
  if (m > most / 64 || (n != 0 && m > most / n) || blocks(n) > most / block_bytes(m))
    throw invalid_argument("fast_scan: " + std::to_string(n) + " codes of " + std::to_string(m) +
                           " sub-spaces overflow a buffer size");
  return blocks(n) * block_bytes(m);
}

/// codes: n x m bytes, row-major, each 0..15. Returns packed_bytes(n, m)
/// bytes in the layout above. Throws invalid_argument on m = 0 or a code
/// above 15 (checked before allocating).
inline std::vector<std::uint8_t> pack(const std::uint8_t* codes, std::size_t n, std::size_t m) {
  const std::size_t bytes = packed_bytes(n, m);
  for (std::size_t k = 0; k < n * m; ++k)
    if (codes[k] > 15)
      throw invalid_argument("fast_scan::pack: code " + std::to_string(codes[k]) + " of vector " +
                             std::to_string(k / m) + ", sub-space " + std::to_string(k % m) +
                             " does not fit 4 bits");
  std::vector<std::uint8_t> out(bytes, 0);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* block = out.data() + (i / block_size) * block_bytes(m) + i % block_size;
    for (std::size_t j = 0; j < m; ++j)
      block[(j / 2) * block_size] |= static_cast<std::uint8_t>(codes[i * m + j] << (4 * (j % 2)));
  }
  return out;
}

/// The code of vector i in sub-space j (j < m, or j = m for an odd m's
/// padding, which reads 0) of a packed buffer. No checks: for tests and
/// re-ranking.
inline std::uint8_t code_at(const std::uint8_t* packed, std::size_t m, std::size_t i, std::size_t j) {
  const std::uint8_t byte = packed[((i / block_size) * pairs(m) + j / 2) * block_size + i % block_size];
  return static_cast<std::uint8_t>((byte >> (4 * (j % 2))) & 0x0F);
}

/// The n x m row-major codes a packed buffer holds (pack's inverse).
/// Throws invalid_argument on m = 0.
inline std::vector<std::uint8_t> unpack(const std::uint8_t* packed, std::size_t n, std::size_t m) {
  (void)packed_bytes(n, m);
  std::vector<std::uint8_t> codes(n * m);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < m; ++j) codes[i * m + j] = code_at(packed, m, i, j);
  return codes;
}

class quantized_lut;
inline namespace ANNULUS_DETAIL_SIMD_ABI {
inline void quantize_lut_into(const float* tables, std::size_t m, std::size_t stride, quantized_lut& out);
}

/// A query's tables in bytes, and how to read its sums back as floats. Made
/// by quantize_lut, or from bytes by the constructor; read-only after, so
/// whether its sums can saturate (sums_fit) always describes its bytes.
class quantized_lut {
 public:
  quantized_lut() = default;
  /// A table of lut_bytes(m) bytes (table j at 16 j, the padding sub-space
  /// zero), read back as bias + sum / scale. Throws invalid_argument on m =
  /// 0, a table of another size, a scale that is not positive and finite, or
  /// a bias that is not finite.
  quantized_lut(std::size_t m, std::vector<std::uint8_t> table, float bias, float scale);

  std::size_t m() const { return m_; }
  /// lut_bytes(m) bytes: table j at 16 j (the padding sub-space's zeros last).
  const std::vector<std::uint8_t>& table() const { return table_; }
  float bias() const { return bias_; }    ///< sum over sub-spaces of the smallest float entry
  float scale() const { return scale_; }  ///< bytes per float unit (> 0)
  /// No vector's sum can pass 65535 (the rows' largest bytes sum within
  /// it): a scan may add without saturating (the AVX2 path's faster loop;
  /// the sums are the same).
  bool sums_fit() const { return sums_fit_; }

  /// The float distance a scan sum stands for.
  float estimate(std::uint16_t acc) const { return bias_ + static_cast<float>(acc) / scale_; }
  /// The largest |estimate - exact float sum| from quantization: m * 0.5 / scale
  /// (float rounding comes on top).
  double error_bound() const { return 0.5 * static_cast<double>(m_) / scale_; }

 private:
  friend void ANNULUS_DETAIL_SIMD_ABI::quantize_lut_into(const float*, std::size_t, std::size_t, quantized_lut&);
  std::size_t m_ = 0;
  std::vector<std::uint8_t> table_;
  float bias_ = 0.f, scale_ = 1.f;
  bool sums_fit_ = false;
};

inline quantized_lut::quantized_lut(std::size_t m, std::vector<std::uint8_t> table, float bias, float scale)
    : m_(m), table_(std::move(table)), bias_(bias), scale_(scale) {
  if (m == 0) throw invalid_argument("fast_scan::quantized_lut: m must be at least 1");
  if (table_.size() != lut_bytes(m))
    throw invalid_argument("fast_scan::quantized_lut: a table of " + std::to_string(table_.size()) +
                           " bytes for m = " + std::to_string(m) + "; expected " + std::to_string(lut_bytes(m)));
  if (!(scale > 0.f) || !std::isfinite(scale))
    throw invalid_argument("fast_scan::quantized_lut: scale " + std::to_string(scale) + "; expected > 0 and finite");
  if (!std::isfinite(bias))
    throw invalid_argument("fast_scan::quantized_lut: bias " + std::to_string(bias) + "; expected a finite value");
  std::size_t most = 0;
  for (std::size_t j = 0; j < table_.size(); j += 16) most += *std::max_element(&table_[j], &table_[j] + 16);
  sums_fit_ = most <= 65535;
}

// The row kernels differ with the unit's flags: so does the namespace.
inline namespace ANNULUS_DETAIL_SIMD_ABI {

/// tables[j * stride + c] for j < m, c < 16 (stride >= 16, e.g. a
/// product_quantizer's table_stride() with nbits = 4): quantized as the
/// header comment says, into `q`, reusing its table's room (a scan loop
/// that quantizes a table per list allocates nothing once warm). Throws
/// invalid_argument on m = 0 or above max_m, a stride below 16, or a
/// non-finite entry, leaving q as it was; std::bad_alloc.
inline void quantize_lut_into(const float* tables, std::size_t m, std::size_t stride, quantized_lut& out) {
  if (m == 0 || m > max_m)
    throw invalid_argument("fast_scan::quantize_lut: m must be 1.." + std::to_string(max_m) + ", got " +
                           std::to_string(m));
  if (stride < 16) throw invalid_argument("fast_scan::quantize_lut: stride " + std::to_string(stride) + " < 16");
  // One pass over the rows: their ranges, and whether any entry is NaN (an
  // infinite one shows as an infinite lowest or highest). A separate check
  // of every entry's bits cost as much as the whole quantisation. Only a
  // failure searches for the entry to name.
  double bias = 0, range_max = 0, range_sum = 0;
  bool finite = true;
  constexpr std::size_t chunk = 256;  // rows whose ranges sit on the stack at once
  float lows[chunk], highs[chunk];
  for (std::size_t j0 = 0; j0 < m; j0 += chunk) {
    const std::size_t rows = std::min(chunk, m - j0);
    finite &= isa::row_ranges(tables + j0 * stride, rows, stride, lows, highs);
    for (std::size_t r = 0; r < rows; ++r) {
      finite &= std::isfinite(lows[r]);
      finite &= std::isfinite(highs[r]);
      bias += lows[r];
      range_max = std::max(range_max, double(highs[r]) - double(lows[r]));
      range_sum += double(highs[r]) - double(lows[r]);
    }
  }
  if (!finite)
    for (std::size_t j = 0; j < m; ++j)
      for (std::size_t c = 0; c < 16; ++c)
        if (!std::isfinite(tables[j * stride + c]))
          throw invalid_argument("fast_scan::quantize_lut: entry " + std::to_string(c) + " of sub-space " +
                                 std::to_string(j) + " is not finite");
  float scale = 1.f;  // the figures first; out changes once they are checked
  if (range_max > 0) {
    const double s = std::min(255.0 / range_max, (65535.0 - 0.5 * double(m)) / range_sum);
    // The float scale must not exceed s, or the largest bytes and sums could round past their limits.
    float f = static_cast<float>(s);
    if (double(f) > s) f = std::nextafter(f, 0.f);
    if (!(f > 0.f) || !std::isfinite(f))
      throw invalid_argument("fast_scan::quantize_lut: table ranges too wide for a float scale");
    scale = f;
  }
  out.table_.resize(lut_bytes(m));
  std::fill(out.table_.begin() + std::ptrdiff_t(16 * m), out.table_.end(), std::uint8_t{0});
  out.m_ = m;
  out.bias_ = static_cast<float>(bias);
  out.scale_ = scale;
  out.sums_fit_ = true;  // the scale keeps the rows' largest bytes' sum within 65535
  // Rounded half up in float (the per-query cost at m = 392: a libm
  // nearbyint per entry was a third of a fast-scan search). (t - lo) scale
  // is at most 255 up to a float rounding, so a byte is at most
  // range scale + 1/2 as the sums' limit assumes, and the clamp catches 255 + ulp.
  isa::quantize_rows(tables, m, stride, out.scale_, out.table_.data());
}

/// quantize_lut_into a new table. Throws as it.
inline quantized_lut quantize_lut(const float* tables, std::size_t m, std::size_t stride = 16) {
  quantized_lut q;
  quantize_lut_into(tables, m, stride, q);
  return q;
}

}  // namespace ANNULUS_DETAIL_SIMD_ABI

/// The instruction sets a scan can use (not all exist in every build).
enum class path : unsigned char { scalar, ssse3, neon, avx2, avx512 };

inline const char* path_name(path p) {
  switch (p) {
    case path::ssse3: return "ssse3";
    case path::neon: return "neon";
    case path::avx2: return "avx2";
    case path::avx512: return "avx512bw";
    case path::scalar: break;
  }
  return "scalar";
}

namespace detail {
inline void require_m(std::size_t m, const char* what) {
  if (m == 0) throw invalid_argument(std::string("fast_scan::") + what + ": m must be at least 1");
}
inline const std::uint8_t* checked_table(const quantized_lut& lut, const char* what) {
  require_m(lut.m(), what);  // an empty (default) table; a built one has the right size
  return lut.table().data();
}
}  // namespace detail

// What depends on the translation unit's flags: the namespace named for them.
inline namespace ANNULUS_DETAIL_SIMD_ABI {

/// The path the translation unit's own flags give (the dispatch fallback).
#if ANNULUS_DETAIL_SIMD_TU_LEVEL == 2
inline constexpr path compiled_path = path::avx512;
#elif ANNULUS_DETAIL_SIMD_TU_LEVEL == 1
inline constexpr path compiled_path = path::avx2;
#elif ANNULUS_DETAIL_FAST_SCAN_SSSE3
inline constexpr path compiled_path = path::ssse3;
#elif ANNULUS_DETAIL_FAST_SCAN_NEON
inline constexpr path compiled_path = path::neon;
#else
inline constexpr path compiled_path = path::scalar;
#endif

/// The paths this translation unit holds and this CPU runs, scalar first
/// (for tests and benchmarks; active_path() is one of them).
inline std::vector<path> available_paths() {
  std::vector<path> out{path::scalar};
  if (ANNULUS_DETAIL_FAST_SCAN_SSSE3) out.push_back(path::ssse3);
  if (ANNULUS_DETAIL_FAST_SCAN_NEON) out.push_back(path::neon);
#if ANNULUS_DETAIL_SIMD_RUN_TIME
  const auto cpu = kernels::dispatch::cpu_level();
  if (cpu >= kernels::dispatch::level::avx2) out.push_back(path::avx2);
  if (cpu >= kernels::dispatch::level::avx512) out.push_back(path::avx512);
#else
  if (ANNULUS_DETAIL_FAST_SCAN_AVX2) out.push_back(path::avx2);
  if (ANNULUS_DETAIL_FAST_SCAN_AVX512) out.push_back(path::avx512);
#endif
  return out;
}

/// The path scans take: chosen once per program and unit (a thread-safe static).
inline path active_path() {
#if ANNULUS_DETAIL_SIMD_RUN_TIME
  static const path chosen = [] {
    using kernels::dispatch::level;
    const level cpu = kernels::dispatch::cpu_level(), cap = kernels::dispatch::level_cap();
    const level l = cap < cpu ? cap : cpu;
    if (l == level::avx512) return path::avx512;
    if (l == level::avx2) return path::avx2;
    return compiled_path;
  }();
  return chosen;
#else
  return compiled_path;
#endif
}

namespace isa {
/// The reference every kernel matches: acc = min(65535, the sum over the
/// 2 pairs(m) sub-spaces of the table byte of each vector's code), which is
/// what a chain of saturating uint16 adds gives (all terms >= 0). Summed in
/// uint32, clamped every 65536 pairs (65535 + 65536 * 510 < 2^32), so a
/// compiler can vectorize the 32 vectors of a block (SSE2 builds run this).
/// In the ABI namespace: vectorized for the unit's own flags.
inline void scan_blocks_scalar(const std::uint8_t* packed, std::size_t n_blocks, std::size_t n_pairs,
                               const std::uint8_t* lut, std::uint16_t* out) {
  for (std::size_t b = 0; b < n_blocks; ++b, out += block_size) {
    const std::uint8_t* block = packed + b * n_pairs * block_size;
    std::uint32_t acc[block_size] = {};
    for (std::size_t p = 0; p < n_pairs; ++p) {
      const std::uint8_t *codes = block + p * block_size, *lo = lut + 32 * p, *hi = lo + 16;
      for (std::size_t i = 0; i < block_size; ++i) acc[i] += lo[codes[i] & 15u] + hi[codes[i] >> 4];
      if (p % 65536 == 65535)
        for (auto& a : acc) a = std::min<std::uint32_t>(a, 65535);
    }
    for (std::size_t i = 0; i < block_size; ++i)
      out[i] = static_cast<std::uint16_t>(std::min<std::uint32_t>(acc[i], 65535));
  }
}

// p is available (unchecked here: the callers check). sums_fit: no sum can
// pass 65535 (then a path may add without saturating).
inline void run(path p, const std::uint8_t* packed, std::size_t n_blocks, std::size_t m, const std::uint8_t* lut,
                std::uint16_t* out, [[maybe_unused]] bool sums_fit) {
  const std::size_t np = pairs(m);
  switch (p) {
#if ANNULUS_DETAIL_FAST_SCAN_SSSE3
    case path::ssse3: return scan_blocks_ssse3(packed, n_blocks, np, lut, out);
#endif
#if ANNULUS_DETAIL_FAST_SCAN_NEON
    case path::neon: return scan_blocks_neon(packed, n_blocks, np, lut, out);
#endif
#if ANNULUS_DETAIL_FAST_SCAN_AVX2
    case path::avx2:
      return sums_fit ? scan_blocks_avx2_unsaturated(packed, n_blocks, np, lut, out)
                      : scan_blocks_avx2(packed, n_blocks, np, lut, out);
#endif
#if ANNULUS_DETAIL_FAST_SCAN_AVX512
    case path::avx512: return scan_blocks_avx512(packed, n_blocks, np, lut, out);
#endif
    default: return scan_blocks_scalar(packed, n_blocks, np, lut, out);
  }
}

// Whether m sub-spaces of any bytes keep every sum within 65535 (510 a pair).
inline bool sums_always_fit(std::size_t m) { return pairs(m) * 510 <= 65535; }

// The public calls below, with sums_fit:
inline void scan(path p, const std::uint8_t* packed, std::size_t n_blocks, std::size_t m, const std::uint8_t* lut,
                 std::uint16_t* out, bool sums_fit) {
  run(p, packed, n_blocks, m, lut, out, sums_fit || sums_always_fit(m));
}
inline void check_path(path p) {
  const auto av = available_paths();
  if (std::find(av.begin(), av.end(), p) == av.end())
    throw invalid_argument(std::string("fast_scan: path ") + path_name(p) + " is not available here");
}
inline void estimates(const std::uint8_t* packed, std::size_t n, std::size_t m, const std::uint8_t* lut,
                      std::uint16_t* out, bool sums_fit) {
  const std::size_t full = n / block_size, rest = n % block_size;
  const path p = active_path();
  scan(p, packed, full, m, lut, out, sums_fit);
  if (rest == 0) return;
  std::uint16_t last[block_size];
  scan(p, packed + full * block_bytes(m), 1, m, lut, last, sums_fit);
  std::copy_n(last, rest, out + full * block_size);
}
}  // namespace isa

/// out[32 b + i] = the saturated uint16 sum of vector i of block b (the
/// header comment's acc), for n_blocks blocks of codes packed for m
/// sub-spaces (packed: n_blocks * block_bytes(m) bytes), `lut` of
/// lut_bytes(m) bytes, `out` room for 32 n_blocks values. Throws
/// invalid_argument on m = 0.
inline void scan_blocks(const std::uint8_t* packed, std::size_t n_blocks, std::size_t m, const std::uint8_t* lut,
                        std::uint16_t* out) {
  detail::require_m(m, "scan_blocks");
  isa::scan(active_path(), packed, n_blocks, m, lut, out, false);
}
inline void scan_blocks(const std::uint8_t* packed, std::size_t n_blocks, const quantized_lut& lut,
                        std::uint16_t* out) {
  isa::scan(active_path(), packed, n_blocks, lut.m(), detail::checked_table(lut, "scan_blocks"), out, lut.sums_fit());
}

/// scan_blocks through path p (to compare the paths). Throws
/// invalid_argument on m = 0 or a path not in available_paths().
inline void scan_blocks_with(path p, const std::uint8_t* packed, std::size_t n_blocks, std::size_t m,
                             const std::uint8_t* lut, std::uint16_t* out) {
  detail::require_m(m, "scan_blocks_with");
  isa::check_path(p);
  isa::scan(p, packed, n_blocks, m, lut, out, false);
}
inline void scan_blocks_with(path p, const std::uint8_t* packed, std::size_t n_blocks, const quantized_lut& lut,
                             std::uint16_t* out) {
  const std::uint8_t* table = detail::checked_table(lut, "scan_blocks_with");
  isa::check_path(p);
  isa::scan(p, packed, n_blocks, lut.m(), table, out, lut.sums_fit());
}

/// out[i] = the sum for vector i < n of a buffer packed from n codes of m
/// sub-spaces (blocks(n) blocks; `out` needs only n values: the padding is
/// dropped). Throws invalid_argument on m = 0.
inline void estimates(const std::uint8_t* packed, std::size_t n, std::size_t m, const std::uint8_t* lut,
                      std::uint16_t* out) {
  detail::require_m(m, "estimates");
  isa::estimates(packed, n, m, lut, out, false);
}
inline void estimates(const std::uint8_t* packed, std::size_t n, const quantized_lut& lut, std::uint16_t* out) {
  isa::estimates(packed, n, lut.m(), detail::checked_table(lut, "estimates"), out, lut.sums_fit());
}

}  // namespace ANNULUS_DETAIL_SIMD_ABI

/// out[i] = lut.estimate(acc[i]) for i < n: the float distances.
inline void to_float(const quantized_lut& lut, const std::uint16_t* acc, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = lut.estimate(acc[i]);
}

}  // namespace annulus::fast_scan
