// banded_mips_index out of memory (support/alloc_failure.hpp): what it
// promises (index/banded_mips.hpp, "Failure"). An add whose rows all go to
// one band is that band's add: all-or-nothing, answers included. An add
// across bands that fails in a later band removes its rows from the earlier
// ones: size and labels come back, the earlier bands' graph links do not
// (not tested: they may differ), and that undo needs a little memory (so one
// failing allocation is injected here, not memory that stays exhausted).
#include <catch2/catch.hpp>

#include <algorithm>
#include <new>
#include <vector>

#include "annulus/eval/synthetic.hpp"
#include "annulus/index/banded_mips.hpp"
#include "support/alloc_failure.hpp"

using namespace annulus;
using annulus::testing::fail_allocation_at;

namespace {
using bands = banded_mips_index<>;

const matrix<float>& items() {
  static const matrix<float> m =
      gaussian_mixture(16, {.clusters = 8, .norm_ratio = 8.0, .seed = 21}).sample(1200, 1);
  return m;
}

bands build() { return bands::build(items().view(), {.min_band_size = 100}, 1); }

// Rows of `from` whose norm falls in band b of idx.
matrix<float> rows_in_band(const bands& idx, std::size_t b, const matrix<float>& from, std::size_t count) {
  const double upper = idx.band_bound(b), lower = b + 1 < idx.band_count() ? idx.band_bound(b + 1) : 0.0;
  matrix<float> out(count, from.cols());
  std::size_t n = 0;
  for (std::size_t i = 0; i < from.rows() && n < count; ++i) {
    const double norm = mips::norm_rounded_up(mips::detail::norm_sq(from.row(i)));
    if (norm > lower && norm <= upper) std::copy_n(from.row_ptr(i), from.cols(), out.row_ptr(n++));
  }
  REQUIRE(n == count);
  return out;
}

std::vector<std::vector<neighbor>> answers(const bands& idx) {
  std::vector<std::vector<neighbor>> out;
  for (std::size_t i = 0; i < 8; ++i) out.push_back(idx.search(items().row(i * 100), 5, {.ef = 8}));
  return out;
}

std::vector<label_t> sorted_labels(const bands& idx) {
  std::vector<label_t> l = idx.labels();
  std::sort(l.begin(), l.end());
  return l;
}
}  // namespace

TEST_CASE("banded_mips out of memory: an add within one band leaves the index as it was", "[banded_mips][oom]") {
  const matrix<float> extra = gaussian_mixture(16, {.clusters = 8, .norm_ratio = 8.0, .seed = 21}).sample(400, 2);
  bands idx = build();
  REQUIRE(idx.band_count() >= 3);
  const matrix<float> rows = rows_in_band(idx, 1, extra, 10);
  bands twin = build();
  twin.add(rows.view(), {}, 1);
  const auto before = answers(idx), after = answers(twin);
  std::size_t failures = 0;
  for (std::size_t n = 0;; ++n) {
    bool threw = false, hit = false;
    {
      fail_allocation_at fail(n);
      try {
        idx.add(rows.view(), {}, 1);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      hit = fail.failed();
    }
    if (threw) {
      ++failures;
      INFO("allocation " << n << " failed");
      REQUIRE(idx.size() == items().rows());
      REQUIRE(answers(idx) == before);
      continue;
    }
    REQUIRE(answers(idx) == after);
    if (!hit) break;
    idx = build();  // succeeded past a failed allocation: from the start again
  }
  CHECK(failures > 10);
}

TEST_CASE("banded_mips out of memory: an add across bands takes its rows back out", "[banded_mips][oom]") {
  const matrix<float> extra = gaussian_mixture(16, {.clusters = 8, .norm_ratio = 8.0, .seed = 21}).sample(400, 2);
  bands idx = build();
  const std::vector<label_t> labels_before = sorted_labels(idx);
  std::size_t failures = 0;
  for (std::size_t n = 0;; ++n) {
    bool threw = false, hit = false;
    {
      fail_allocation_at fail(n, false);  // the n-th allocation only: the undo has memory
      try {
        idx.add(extra.view(), {}, 1);  // 400 rows, every band
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      hit = fail.failed();
    }
    if (threw) {
      ++failures;
      INFO("allocation " << n << " failed");
      REQUIRE(idx.size() == items().rows());
      REQUIRE(sorted_labels(idx) == labels_before);
      continue;
    }
    REQUIRE(idx.size() == items().rows() + extra.rows());
    if (!hit) break;
    idx = build();
  }
  CHECK(failures > 10);
}
