// The interface every index models, and the generic calls built on it.
//
//   index              dim(), size(), memory_bytes(), and
//                      search(query, k, params, out) -> count: writes the k
//                      closest (closest first) into caller storage, allocating
//                      nothing, and returns how many it wrote
//   mutable_index      add(rows, labels), remove(label), update(label, vector)
//   filterable_index   search with a predicate over labels
//   inspectable_index  contains(label), get(label), labels()
//   persistent_index   save(path) and load(path) (and view(path): index/base.hpp)
//
// search_batch(idx, queries, k, params, threads) runs any index over a batch on
// the library's parallel_for, or the index's own batch path where it has one.
// Every annulus index models all of them through one base (index/base.hpp),
// which also defines label_predicate and accept_all.
#pragma once

#include <concepts>
#include <cstddef>
#include <filesystem>
#include <span>
#include <vector>

#include "annulus/core/matrix.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"

namespace annulus {

template <class I>
concept index = requires(const I& idx, std::span<const float> q, std::size_t k,
                         const typename I::search_params& p, std::span<neighbor> out) {
  typename I::metric_type;
  typename I::build_params;
  typename I::search_params;
  { idx.dim() } -> std::convertible_to<std::size_t>;
  { idx.size() } -> std::convertible_to<std::size_t>;
  { idx.search(q, k, p, out) } -> std::convertible_to<std::size_t>;
  { idx.memory_bytes() } -> std::convertible_to<std::size_t>;
};

template <class I>
concept mutable_index = index<I> && requires(I& idx, matrix_view<const float> rows,
                                             std::span<const label_t> labels, label_t label,
                                             std::span<const float> vector) {
  idx.add(rows, labels);
  idx.remove(label);
  idx.update(label, vector);
};

/// What is stored can be read back: contains(label), get(label), labels().
template <class I>
concept inspectable_index = index<I> && requires(const I& idx, label_t label) {
  { idx.contains(label) } -> std::same_as<bool>;
  { idx.get(label) } -> std::same_as<std::vector<float>>;
  { idx.labels() } -> std::same_as<std::vector<label_t>>;
};

template <class I, class P>
concept filterable_index =
    index<I> && label_predicate<P> &&
    requires(const I& idx, std::span<const float> q, std::size_t k,
             const typename I::search_params& p, std::span<neighbor> out, const P& pred) {
      { idx.search(q, k, p, out, pred) } -> std::convertible_to<std::size_t>;
    };

template <class I>
concept persistent_index = index<I> && requires(const I& c, I& m, const std::filesystem::path& f) {
  c.save(f);
  { I::load(f) } -> std::same_as<I>;
};

/// Whether Index's add, remove and update may run beside its searches (the
/// index says so with `static constexpr bool writes_beside_searches = true`).
template <class Index>
inline constexpr bool writes_beside_searches = [] {
  if constexpr (requires { Index::writes_beside_searches; })
    return bool(Index::writes_beside_searches);
  else
    return false;
}();

/// The k nearest neighbours of every row of `queries`, over `threads` workers
/// (0 = all cores). Throws what idx.search throws, before any work where the
/// batch as a whole is wrong (k, dimension).
template <index I>
result_matrix search_batch(const I& idx, matrix_view<const float> queries, std::size_t k,
                           const typename I::search_params& params = {},
                           std::size_t threads = 0) {
  if constexpr (requires { idx.search_batch(queries, k, params, threads); }) {
    return idx.search_batch(queries, k, params, threads);
  } else {
    check::k_in_range(k, idx.size());
    if (queries.rows() != 0) check::dimension("query", queries.cols(), idx.dim());
    // Here, not in each search, so a message names the batch's row.
    check::finite("query", queries);
    if constexpr (I::metric_type::normalizes) check::nonzero_rows("query", queries);
    result_matrix out(queries.rows(), k);
    parallel_for(queries.rows(), threads, [&](std::size_t i, std::size_t) {
      out.set_count(i, idx.search(queries.row(i), k, params, out.row_storage(i)));
    });
    return out;
  }
}

}  // namespace annulus
