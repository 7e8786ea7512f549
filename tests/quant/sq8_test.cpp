// sq8_quantizer: per-dimension ranges, rounding to the nearest level,
// clamping outside the trained range, exactness on 256-level data, the
// asymmetric distances against the decoded vector, and refused ranges.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "annulus/core/metric.hpp"
#include "annulus/quant/sq8.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::clustered;
using annulus::testing::message_has;

TEST_CASE("sq8: each dimension gets its own range, and codes land within half a step", "[sq8]") {
  const std::size_t d = 24;
  auto rows = clustered(500, d, 5, 1);
  for (std::size_t i = 0; i < rows.rows(); ++i) rows(i, 3) *= 1000.f, rows(i, 7) = 2.5f;  // a wide and a constant dimension
  sq8_quantizer sq(d);
  CHECK_FALSE(sq.trained());
  sq.train<l2>(rows.view());
  REQUIRE(sq.trained());
  CHECK(sq.scale()[7] == 0.f);
  CHECK(sq.min()[7] == 2.5f);
  CHECK(sq.scale()[3] > 100 * sq.scale()[0]);
  std::vector<std::uint8_t> code(d);
  bool top_seen = false, bottom_seen = false;
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    sq.encode(&rows(i, 0), code.data());
    for (std::size_t j = 0; j < d; ++j) {
      INFO("row " << i << " dim " << j);
      CHECK(std::abs(sq.decode(j, code[j]) - rows(i, j)) <= 0.5001f * sq.scale()[j] + 1e-6f);
      top_seen = top_seen || code[j] == 255;
      bottom_seen = bottom_seen || code[j] == 0;
    }
  }
  CHECK(top_seen);
  CHECK(bottom_seen);
}

TEST_CASE("sq8: values outside the trained range clamp to its ends", "[sq8]") {
  matrix<float> rows(2, 3);
  for (std::size_t j = 0; j < 3; ++j) rows(0, j) = -1.f, rows(1, j) = 1.f;
  sq8_quantizer sq(3);
  sq.train<l2>(rows.view());
  const float v[3] = {-50.f, 0.f, 1e30f};
  std::uint8_t code[3];
  sq.encode(v, code);
  CHECK(code[0] == 0);
  CHECK((code[1] == 127 || code[1] == 128));
  CHECK(code[2] == 255);
}

TEMPLATE_TEST_CASE("sq8: on 256-level data codes are exact, and distances are the decoded vector's", "[sq8]", l2,
                   inner_product, cosine) {
  const std::size_t d = 40, n = 300;
  matrix<float> rows(n, d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) rows(i, j) = float((i * 37 + j * 11) % 256);  // 0..255, both ends in every dimension
  sq8_quantizer sq(d);
  sq.train<TestType>(rows.view());
  std::vector<std::uint8_t> code(d);
  std::vector<float> stored(d), decoded(d);
  const auto queries = clustered(5, d, 2, 9);
  sq8_query prepared;
  for (std::size_t i = 0; i < n; i += 7) {
    store_rows<TestType>(rows.view().rows_slice(i, 1), stored.data());
    sq.encode(stored.data(), code.data());
    for (std::size_t j = 0; j < d; ++j) decoded[j] = sq.decode(j, code[j]);
    if constexpr (!TestType::normalizes)
      for (std::size_t j = 0; j < d; ++j) REQUIRE(decoded[j] == stored[j]);  // exact: 256 levels, step 1
    for (std::size_t qi = 0; qi < queries.rows(); ++qi) {
      std::vector<float> q(d);
      store_rows<TestType>(queries.view().rows_slice(qi, 1), q.data());
      sq.template prepare<TestType>(q.data(), prepared);
      const float got = sq.template distance<TestType>(prepared, code.data());
      const float want = TestType::distance(q.data(), decoded.data(), d);
      INFO("row " << i << " query " << qi);
      CHECK(got == Approx(want).epsilon(1e-4).margin(1e-3));
    }
  }
}

TEST_CASE("sq8: restore refuses ranges that are not finite or step backwards", "[sq8]") {
  sq8_quantizer sq(2);
  const float good_min[2] = {0, 1}, good_scale[2] = {1, 0};
  sq.restore(good_min, good_scale);
  CHECK(sq.trained());
  const float inf = std::numeric_limits<float>::infinity();
  const float bad_scale[2] = {1, -1}, nan_min[2] = {std::nanf(""), 0}, huge_scale[2] = {3e38f, 0};
  CHECK_THROWS_MATCHES(sq.restore(good_min, bad_scale), invalid_argument, message_has("dimension 1"));
  CHECK_THROWS_AS(sq.restore(nan_min, good_scale), invalid_argument);
  CHECK_THROWS_AS(sq.restore(good_min, huge_scale), invalid_argument);
  const float inf_min[2] = {inf, 0};
  CHECK_THROWS_AS(sq.restore(inf_min, good_scale), invalid_argument);
  CHECK_THROWS_MATCHES(sq.restore(std::span<const float>(good_min, 1), good_scale), invalid_argument,
                       message_has("2 ranges expected"));
}
