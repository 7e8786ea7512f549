#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/random.hpp"
#include "core/kernel_sets.hpp"

using namespace annulus;

namespace {
// |simd - reference| within a few float roundings of the magnitude summed.
void require_close(float got, float ref, double magnitude) {
  INFO("got " << got << ", reference " << ref);
  REQUIRE(std::abs(double(got) - double(ref)) <= 1e-5 * magnitude + 1e-6);
}
std::vector<std::size_t> dims() {
  std::vector<std::size_t> d;
  for (std::size_t i = 1; i <= 67; ++i) d.push_back(i);
  for (std::size_t i : {128, 784, 960}) d.push_back(i);
  return d;
}
}  // namespace

// Every kernel set this build can run on this CPU: the compiled-in set, or
// in a dispatching build the baseline and each set the CPU has.
TEST_CASE("kernels match the scalar reference at every dimension and offset", "[kernels]") {
  for (const kernels::kernel_set* set : kernel_sets_to_check()) {
  INFO("kernel set " << set->name);
  random_generator rng(1);
  // One extra float of room per misalignment offset: rows start at offsets 0..3
  // floats from the 64-byte boundary and are never aligned to the register.
  std::vector<float> a(960 + 16), b(960 + 16);
  for (float& x : a) x = float(rng.normal());
  for (float& x : b) x = float(rng.normal() * 3.0 + 1.0);
  for (std::size_t d : dims()) {
    for (std::size_t off_a : {0u, 1u, 3u}) {
      const std::size_t off_b = (off_a + 1) % 4;
      const float* pa = a.data() + off_a;
      const float* pb = b.data() + off_b;
      double mag_dot = 0, mag_l2 = 0, mag_n = 0;
      for (std::size_t j = 0; j < d; ++j) {
        mag_dot += std::abs(double(pa[j]) * pb[j]);
        mag_l2 += (double(pa[j]) - pb[j]) * (double(pa[j]) - pb[j]);
        mag_n += double(pa[j]) * pa[j];
      }
      INFO("d = " << d << ", offsets " << off_a << ", " << off_b);
      require_close(set->dot(pa, pb, d), kernels::scalar::dot(pa, pb, d), mag_dot);
      require_close(set->l2sq(pa, pb, d), kernels::scalar::l2sq(pa, pb, d), mag_l2);
      require_close(set->dot(pa, pa, d), kernels::scalar::norm_sq(pa, d), mag_n);
    }
  }
  }
}

TEST_CASE("kernels are exact on small integers, in any order", "[kernels]") {
  // Integer inputs whose sums stay below 2^24 are exact in float: a SIMD kernel
  // that drops or double-counts a tail element cannot hide behind tolerance.
  for (const kernels::kernel_set* set : kernel_sets_to_check()) {
  INFO("kernel set " << set->name);
  for (std::size_t d : dims()) {
    std::vector<float> a(d + 1), b(d + 1);
    for (std::size_t j = 0; j < d; ++j) {
      a[j + 1] = float(j % 7) - 3.f;
      b[j + 1] = float((j * 5) % 11);
    }
    INFO("d = " << d);
    REQUIRE(set->dot(a.data() + 1, b.data() + 1, d) == kernels::scalar::dot(a.data() + 1, b.data() + 1, d));
    REQUIRE(set->l2sq(a.data() + 1, b.data() + 1, d) == kernels::scalar::l2sq(a.data() + 1, b.data() + 1, d));
  }
  }
}

TEST_CASE("one-to-many kernels equal the one-to-one kernels per row", "[kernels]") {
  random_generator rng(2);
  for (std::size_t d : {1u, 7u, 33u, 784u}) {
    const std::size_t n = 37, stride = d + 3;  // padded rows: the view's stride is honoured
    std::vector<float> base(n * stride + 1), q(d + 1);
    for (float& x : base) x = float(rng.normal());
    for (float& x : q) x = float(rng.normal());
    const matrix_view<const float> rows(base.data() + 1, n, d, stride);
    for (const kernels::kernel_set* set : kernel_sets_to_check()) {
      std::vector<float> dots(n), l2s(n), norms(n);
      set->dot_many(q.data() + 1, rows, dots.data());
      set->l2sq_many(q.data() + 1, rows, l2s.data());
      set->norm_sq_many(rows, norms.data());
      for (std::size_t i = 0; i < n; ++i) {
        INFO("kernel set " << set->name << ", d = " << d << ", row " << i);
        REQUIRE(dots[i] == set->dot(q.data() + 1, rows.row_ptr(i), d));
        REQUIRE(l2s[i] == set->l2sq(q.data() + 1, rows.row_ptr(i), d));
        REQUIRE(norms[i] == set->dot(rows.row_ptr(i), rows.row_ptr(i), d));
      }
    }
  }
}

TEST_CASE("norm and norm_sq are the active set's dot", "[kernels]") {
  random_generator rng(4);
  std::vector<float> a(131);
  for (float& x : a) x = float(rng.normal());
  for (std::size_t d : {1u, 8u, 131u}) {
    REQUIRE(kernels::norm_sq(a.data(), d) == kernels::active().dot(a.data(), a.data(), d));
    REQUIRE(kernels::norm(a.data(), d) == std::sqrt(kernels::norm_sq(a.data(), d)));
  }
}

TEST_CASE("the GEMM kernels refuse misaligned blocks", "[kernels]") {
  alignas(64) float buf[64 + 1] = {};
  float q[4] = {};
  REQUIRE_THROWS_AS(kernels::row_products(q, 4, buf + 1, 0, buf), invalid_argument);
  REQUIRE_THROWS_AS(kernels::row_products(q, 4, buf, 0, buf + 1), invalid_argument);
  REQUIRE_THROWS_AS(kernels::panel_products(matrix_view<const float>(q, 1, 4), buf + 1, 1, buf, 16),
                    invalid_argument);
}

TEST_CASE("simd_target says what runs and how it was chosen", "[kernels]") {
  const kernels::simd_target_info t = kernels::simd_target();
  INFO("SIMD target: " << t.describe());
  REQUIRE(std::string(t.isa) == kernels::active().name);
  REQUIRE(t.chosen_at_run_time == kernels::chosen_at_run_time);
  REQUIRE_FALSE(std::string(t.compiled_for).empty());
  const auto sets = kernels::available_sets();
  REQUIRE(std::find(sets.begin(), sets.end(), &kernels::active()) != sets.end());
  if (t.chosen_at_run_time) {
    // No cap in the environment: the best set the CPU has.
    if (std::getenv("ANNULUS_SIMD_MAX") == nullptr) REQUIRE(&kernels::active() == sets.back());
    REQUIRE(t.describe().find("chosen at run time") != std::string::npos);
  } else {
    REQUIRE(sets.size() == 1);
    REQUIRE(t.describe().find("compiled in") != std::string::npos);
  }
}

TEST_CASE("selection kernels: argmin_key and first_at_most agree with plain loops", "[kernels]") {
  random_generator rng(3);
  for (const kernels::kernel_set* set : kernel_sets_to_check()) {
    for (std::size_t n : {1u, 3u, 16u, 17u, 64u, 100u, 257u}) {
      std::vector<float> dots(n), norms(n);
      for (std::size_t i = 0; i < n; ++i) {
        dots[i] = float(int(rng.below(9)) - 4);  // small integers: exact keys, many ties
        norms[i] = float(rng.below(5));
      }
      for (const float* nr : {static_cast<const float*>(norms.data()), static_cast<const float*>(nullptr)}) {
        std::size_t want = 0;
        float want_key = 0;
        for (std::size_t c = 0; c < n; ++c) {
          const float key = nr ? nr[c] - 2.f * dots[c] : -dots[c];
          if (c == 0 || key < want_key) want = c, want_key = key;
        }
        float key = -1;
        INFO("kernel set " << set->name << ", n = " << n << (nr ? ", l2 keys" : ", ip keys"));
        REQUIRE(set->argmin_key(dots.data(), nr, n, key) == want);
        REQUIRE(key == want_key);
      }
      for (float t : {-5.f, -4.f, 0.f, 3.5f, 10.f}) {
        std::size_t want = n;
        for (std::size_t j = 0; j < n && want == n; ++j)
          if (dots[j] <= t) want = j;
        REQUIRE(set->first_at_most(dots.data(), n, t) == want);
      }
    }
  }
}

TEST_CASE("sq8 kernels match a double-precision loop at every dimension and offset", "[kernels][sq8]") {
  for (const kernels::kernel_set* set : kernel_sets_to_check()) {
    INFO("kernel set " << set->name);
    random_generator rng(7);
    std::vector<float> a(960 + 3), scale(960 + 3), w(960 + 3);
    std::vector<std::uint8_t> codes(960 + 3);
    for (float& x : a) x = float(rng.normal() * 50.0);
    for (float& x : scale) x = float(rng.uniform() * 0.5 + 0.01);
    for (float& x : w) x = float(rng.normal());
    for (std::uint8_t& c : codes) c = std::uint8_t(rng.uniform() * 256.0);
    codes[0] = 255;  // the widening must not sign-extend
    for (std::size_t d : dims())
      for (std::size_t off = 0; off < 3; ++off) {
        INFO("d " << d << " offset " << off);
        double l2 = 0, dot = 0, mag_l2 = 0, mag_dot = 0;
        for (std::size_t i = 0; i < d; ++i) {
          const double t = double(scale[off + i]) * codes[off + i] + a[off + i];
          l2 += t * t;
          mag_l2 += t * t;
          dot += double(w[off + i]) * codes[off + i];
          mag_dot += std::abs(double(w[off + i]) * codes[off + i]);
        }
        require_close(set->sq8_l2(a.data() + off, scale.data() + off, codes.data() + off, d), float(l2), mag_l2);
        require_close(set->sq8_dot(w.data() + off, codes.data() + off, d), float(dot), mag_dot);
      }
  }
}

TEST_CASE("kernels: dot_u8_i16 of every set equals the integer sum exactly, at the largest weights", "[kernels][sq8]") {
  for (const kernels::kernel_set* set : kernel_sets_to_check()) {
    INFO("kernel set " << set->name);
    random_generator rng(11);
    const std::size_t most = 960 + 3;
    std::vector<std::int16_t> w(most);
    std::vector<std::uint8_t> codes(most);
    for (std::uint8_t& c : codes) c = std::uint8_t(rng.uniform() * 256.0);
    // Weights at both int16 ends, so a sign-extended byte or a saturating
    // multiply-add would show; dimensions short enough that the sum fits.
    for (std::size_t i = 0; i < most; ++i) w[i] = i % 3 == 0 ? std::int16_t(-32768) : i % 3 == 1 ? std::int16_t(32767) : std::int16_t(rng.uniform() * 2000.0 - 1000.0);
    codes[0] = 255;
    codes[1] = 255;
    for (std::size_t d : dims())
      for (std::size_t off = 0; off < 3; ++off) {
        if (d + off > most || 255.0 * 32768.0 * double(d) >= 2147483648.0) continue;
        INFO("d " << d << " offset " << off);
        std::int64_t want = 0;
        for (std::size_t i = 0; i < d; ++i) want += std::int64_t{codes[off + i]} * w[off + i];
        CHECK(set->dot_u8_i16(codes.data() + off, w.data() + off, d) == want);
      }
    // The full-length case at weights the walk can use there: |w| <= 2^31 / (255 d).
    const std::size_t d = 960;
    const auto cap = std::int16_t(2147483647 / (255 * d));
    for (std::size_t i = 0; i < d; ++i) { codes[i] = 255; w[i] = i % 2 ? cap : std::int16_t(-cap); }
    std::int64_t want = 0;
    for (std::size_t i = 0; i < d; ++i) want += std::int64_t{codes[i]} * w[i];
    CHECK(set->dot_u8_i16(codes.data(), w.data(), d) == want);
    for (std::size_t i = 0; i < d; ++i) w[i] = cap;
    CHECK(set->dot_u8_i16(codes.data(), w.data(), d) == std::int64_t{255} * cap * std::int64_t(d));
  }
}
