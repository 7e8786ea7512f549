// 4-bit PQ fast scan: the packed layout round-trips, every instruction set
// the host runs gives the scalar reference's sums bit for bit (saturation
// included), the float estimate stays within its documented bound, the
// estimates rank real PQ codes well enough to re-rank, and bad sizes throw.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "annulus/quant/fast_scan.hpp"
#include "annulus/quant/pq.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {
std::vector<std::uint8_t> random_codes(std::size_t n, std::size_t m, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> codes(n * m);
  for (auto& c : codes) c = static_cast<std::uint8_t>(gen() % 16);
  return codes;
}
// The float sum the estimate approximates, in double.
double exact_sum(const std::vector<float>& t, const std::uint8_t* code, std::size_t m) {
  double s = 0;
  for (std::size_t j = 0; j < m; ++j) s += t[16 * j + code[j]];
  return s;
}
}  // namespace

TEST_CASE("fast_scan: pack and unpack round-trip, padding is zero", "[fast_scan]") {
  for (std::size_t m : {1u, 2u, 7u, 8u, 33u}) {
    for (std::size_t n : {0u, 1u, 31u, 32u, 33u, 70u}) {
      INFO("n " << n << ", m " << m);
      const auto codes = random_codes(n, m, std::uint32_t(n * 100 + m));
      const auto packed = fast_scan::pack(codes.data(), n, m);
      REQUIRE(packed.size() == fast_scan::blocks(n) * fast_scan::pairs(m) * 32);
      CHECK(fast_scan::unpack(packed.data(), n, m) == codes);
      for (std::size_t i = 0; i < n; ++i) {
        if (m % 2 == 1) REQUIRE(fast_scan::code_at(packed.data(), m, i, m) == 0);
        for (std::size_t j = 0; j < m; ++j) REQUIRE(fast_scan::code_at(packed.data(), m, i, j) == codes[i * m + j]);
      }
      for (std::size_t i = n; i < fast_scan::blocks(n) * 32; ++i)
        for (std::size_t j = 0; j < m; ++j) REQUIRE(fast_scan::code_at(packed.data(), m, i, j) == 0);
    }
  }
  // The layout is fixed: byte i of a pair holds vector i, even sub-space low.
  const std::uint8_t codes[] = {1, 2, 3, 4, 5, 6};  // two vectors of m = 3
  const auto packed = fast_scan::pack(codes, 2, 3);
  REQUIRE(packed.size() == 64);
  CHECK(packed[0] == 0x21);
  CHECK(packed[1] == 0x54);
  CHECK(packed[32] == 0x03);
  CHECK(packed[33] == 0x06);
  CHECK(packed[2] == 0);
}

TEST_CASE("fast_scan: every available path equals the scalar reference bit for bit", "[fast_scan]") {
  const auto paths = fast_scan::available_paths();
  std::string names;
  for (auto p : paths) names += std::string(fast_scan::path_name(p)) + " ";
  INFO("paths: " << names << "active " << fast_scan::path_name(fast_scan::active_path()));
  REQUIRE(paths.front() == fast_scan::path::scalar);
  CHECK(std::find(paths.begin(), paths.end(), fast_scan::active_path()) != paths.end());
  std::mt19937 gen(11);
  std::size_t saturated = 0;
  for (std::size_t m : {1u, 2u, 3u, 4u, 5u, 15u, 16u, 17u, 32u, 64u, 65u, 130u, 255u, 256u, 257u, 300u, 513u}) {
    for (int kind = 0; kind < 3; ++kind) {  // small entries, any byte, near 255
      const std::size_t n_blocks = 1 + gen() % 4, n = n_blocks * 32;
      const auto codes = random_codes(n, m, gen());
      const auto packed = fast_scan::pack(codes.data(), n, m);
      std::vector<std::uint8_t> lut(fast_scan::lut_bytes(m));
      for (auto& b : lut)
        b = static_cast<std::uint8_t>(kind == 0 ? gen() % 16 : kind == 1 ? gen() % 256 : 240 + gen() % 16);
      std::vector<std::uint16_t> want(n), got(n);
      fast_scan::scan_blocks_with(fast_scan::path::scalar, packed.data(), n_blocks, m, lut.data(), want.data());
      // The reference is what it says: min(65535, the sum of every table byte, padding included).
      for (std::size_t i = 0; i < n; ++i) {
        std::size_t s = 0;
        for (std::size_t j = 0; j < 2 * fast_scan::pairs(m); ++j)
          s += lut[16 * j + fast_scan::code_at(packed.data(), m, i, j)];
        REQUIRE(want[i] == std::min<std::size_t>(s, 65535));
        saturated += s > 65535;
      }
      for (auto p : paths) {
        INFO("path " << fast_scan::path_name(p) << ", m " << m << ", kind " << kind);
        std::fill(got.begin(), got.end(), 0xABCD);
        fast_scan::scan_blocks_with(p, packed.data(), n_blocks, m, lut.data(), got.data());
        REQUIRE(got == want);
      }
      std::fill(got.begin(), got.end(), 0xABCD);
      fast_scan::scan_blocks(packed.data(), n_blocks, m, lut.data(), got.data());
      REQUIRE(got == want);
    }
  }
  CHECK(saturated > 100);  // the large-table cases did reach the cap
}

TEST_CASE("fast_scan: quantize_lut's tables give the reference sums on every path, large m included", "[fast_scan]") {
  // Their sums cannot saturate (sums_fit), so the AVX2 path adds without
  // saturating; with m above 256 the raw-table call would saturate instead.
  std::mt19937 gen(17);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (std::size_t m : {196u, 257u, 392u, 600u, 1001u}) {
    std::vector<float> t(16 * m);
    for (auto& v : t) v = u(gen);
    const auto lut = fast_scan::quantize_lut(t.data(), m);
    REQUIRE(lut.sums_fit());
    const std::size_t n_blocks = 3, n = 32 * n_blocks;
    auto codes = random_codes(n, m, gen());
    // Vector 0 takes every row's largest byte: the largest sum the table allows.
    std::size_t largest = 0;
    for (std::size_t j = 0; j < m; ++j) {
      const auto row = lut.table().begin() + std::ptrdiff_t(16 * j);
      codes[j] = static_cast<std::uint8_t>(std::max_element(row, row + 16) - row);
      largest += row[codes[j]];
    }
    const auto packed = fast_scan::pack(codes.data(), n, m);
    std::vector<std::uint16_t> want(n), got(n);
    fast_scan::scan_blocks_with(fast_scan::path::scalar, packed.data(), n_blocks, m, lut.table().data(), want.data());
    REQUIRE(want[0] == largest);
    if (m > 256) CHECK(largest > 50000);  // near the limit, past 2^15: every bit of the lanes in play
    for (auto p : fast_scan::available_paths()) {
      INFO("path " << fast_scan::path_name(p) << ", m " << m);
      std::fill(got.begin(), got.end(), 0xABCD);
      fast_scan::scan_blocks_with(p, packed.data(), n_blocks, lut, got.data());
      REQUIRE(got == want);
    }
    std::fill(got.begin(), got.end(), 0xABCD);
    fast_scan::scan_blocks(packed.data(), n_blocks, lut, got.data());
    REQUIRE(got == want);
  }
  // A table made from bytes whose sums can pass 65535 (sums_fit false) saturates on every path.
  const std::size_t m = 513, n_blocks = 2, n = 64;
  const auto codes = random_codes(n, m, 99);
  const auto packed = fast_scan::pack(codes.data(), n, m);
  const fast_scan::quantized_lut big(m, std::vector<std::uint8_t>(fast_scan::lut_bytes(m), 250), 0.f, 1.f);
  CHECK_FALSE(big.sums_fit());
  std::vector<std::uint16_t> got(n);
  for (auto p : fast_scan::available_paths()) {
    INFO("path " << fast_scan::path_name(p));
    fast_scan::scan_blocks_with(p, packed.data(), n_blocks, big, got.data());
    CHECK(std::all_of(got.begin(), got.end(), [](std::uint16_t v) { return v == 65535; }));
  }
}

TEST_CASE("fast_scan: estimates keep n values and match the block scan", "[fast_scan]") {
  const std::size_t n = 77, m = 9;
  const auto codes = random_codes(n, m, 5);
  const auto packed = fast_scan::pack(codes.data(), n, m);
  std::vector<std::uint8_t> lut(fast_scan::lut_bytes(m));
  std::mt19937 gen(3);
  for (auto& b : lut) b = static_cast<std::uint8_t>(gen());
  std::vector<std::uint16_t> blocks(fast_scan::blocks(n) * 32), est(n + 1, 0x1234);
  fast_scan::scan_blocks_with(fast_scan::path::scalar, packed.data(), fast_scan::blocks(n), m, lut.data(),
                              blocks.data());
  fast_scan::estimates(packed.data(), n, m, lut.data(), est.data());
  CHECK(std::equal(est.begin(), est.begin() + n, blocks.begin()));
  CHECK(est[n] == 0x1234);  // nothing written past n
}

TEST_CASE("fast_scan: the float estimate is within m * 0.5 / scale of the float sum", "[fast_scan]") {
  std::mt19937 gen(21);
  for (std::size_t m : {1u, 3u, 8u, 16u, 33u, 64u, 200u, 600u}) {
    for (int spread = 0; spread < 3; ++spread) {
      // Sub-spaces of very different ranges (one dominates the scale), with negative entries.
      std::uniform_real_distribution<float> u(-1.f, 1.f);
      std::vector<float> t(16 * m);
      for (std::size_t j = 0; j < m; ++j) {
        const float range = spread == 0 ? 1.f : spread == 1 ? std::pow(10.f, u(gen) * 3) : (j == 0 ? 1000.f : 0.01f);
        for (std::size_t c = 0; c < 16; ++c) t[16 * j + c] = 5.f + range * u(gen);
      }
      const auto q = fast_scan::quantize_lut(t.data(), m);
      REQUIRE(q.table().size() == fast_scan::lut_bytes(m));
      REQUIRE(q.scale() > 0.f);
      // No saturation: the per-sub-space maxima sum within uint16; the padding is zero.
      std::size_t max_sum = 0;
      for (std::size_t j = 0; j < m; ++j) max_sum += *std::max_element(&q.table()[16 * j], &q.table()[16 * j] + 16);
      REQUIRE(max_sum <= 65535);
      if (m % 2 == 1) CHECK(std::all_of(q.table().end() - 16, q.table().end(), [](auto b) { return b == 0; }));
      const std::size_t n = 200;
      const auto codes = random_codes(n, m, gen());
      const auto packed = fast_scan::pack(codes.data(), n, m);
      std::vector<std::uint16_t> acc(n);
      std::vector<float> est(n);
      fast_scan::estimates(packed.data(), n, q, acc.data());
      fast_scan::to_float(q, acc.data(), n, est.data());
      for (std::size_t i = 0; i < n; ++i) {
        const double exact = exact_sum(t, codes.data() + i * m, m);
        // Float rounding on top of the bound: a few ulp of the terms' magnitudes.
        double mag = std::abs(q.bias()) + acc[i] / q.scale();
        for (std::size_t j = 0; j < m; ++j) mag += std::abs(t[16 * j + codes[i * m + j]]);
        INFO("m " << m << ", spread " << spread << ", vector " << i << ", scale " << q.scale());
        REQUIRE(est[i] == q.estimate(acc[i]));
        REQUIRE(std::abs(double(est[i]) - exact) <= q.error_bound() + 1e-6 * mag);
      }
    }
  }
  // Flat tables: every byte zero, the estimate is the bias.
  std::vector<float> flat(16 * 4, 2.5f);
  const auto q = fast_scan::quantize_lut(flat.data(), 4);
  CHECK(std::all_of(q.table().begin(), q.table().end(), [](auto b) { return b == 0; }));
  CHECK(q.estimate(0) == 10.f);
}

TEST_CASE("fast_scan: quantize_lut's bytes are the rounded scaled offsets from each row's minimum", "[fast_scan]") {
  // The row kernels (SSE2 on x86-64, NEON, scalar elsewhere) against the
  // definition, computed in double: equal but for a rounding tie or a fused
  // multiply-add, never more than 1 apart. m = 600 crosses the 256-row chunks.
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (std::size_t m : {1u, 7u, 256u, 257u, 600u}) {
    const std::size_t stride = 24;  // a padded table, as product_quantizer's
    std::vector<float> t(stride * m, std::nanf(""));  // the padding must never be read
    for (std::size_t j = 0; j < m; ++j)
      for (std::size_t c = 0; c < 16; ++c) t[stride * j + c] = std::ldexp(u(gen), int(j % 5)) - float(j);
    const auto q = fast_scan::quantize_lut(t.data(), m, stride);
    double bias = 0;
    std::size_t differ = 0;
    for (std::size_t j = 0; j < m; ++j) {
      const float* row = t.data() + stride * j;
      const float lo = *std::min_element(row, row + 16);
      bias += lo;
      CHECK(*std::min_element(&q.table()[16 * j], &q.table()[16 * j] + 16) == 0);
      for (std::size_t c = 0; c < 16; ++c) {
        const double want = std::min(std::floor((double(row[c]) - lo) * q.scale() + 0.5), 255.0);
        INFO("m " << m << ", row " << j << ", entry " << c);
        REQUIRE(std::abs(double(q.table()[16 * j + c]) - want) <= 1.0);
        differ += double(q.table()[16 * j + c]) != want;
      }
    }
    CHECK(differ * 100 <= 16 * m);  // ties and fused rounding are rare
    CHECK(q.bias() == Approx(bias).epsilon(1e-5));
    // The scale from every row's true range (a wrong maximum would change it
    // and hide behind the bytes' clamp at 255), and sums that cannot saturate.
    double range_max = 0, range_sum = 0;
    std::size_t max_sum = 0;
    for (std::size_t j = 0; j < m; ++j) {
      const float* row = t.data() + stride * j;
      const double range = double(*std::max_element(row, row + 16)) - double(*std::min_element(row, row + 16));
      range_max = std::max(range_max, range);
      range_sum += range;
      max_sum += *std::max_element(&q.table()[16 * j], &q.table()[16 * j] + 16);
    }
    const double scale = std::min(255.0 / range_max, (65535.0 - 0.5 * double(m)) / range_sum);
    CHECK(double(q.scale()) <= scale);
    CHECK(double(q.scale()) >= scale * (1 - 1e-6));
    CHECK(max_sum <= 65535);
  }
}

TEST_CASE("fast_scan: quantize_lut refuses a non-finite entry wherever it sits", "[fast_scan]") {
  const std::size_t m = 300;  // two chunks of rows
  std::vector<float> t(16 * m);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = float(i % 37) * 0.25f;
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
    for (std::size_t j : {0u, 1u, 255u, 256u, 299u})
      for (std::size_t c = 0; c < 16; ++c) {
        const float keep = t[16 * j + c];
        t[16 * j + c] = bad;
        CHECK_THROWS_MATCHES(fast_scan::quantize_lut(t.data(), m), invalid_argument,
                             message_has("entry " + std::to_string(c) + " of sub-space " + std::to_string(j) +
                                         " is not finite"));
        t[16 * j + c] = keep;
      }
  CHECK_NOTHROW(fast_scan::quantize_lut(t.data(), m));
}

TEST_CASE("fast_scan: estimates re-ranked 4x deep find the float-table top 10 on real PQ codes", "[fast_scan]") {
  const std::size_t dim = 64, m = 16, n = 4000, k = 10, depth = 4 * k;
  const auto base = annulus::testing::clustered(n, dim, 40, 1);
  const auto queries = annulus::testing::clustered(30, dim, 40, 2);
  product_quantizer pq(dim, m, 4);
  pq.train(base.view(), {.iterations = 10});
  std::vector<std::uint8_t> codes(n * m);
  pq.encode(base.view(), codes.data());
  const auto packed = fast_scan::pack(codes.data(), n, m);
  // Centroid c of every sub-space: the decoded code (c, c, ..., c).
  std::vector<float> centroids(16 * dim);
  for (std::uint8_t c = 0; c < 16; ++c) {
    const std::vector<std::uint8_t> code(m, c);
    pq.decode(code.data(), centroids.data() + c * dim);
  }
  const std::size_t dsub = dim / m;
  double recall = 0, fast_only = 0;
  std::vector<float> t(16 * m);
  std::vector<std::uint16_t> est(n);
  std::vector<std::size_t> order(n);
  for (std::size_t qi = 0; qi < queries.rows(); ++qi) {
    const float* q = queries.row_ptr(qi);
    for (std::size_t j = 0; j < m; ++j)  // squared l2 from the query's sub-vector to each centroid
      for (std::size_t c = 0; c < 16; ++c)
        t[16 * j + c] = kernels::scalar::l2sq(q + j * dsub, centroids.data() + c * dim + j * dsub, dsub);
    std::vector<double> adc(n);
    for (std::size_t i = 0; i < n; ++i) adc[i] = exact_sum(t, codes.data() + i * m, m);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](auto a, auto b) { return adc[a] < adc[b] || (adc[a] == adc[b] && a < b); });
    const std::vector<std::size_t> truth(order.begin(), order.begin() + k);

    const auto lut = fast_scan::quantize_lut(t.data(), m);
    fast_scan::estimates(packed.data(), n, lut, est.data());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + depth, order.end(),
                      [&](auto a, auto b) { return est[a] < est[b] || (est[a] == est[b] && a < b); });
    auto hits = [&](std::size_t count) {
      std::size_t h = 0;
      for (std::size_t i = 0; i < count; ++i) h += std::count(truth.begin(), truth.end(), order[i]);
      return double(h) / k;
    };
    fast_only += hits(k);
    std::sort(order.begin(), order.begin() + depth, [&](auto a, auto b) { return adc[a] < adc[b]; });
    recall += hits(k);
  }
  recall /= double(queries.rows());
  fast_only /= double(queries.rows());
  INFO("recall@10 after re-rank " << recall << ", without " << fast_only);
  CHECK(recall >= 0.9);
  CHECK(fast_only >= 0.5);
}

TEST_CASE("fast_scan: bad sizes and values are refused", "[fast_scan]") {
  const std::uint8_t codes[] = {1, 2, 16, 3};
  CHECK_THROWS_MATCHES(fast_scan::pack(codes, 2, 2), invalid_argument, message_has("does not fit 4 bits"));
  CHECK_THROWS_MATCHES(fast_scan::pack(codes, 2, 0), invalid_argument, message_has("m must be at least 1"));
  CHECK_THROWS_AS(fast_scan::packed_bytes(std::size_t(-1) / 2, 1000), invalid_argument);
  CHECK_THROWS_AS(fast_scan::unpack(codes, 1, 0), invalid_argument);
  std::vector<float> t(16 * 3, 1.f);
  CHECK_THROWS_MATCHES(fast_scan::quantize_lut(t.data(), 0), invalid_argument, message_has("m must be 1.."));
  CHECK_THROWS_AS(fast_scan::quantize_lut(t.data(), fast_scan::max_m + 1), invalid_argument);
  CHECK_THROWS_MATCHES(fast_scan::quantize_lut(t.data(), 3, 8), invalid_argument, message_has("stride 8 < 16"));
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    t[20] = bad;
    CHECK_THROWS_MATCHES(fast_scan::quantize_lut(t.data(), 3), invalid_argument,
                         message_has("entry 4 of sub-space 1 is not finite"));
  }
  t[20] = std::numeric_limits<float>::max();  // finite, however large: quantized, not refused
  CHECK_NOTHROW(fast_scan::quantize_lut(t.data(), 3));
  std::uint8_t packed[64] = {}, lut[64] = {};  // room for m = 4 (64-byte blocks and tables)
  std::uint16_t out[32];
  CHECK_THROWS_AS(fast_scan::scan_blocks(packed, 1, 0, lut, out), invalid_argument);
  CHECK_THROWS_AS(fast_scan::estimates(packed, 1, 0, lut, out), invalid_argument);
  // A table made from bytes of the wrong size, or with a bad scale or bias, is refused when made.
  CHECK_THROWS_MATCHES(fast_scan::quantized_lut(4, std::vector<std::uint8_t>(16), 0.f, 1.f), invalid_argument,
                       message_has("expected 64"));
  CHECK_THROWS_AS(fast_scan::quantized_lut(0, {}, 0.f, 1.f), invalid_argument);
  CHECK_THROWS_AS(fast_scan::quantized_lut(4, std::vector<std::uint8_t>(64), 0.f, 0.f), invalid_argument);
  CHECK_THROWS_MATCHES(fast_scan::quantized_lut(4, std::vector<std::uint8_t>(64), std::nanf(""), 1.f),
                       invalid_argument, message_has("bias"));
  CHECK_THROWS_AS(fast_scan::quantized_lut(4, std::vector<std::uint8_t>(64), -INFINITY, 1.f), invalid_argument);
  CHECK_NOTHROW(fast_scan::quantized_lut(4, std::vector<std::uint8_t>(64), -3.f, 1.f));
  const fast_scan::quantized_lut empty;  // default: no table yet
  CHECK_THROWS_AS(fast_scan::estimates(packed, 1, empty, out), invalid_argument);
  CHECK_THROWS_AS(fast_scan::scan_blocks(packed, 1, empty, out), invalid_argument);
  // Bytes whose row maxima sum within 65535 may add without saturating.
  CHECK(fast_scan::quantized_lut(4, std::vector<std::uint8_t>(64, 255), 0.f, 1.f).sums_fit());
  const auto av = fast_scan::available_paths();
  for (auto p : {fast_scan::path::ssse3, fast_scan::path::neon, fast_scan::path::avx2, fast_scan::path::avx512})
    if (std::find(av.begin(), av.end(), p) == av.end())
      CHECK_THROWS_MATCHES(fast_scan::scan_blocks_with(p, packed, 1, 1, lut, out), invalid_argument,
                           message_has("not available"));
}
