// Recall of any index against a brute-force scan of the rows whose label
// (row number) passes a filter; also fails the test on a result that does
// not pass it, or on a short result where `full` says none may be short.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include "annulus/core/matrix.hpp"
#include "annulus/core/topk.hpp"
#include "support/data.hpp"

namespace annulus::testing {

inline constexpr auto everything = [](label_t) { return true; };

template <class Index, class Keep>
double filtered_recall(const Index& idx, const matrix<float>& base, const matrix<float>& queries,
                       const typename Index::search_params& params, const Keep& keep,
                       std::size_t k = 10, bool full = true) {
  using M = typename Index::metric_type;
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < base.rows(); ++i)
    if (keep(label_t(i))) rows.push_back(i);
  matrix<float> kept(rows.size(), base.cols());
  for (std::size_t r = 0; r < rows.size(); ++r) std::copy_n(base.row_ptr(rows[r]), base.cols(), kept.row_ptr(r));
  const std::size_t kk = std::min(k, rows.size());
  double recall = 0;
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    auto truth = brute_force<M>(kept.view(), queries.row_ptr(i), kk);
    for (neighbor& t : truth) t.label = rows[t.label];
    const auto got = idx.search(queries.row(i), k, params, keep);
    if (full) REQUIRE(got.size() == kk);
    for (const neighbor& g : got) REQUIRE(keep(g.label));
    recall += overlap(truth, got);
  }
  return recall / double(queries.rows());
}

}  // namespace annulus::testing
