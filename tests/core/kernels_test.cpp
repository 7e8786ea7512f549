#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/random.hpp"

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

TEST_CASE("kernels match the scalar reference at every dimension and offset", "[kernels]") {
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
      require_close(kernels::dot(pa, pb, d), kernels::scalar::dot(pa, pb, d), mag_dot);
      require_close(kernels::l2sq(pa, pb, d), kernels::scalar::l2sq(pa, pb, d), mag_l2);
      require_close(kernels::norm_sq(pa, d), kernels::scalar::norm_sq(pa, d), mag_n);
      require_close(kernels::norm(pa, d), float(std::sqrt(mag_n)), std::sqrt(mag_n));
    }
  }
}

TEST_CASE("kernels are exact on small integers, in any order", "[kernels]") {
  // Integer inputs whose sums stay below 2^24 are exact in float: a SIMD kernel
  // that drops or double-counts a tail element cannot hide behind tolerance.
  for (std::size_t d : dims()) {
    std::vector<float> a(d + 1), b(d + 1);
    for (std::size_t j = 0; j < d; ++j) {
      a[j + 1] = float(j % 7) - 3.f;
      b[j + 1] = float((j * 5) % 11);
    }
    INFO("d = " << d);
    REQUIRE(kernels::dot(a.data() + 1, b.data() + 1, d) ==
            kernels::scalar::dot(a.data() + 1, b.data() + 1, d));
    REQUIRE(kernels::l2sq(a.data() + 1, b.data() + 1, d) ==
            kernels::scalar::l2sq(a.data() + 1, b.data() + 1, d));
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
    std::vector<float> dots(n), l2s(n), norms(n);
    kernels::dot_many(q.data() + 1, rows, dots.data());
    kernels::l2sq_many(q.data() + 1, rows, l2s.data());
    kernels::norm_sq_many(rows, norms.data());
    for (std::size_t i = 0; i < n; ++i) {
      INFO("d = " << d << ", row " << i);
      REQUIRE(dots[i] == kernels::dot(q.data() + 1, rows.row_ptr(i), d));
      REQUIRE(l2s[i] == kernels::l2sq(q.data() + 1, rows.row_ptr(i), d));
      REQUIRE(norms[i] == kernels::norm_sq(rows.row_ptr(i), d));
    }
  }
}

TEST_CASE("simd_target names an instruction set", "[kernels]") {
  const std::string name = kernels::simd_target();
  INFO("SIMD target: " << name << ", " << kernels::simd_width << " floats per register");
  REQUIRE_FALSE(name.empty());
  REQUIRE(kernels::simd_width >= 1);
}
