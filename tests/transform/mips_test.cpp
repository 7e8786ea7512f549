// The norm augmentation functions (transform/mips.hpp) for a user's own l2
// index: augmented norms, the inner-product order, the dot recovered from
// the l2 distance, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <span>

#include "annulus/index/flat.hpp"
#include "annulus/transform/mips.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {
double exact_dot(std::span<const float> a, const float* b) {
  double s = 0;
  for (std::size_t j = 0; j < a.size(); ++j) s += double(a[j]) * b[j];
  return s;
}
double norm_of(std::span<const float> a) { return std::sqrt(exact_dot(a, a.data())); }
}  // namespace

TEST_CASE("mips: the free functions augment for a user's own l2 index", "[mips]") {
  const auto base = annulus::testing::clustered(500, 12, 4, 41);
  const auto queries = annulus::testing::clustered(20, 12, 4, 42);
  const double m = 1.25 * mips::max_norm(base.view());
  const matrix<float> items = mips::augment_items(base.view(), m);
  const matrix<float> qs = mips::augment_queries(queries.view());
  REQUIRE(items.cols() == 13);
  REQUIRE(qs.cols() == 13);
  for (std::size_t i = 0; i < items.rows(); ++i) CHECK(norm_of(items.row(i)) == Approx(m).epsilon(1e-6));
  for (std::size_t i = 0; i < qs.rows(); ++i) CHECK(qs(i, 12) == 0.f);

  const auto own = flat_index<l2>::build(items.view());
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto got = own.search(qs.row(i), 5);
    const auto truth = annulus::testing::brute_force<inner_product>(base.view(), queries.row_ptr(i), 5);
    for (std::size_t r = 0; r < 5; ++r) {
      REQUIRE(got[r].label == truth[r].label);
      const double qn = exact_dot(queries.row(i), queries.row_ptr(i));
      CHECK(mips::inner_product_from_l2(got[r].distance, qn, m) ==
            Approx(-double(truth[r].distance)).margin(1e-5 * (qn + m * m)));
    }
  }
  CHECK_THROWS_MATCHES(mips::augment_items(base.view(), 0.5 * m), capacity_error, message_has("rebuild"));
  CHECK_THROWS_AS(mips::augment_items(base.view(), -1.0), invalid_argument);
}
