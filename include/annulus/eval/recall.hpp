// Recall@k: the share of the true k nearest neighbours that a search returned.
//
// Ground truth is a row per query of true neighbour ids, closest first, as
// stored in a groundtruth.ivecs file or an ann-benchmarks `neighbors` dataset;
// optionally with the matching true distances (any monotone form: squared or
// not, as long as a row is consistent). A returned label is compared with a
// truth id as an integer: label i is base row i. Negative truth ids (padding)
// never match.
//
// Two definitions:
// - plain: hits are returned labels among the first k truth ids;
// - tie-aware: hits are returned labels whose true distance is no larger than
//   the k-th true distance, so an index returning an equally close neighbour
//   that the truth file happened to rank k+1 is not penalised. A label found
//   nowhere in the truth row counts as a miss: its true distance is unknown
//   beyond the stored list, so the list should be longer than k (ann-benchmarks
//   stores 100) for ties at the k-th distance to be recognised.
// In both, only the first k returned neighbours count, a row with fewer than k
// counts the missing ones as misses, and a label returned twice counts once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/topk.hpp"

namespace annulus {

/// Number of hits (0..k) of one query's results `returned` (closest first)
/// against its truth row. With `truth_dist_row` empty the count is plain, else
/// tie-aware (see above). Allocates nothing; O(k * truth_row.size()).
/// Throws invalid_argument if k == 0 or truth_row has fewer than k ids, and
/// dimension_mismatch if truth_dist_row is non-empty and not as long as truth_row.
inline std::size_t hits_at_k(std::span<const neighbor> returned,
                             std::span<const std::int32_t> truth_row,
                             std::span<const float> truth_dist_row, std::size_t k) {
  if (k == 0) throw invalid_argument("recall: k must be at least 1, got 0");
  if (truth_row.size() < k)
    throw invalid_argument("recall: ground truth has " + std::to_string(truth_row.size()) +
                           " neighbours per query, k = " + std::to_string(k) + " needs " +
                           std::to_string(k));
  const bool tie_aware = !truth_dist_row.empty();
  if (tie_aware && truth_dist_row.size() != truth_row.size())
    throw dimension_mismatch("recall: ground truth has " + std::to_string(truth_row.size()) +
                             " ids but " + std::to_string(truth_dist_row.size()) +
                             " distances per query");

  const std::size_t searched = tie_aware ? truth_row.size() : k;
  const std::size_t n = returned.size() < k ? returned.size() : k;
  std::size_t hits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const label_t label = returned[i].label;
    bool seen = false;  // a duplicate of an earlier returned label counts once
    for (std::size_t j = 0; j < i && !seen; ++j) seen = returned[j].label == label;
    if (seen) continue;
    for (std::size_t p = 0; p < searched; ++p) {
      if (truth_row[p] < 0 || static_cast<label_t>(truth_row[p]) != label) continue;
      if (!tie_aware || truth_dist_row[p] <= truth_dist_row[k - 1]) ++hits;
      break;
    }
  }
  return hits;
}

namespace detail {
inline double mean_recall(const result_matrix& results, matrix_view<const std::int32_t> truth_ids,
                          const matrix_view<const float>* truth_distances, std::size_t k) {
  if (k == 0) throw invalid_argument("recall: k must be at least 1, got 0");
  if (truth_ids.cols() < k)
    throw invalid_argument("recall: ground truth has " + std::to_string(truth_ids.cols()) +
                           " neighbours per query, k = " + std::to_string(k) + " needs " +
                           std::to_string(k));
  if (truth_ids.rows() != results.size())
    throw dimension_mismatch("recall: ground truth has " + std::to_string(truth_ids.rows()) +
                             " rows, results have " + std::to_string(results.size()) +
                             " queries");
  if (truth_distances &&
      (truth_distances->rows() != truth_ids.rows() || truth_distances->cols() != truth_ids.cols()))
    throw dimension_mismatch("recall: ground-truth distances are " +
                             std::to_string(truth_distances->rows()) + " x " +
                             std::to_string(truth_distances->cols()) + ", ids are " +
                             std::to_string(truth_ids.rows()) + " x " +
                             std::to_string(truth_ids.cols()));
  if (results.size() == 0) throw invalid_argument("recall: no queries (0 result rows)");

  std::size_t hits = 0;
  for (std::size_t q = 0; q < results.size(); ++q)
    hits += hits_at_k(results[q], truth_ids.row(q),
                      truth_distances ? truth_distances->row(q) : std::span<const float>{}, k);
  return static_cast<double>(hits) / (static_cast<double>(k) * static_cast<double>(results.size()));
}
}  // namespace detail

/// Plain recall@k in [0, 1]: the mean over queries of
/// |first k returned labels ∩ first k truth ids| / k.
/// Throws invalid_argument if k == 0, truth_ids has fewer than k columns or
/// there are no queries; dimension_mismatch if truth_ids.rows() != results.size().
inline double recall_at_k(const result_matrix& results, matrix_view<const std::int32_t> truth_ids,
                          std::size_t k) {
  return detail::mean_recall(results, truth_ids, nullptr, k);
}

/// Tie-aware recall@k in [0, 1]: a returned label is a hit when it sits at a
/// position p of its truth row with truth_distances(q, p) <= truth_distances(q, k - 1).
/// Throws as the plain overload, and dimension_mismatch if truth_distances is
/// not the same shape as truth_ids.
inline double recall_at_k(const result_matrix& results, matrix_view<const std::int32_t> truth_ids,
                          matrix_view<const float> truth_distances, std::size_t k) {
  return detail::mean_recall(results, truth_ids, &truth_distances, k);
}

/// Plain recall@k of `results` against `exact`: the same queries answered by
/// an exact index (flat_index through search_batch), labels compared as
/// labels. A row of `exact` with fewer than k neighbours (a filter passed
/// fewer) asks only for those. Throws invalid_argument if k == 0, exact holds
/// fewer than k per query or there are no queries, dimension_mismatch if the
/// two have different numbers of queries.
inline double recall_at_k(const result_matrix& results, const result_matrix& exact, std::size_t k) {
  if (k == 0) throw invalid_argument("recall: k must be at least 1, got 0");
  if (exact.k() < k)
    throw invalid_argument("recall: exact results hold " + std::to_string(exact.k()) +
                           " neighbours per query, k = " + std::to_string(k) + " needs " + std::to_string(k));
  if (exact.size() != results.size())
    throw dimension_mismatch("recall: exact results have " + std::to_string(exact.size()) +
                             " queries, results have " + std::to_string(results.size()));
  if (results.size() == 0) throw invalid_argument("recall: no queries (0 result rows)");
  std::size_t hits = 0, wanted = 0;
  for (std::size_t q = 0; q < results.size(); ++q) {
    const auto truth = exact[q].first(exact[q].size() < k ? exact[q].size() : k);
    const auto got = results[q].first(results[q].size() < k ? results[q].size() : k);
    wanted += truth.size();
    for (std::size_t i = 0; i < got.size(); ++i) {
      bool seen = false;  // a label returned twice counts once
      for (std::size_t j = 0; j < i && !seen; ++j) seen = got[j].label == got[i].label;
      if (seen) continue;
      for (const neighbor& t : truth)
        if (t.label == got[i].label) {
          ++hits;
          break;
        }
    }
  }
  return wanted == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(wanted);
}

}  // namespace annulus
