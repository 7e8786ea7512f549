// sq8_quantizer: per-dimension ranges, rounding to the nearest level,
// clamping outside the trained range, exactness on 256-level data, the
// asymmetric distances against the decoded vector, and refused ranges.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
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

// The integer form rounds only the query's weights: each to within half a
// step, so a distance moves by at most step/2 x the sum of the codes, and
// by about sqrt(dim) x 128 x step / sqrt(12) on random codes.
TEMPLATE_TEST_CASE("sq8: walk_distance is distance within its weights' rounding, at every dimension it serves", "[sq8]",
                   l2, inner_product, cosine) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{8}, std::size_t{33}, std::size_t{784},
                              sq8_quantizer::max_integer_dim}) {
    INFO("dimension " << d);
    auto rows = clustered(200, d, 5, 17 + d);
    for (std::size_t i = 0; i < rows.rows(); ++i)
      for (std::size_t j = 0; j < d; ++j) rows(i, j) *= float(1 + j % 7);  // uneven ranges
    sq8_quantizer sq(d);
    REQUIRE(sq.integer_walk());
    sq.train<TestType>(rows.view());
    const std::size_t bytes = sq.record_bytes<TestType>();
    CHECK(bytes == d + (TestType::kind == metric_kind::l2 ? 4 : 0));
    std::vector<std::uint8_t> code(bytes);
    std::vector<float> stored(d), q(d);
    const auto queries = clustered(4, d, 5, 99 + d);
    sq8_query prepared;
    double err_sq = 0;
    double rms_bound = 0;
    std::size_t pairs = 0;
    for (std::size_t qi = 0; qi < queries.rows(); ++qi) {
      store_rows<TestType>(queries.view().rows_slice(qi, 1), q.data());
      sq.template prepare<TestType>(q.data(), prepared);
      REQUIRE(prepared.integer);
      REQUIRE(prepared.weights.size() == d);
      rms_bound = std::max(rms_bound, std::sqrt(double(d)) * 128.0 * prepared.step);
      double weight_sum = 0;
      for (const std::int16_t w : prepared.weights) weight_sum += std::abs(double(w));
      CHECK(255.0 * weight_sum < 2147483648.0);  // the int32 sum cannot overflow
      for (std::size_t i = 0; i < rows.rows(); i += 3) {
        store_rows<TestType>(rows.view().rows_slice(i, 1), stored.data());
        sq.encode(stored.data(), code.data());
        if (TestType::kind == metric_kind::l2) sq.put_term(code.data());
        const double want = sq.template distance<TestType>(prepared, code.data());
        const double got = sq.template walk_distance<TestType>(prepared, code.data());
        double codes = 0;
        for (std::size_t j = 0; j < d; ++j) codes += code[j];
        const double bound = codes * prepared.step / 2 + 1e-5 * (std::abs(want) + std::abs(prepared.constant)) + 1e-6;
        INFO("query " << qi << " row " << i);
        REQUIRE(std::abs(got - want) <= bound);
        err_sq += (got - want) * (got - want);
        ++pairs;
      }
    }
    CHECK(std::sqrt(err_sq / double(pairs)) <= rms_bound + 1e-4);
  }
}

TEST_CASE("sq8: a term that is negative or not finite reads as 0, and put_term writes the code's sum of squares",
          "[sq8]") {
  const std::size_t d = 16;
  const auto rows = clustered(100, d, 3, 5);
  sq8_quantizer sq(d);
  sq.train<l2>(rows.view());
  std::vector<std::uint8_t> code(d + sq8_quantizer::term_bytes);
  sq.encode(rows.row_ptr(3), code.data());
  sq.put_term(code.data());
  float term;
  std::memcpy(&term, code.data() + d, sizeof term);
  double want = 0;
  for (std::size_t j = 0; j < d; ++j) want += std::pow(double(sq.scale()[j]) * code[j], 2);
  CHECK(term == Approx(want).epsilon(1e-6));
  CHECK(term == sq.code_term(code.data()));
  sq8_query prepared;
  sq.prepare<l2>(rows.row_ptr(7), prepared);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(code.data() + d, &nan, sizeof nan);
  REQUIRE(prepared.integer);
  // Approx: compilers may fuse the multiply and add here and not there; a
  // term read as anything but 0 would move the value by more than 1.
  const auto without_term = Approx(prepared.constant + prepared.step * float(kernels::dot_u8_i16(
                                                           code.data(), prepared.weights.data(), d)))
                                .epsilon(1e-6);
  REQUIRE(std::abs(prepared.constant) < 1e5f);
  CHECK(sq.walk_distance<l2>(prepared, code.data()) == without_term);
  const float inf = std::numeric_limits<float>::infinity(), negative = -1.f;
  std::memcpy(code.data() + d, &inf, sizeof inf);
  CHECK(sq.walk_distance<l2>(prepared, code.data()) == without_term);
  std::memcpy(code.data() + d, &negative, sizeof negative);
  CHECK(sq.walk_distance<l2>(prepared, code.data()) == without_term);
  // Without weights asked for, the query is for distance() only.
  sq.prepare<l2>(rows.row_ptr(7), prepared, false);
  CHECK_FALSE(prepared.integer);
}
