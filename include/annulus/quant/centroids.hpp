// A set of centroids (k-means' output, an IVF coarse quantizer, one PQ
// sub-codebook) and the question every user of one asks: which centroids are
// nearest to a point. Batches go through gemm::inner_products against the
// centroids packed once; one point goes through gemm::one_row_products, which
// computes the same sums in the same order, so a point ranks the centroids
// identically either way (IVF batch and single searches probe the same lists).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "annulus/core/gemm.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"

namespace annulus {

/// How centroids are ranked for a point x: by ||x - c||^2 (l2) or by -<x, c>
/// (inner_product, for maximum-inner-product probing). Both are computed as
/// a key that differs from the ranked quantity only by a per-point constant:
/// ||c||^2 - 2<x, c> under l2, -<x, c> under inner_product.
enum class centroid_order { l2, inner_product };

/// E = float keeps the centroids exactly; E = gemm::bf16 rounds them to
/// bfloat16 (half the bytes a query reads; see gemm::bf16) and every answer
/// is then about the rounded centroids.
template <class E>
class basic_centroid_table {
 public:
  basic_centroid_table() = default;
  /// Copies `rows` (k x d, k >= 1) into the packed layout.
  explicit basic_centroid_table(matrix_view<const float> rows) : packed_(rows), norms_(rows.rows()) {
    std::vector<float> row(rows.cols());
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      packed_.row(i, row.data());
      norms_[i] = kernels::norm_sq(row.data(), rows.cols());
    }
  }

  std::size_t size() const { return packed_.rows(); }
  std::size_t dim() const { return packed_.cols(); }
  /// Copies centroid i (dim() floats) to `out`.
  void row(std::size_t i, float* out) const { packed_.row(i, out); }
  float norm_sq(std::size_t i) const { return norms_[i]; }
  /// The centroids in gemm's packed layout.
  const gemm::basic_packed_matrix<E>& packed() const { return packed_; }
  /// Room score_one writes: size() rounded up to a whole panel.
  std::size_t score_room() const { return packed_.padded_rows(); }

  /// keys[c] = the ranking key of centroid c for the point x (see
  /// centroid_order); `keys` is 64-byte aligned with score_room() floats.
  void score_one(const float* x, centroid_order order, float* keys) const {
    gemm::one_row_products(x, packed_, keys);
    to_keys(keys, order);
  }

  /// The `count` (<= size()) best centroids of every row of `points`, best
  /// first: ids[i * count + r] and their keys likewise (ties: smaller id).
  /// Allocates its scratch per call (a batch call, not a hot path).
  void nearest(matrix_view<const float> points, centroid_order order, std::size_t count,
               std::uint32_t* ids, float* keys, std::size_t threads) const {
    constexpr std::size_t block = 192;  // points per GEMM block (gemm.hpp: a few hundred rows)
    const std::size_t blocks = (points.rows() + block - 1) / block;
    const std::size_t workers = worker_count(blocks, threads);
    // Sized to the points, not the block: a small batch (one add of a few
    // rows) allocates a few KB, not block * size() floats per call.
    std::vector<std::vector<float>> products(workers, std::vector<float>(std::min(block, points.rows()) * size()));
    std::vector<std::vector<neighbor>> best(workers, std::vector<neighbor>(count));
    gemm::packed_matrix unpacked;
    if constexpr (!std::is_same_v<E, float>) unpacked = packed_.unpacked();
    const gemm::packed_matrix& centroids = [&]() -> const gemm::packed_matrix& {
      if constexpr (std::is_same_v<E, float>) return packed_;
      else return unpacked;
    }();
    parallel_for(blocks, workers, [&](std::size_t b, std::size_t w) {
      const std::size_t first = b * block, rows = std::min(block, points.rows() - first);
      float* out = products[w].data();
      gemm::inner_products(points.rows_slice(first, rows), centroids, out, size());
      for (std::size_t i = 0; i < rows; ++i) {
        float* dots = out + i * size();
        if (count == 1) {  // assignment: fused keys and argmin
          ids[first + i] = argmin(dots, order, keys[first + i]);
          continue;
        }
        to_keys(dots, order);
        select(dots, count, best[w], ids + (first + i) * count, keys + (first + i) * count);
      }
    });
  }

  /// The `count` best of keys[0, size()) into ids/out_keys, best first; `heap`
  /// holds >= count neighbours of scratch.
  void select(const float* keys, std::size_t count, std::span<neighbor> heap, std::uint32_t* ids,
              float* out_keys) const {
    topk_heap top(heap, count);
    float threshold = top.threshold();
    for (std::size_t c = 0; c < size(); ++c)
      if (keys[c] <= threshold && top.push(c, keys[c])) threshold = top.threshold();
    const std::size_t n = top.sort();
    for (std::size_t r = 0; r < n; ++r) {
      ids[r] = static_cast<std::uint32_t>(heap[r].label);
      if (out_keys) out_keys[r] = heap[r].distance;
    }
  }

  std::size_t memory_bytes() const {
    return packed_.memory_bytes() + norms_.capacity() * sizeof(float);
  }

  // ---- saved form: the centroids as stored (E values: floats, or
  // bfloat16 bits as u16), row-major; the norms are recomputed on restore,
  // as the constructor computes them, so a restored table is the saved one ----

  /// The stored value of every centroid, row-major (size() x dim()).
  using stored_value = std::conditional_t<std::is_same_v<E, gemm::bf16>, std::uint16_t, float>;
  std::vector<stored_value> stored_values() const {
    std::vector<stored_value> out(size() * dim());
    for (std::size_t i = 0; i < size(); ++i)
      for (std::size_t k = 0; k < dim(); ++k) {
        const float x = packed_.at(i, k);
        if constexpr (std::is_same_v<E, gemm::bf16>)
          out[i * dim() + k] = gemm::to_bf16(x).bits;  // exact: x is a bfloat16 value
        else
          out[i * dim() + k] = x;
      }
    return out;
  }

  /// Why `values` (k rows of d stored values, as stored_values gives them)
  /// cannot be a table, or nullopt: a value that is not finite, a row whose
  /// norm is above `max_norm`.
  static std::optional<std::string> check_stored(std::span<const stored_value> values, std::size_t k, std::size_t d,
                                                 double max_norm) {
    std::vector<float> row(d);
    for (std::size_t i = 0; i < k; ++i) {
      for (std::size_t j = 0; j < d; ++j) {
        row[j] = value_of(values[i * d + j]);
        if (!std::isfinite(row[j]))
          return "centroid " + std::to_string(i) + " has a value that is not finite (column " + std::to_string(j) + ")";
      }
      if (!(row_norm(row.data(), d) <= max_norm))
        return "centroid " + std::to_string(i) + " has a norm above " + std::to_string(max_norm);
    }
    return std::nullopt;
  }

  /// The table of k x d stored values (checked by check_stored): the one that saved them.
  static basic_centroid_table from_stored(std::span<const stored_value> values, std::size_t k, std::size_t d) {
    std::vector<float> rows(k * d);
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = value_of(values[i]);
    return basic_centroid_table(matrix_view<const float>(rows.data(), k, d, d));
  }

 private:
  void to_keys(float* dots, centroid_order order) const {
    if (order == centroid_order::l2)
      for (std::size_t c = 0; c < size(); ++c) dots[c] = norms_[c] - 2.f * dots[c];
    else
      for (std::size_t c = 0; c < size(); ++c) dots[c] = -dots[c];
  }

  // The centroid with the smallest key given the dot products (the smaller
  // index on ties): assignment (k-means, PQ encoding) asks this of every
  // point. Writes the key to `key`.
  std::uint32_t argmin(const float* dots, centroid_order order, float& key) const {
    return kernels::argmin_key(dots, order == centroid_order::l2 ? norms_.data() : nullptr, size(), key);
  }

  static float value_of(stored_value v) {
    if constexpr (std::is_same_v<E, gemm::bf16>)
      return gemm::to_float(gemm::bf16{v});
    else
      return v;
  }

  gemm::basic_packed_matrix<E> packed_;
  std::vector<float> norms_;
};
using centroid_table = basic_centroid_table<float>;

}  // namespace annulus
