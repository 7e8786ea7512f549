// Product quantization: a vector of dim floats is cut into m sub-vectors of
// dsub = dim / m floats, and each is replaced by the index of its nearest
// centroid in that sub-space's codebook of ksub = 2^nbits centroids. A code is
// m bytes (one per sub-vector, nbits <= 8 of each used).
//
//   product_quantizer pq(784, 56);          // nbits = 8: 256 centroids per sub-space
//   pq.train(sample);                       // k-means in each sub-space
//   pq.encode(rows, codes);                 // rows.rows() x 56 bytes
//   pq.inner_product_table(q, table);       // m x table_stride() floats
//   float ip = pq.lookup_add(table, code);  // <q, decode(code)>
//
// Distances are asymmetric (ADC): the query stays in floats; a table of its
// inner products with every centroid of every sub-space turns any code's
// inner product with the query into m lookups and adds. l2 follows from
// ||q - x||^2 = ||q||^2 + ||x||^2 - 2<q, x>, with ||x||^2 of the decoded
// vector computed once at encode time by whoever stores the code.
//
// Saved form (save/load): record "pq" (m, nbits) and, once trained,
// "pq.codebooks": the m codebooks one after another, ksub x dsub floats
// each, row-major (their norms are recomputed on load).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/quant/centroids.hpp"
#include "annulus/quant/kmeans.hpp"

namespace annulus {

/// A default sub-quantizer count for `dim`: the fewest sub-vectors of at
/// most 14 dimensions each (the smallest divisor m of dim with dim <= 14 m):
/// 784 -> 56, 128 -> 16, 96 -> 8. Codes of about dim / 14 bytes, 1/56 of the floats.
inline std::size_t default_pq_m(std::size_t dim) {
  for (std::size_t m = 1; m < dim; ++m)
    if (dim % m == 0 && dim <= 14 * m) return m;
  return dim;
}

class product_quantizer {
 public:
  product_quantizer() = default;
  /// Throws invalid_argument unless m >= 1 divides dim and 1 <= nbits <= 8.
  product_quantizer(std::size_t dim, std::size_t m, std::size_t nbits = 8)
      : dim_(dim), m_(m), nbits_(nbits) {
    if (m == 0 || dim == 0 || dim % m != 0)
      throw invalid_argument("product_quantizer: m = " + std::to_string(m) +
                             " sub-vectors must divide the dimension " + std::to_string(dim));
    if (nbits == 0 || nbits > 8)
      throw invalid_argument("product_quantizer: nbits must be 1..8, got " + std::to_string(nbits));
  }

  std::size_t dim() const { return dim_; }
  std::size_t m() const { return m_; }
  std::size_t nbits() const { return nbits_; }
  std::size_t ksub() const { return std::size_t{1} << nbits_; }
  std::size_t dsub() const { return dim_ / m_; }
  std::size_t code_size() const { return m_; }
  bool trained() const { return !codebooks_.empty(); }
  /// Floats per sub-space in a table (ksub rounded up to a SIMD panel).
  std::size_t table_stride() const { return codebooks_.empty() ? ksub() : codebooks_[0].score_room(); }
  std::size_t table_size() const { return m_ * table_stride(); }

  /// k-means with ksub centroids in each sub-space (seed + j for sub-space
  /// j), the sub-spaces trained in parallel on params.threads workers.
  /// Throws invalid_argument on fewer than ksub() rows, dimension_mismatch
  /// on a wrong dimension.
  void train(matrix_view<const float> data, kmeans_params params = {.iterations = 25}) {
    check::dimension("training data", data.cols(), dim_);
    if (data.rows() < ksub())
      throw invalid_argument("product_quantizer: " + std::to_string(data.rows()) +
                             " training vectors for " + std::to_string(ksub()) +
                             " centroids per sub-space (nbits = " + std::to_string(nbits_) +
                             "); need at least " + std::to_string(ksub()));
    std::vector<centroid_table> books(m_);
    const std::size_t threads = params.threads;
    parallel_for(m_, threads, [&](std::size_t j, std::size_t) {
      kmeans_params p = params;
      p.seed = params.seed + j;
      p.threads = 1;
      // A contiguous copy: k-means reads every sub-vector 2 x iterations times.
      matrix<float> sub(data.rows(), dsub());
      for (std::size_t i = 0; i < data.rows(); ++i)
        std::copy_n(data.row_ptr(i) + j * dsub(), dsub(), sub.row(i).data());
      books[j] = centroid_table(kmeans(sub.view(), ksub(), p).centroids.view());
    });
    codebooks_ = std::move(books);
  }

  /// codes[i * code_size() + j] = the nearest centroid of row i's j-th sub-vector.
  void encode(matrix_view<const float> rows, std::uint8_t* codes, std::size_t threads = 0) const {
    require_trained("encode");
    check::dimension("vectors to encode", rows.cols(), dim_);
    if (rows.rows() == 0) return;
    std::vector<std::uint32_t> ids(rows.rows());
    std::vector<float> keys(rows.rows());
    for (std::size_t j = 0; j < m_; ++j) {
      codebooks_[j].nearest(sub_view(rows, j), centroid_order::l2, 1, ids.data(), keys.data(), threads);
      for (std::size_t i = 0; i < rows.rows(); ++i) codes[i * m_ + j] = static_cast<std::uint8_t>(ids[i]);
    }
  }

  /// The vector a code stands for: dim() floats to `out`.
  void decode(const std::uint8_t* code, float* out) const {
    require_trained("decode");
    for (std::size_t j = 0; j < m_; ++j) codebooks_[j].row(code[j], out + j * dsub());
  }

  /// table[j * table_stride() + i] = <x_j, centroid i of sub-space j>, for
  /// x of dim() floats; `table` is 64-byte aligned with table_size() floats.
  void inner_product_table(const float* x, float* table) const {
    for (std::size_t j = 0; j < m_; ++j)
      gemm::one_row_products(x + j * dsub(), codebooks_[j].packed(), table + j * table_stride());
  }

  /// The sum over sub-spaces of table[j][code[j]]: <x, decode(code)> for an
  /// inner_product_table of x.
  float lookup_add(const float* table, const std::uint8_t* code) const {
    return lookup_add(table, code, m_, table_stride());
  }
  static float lookup_add(const float* table, const std::uint8_t* code, std::size_t m,
                          std::size_t stride) {
    // Four independent sums hide the add latency. Not an AVX2 gather: on
    // the Zen 3 we measure on, eight sub-spaces per vpgatherdps took 31 ns
    // a 56-byte code against 19 ns for these scalar loads (gathers issue
    // one load per lane anyway). SIMD pays with 4-bit codes, whose 16-entry
    // tables fit a register: pshufb "fast scan", quant/fast_scan.hpp
    // (ivf_pq_fs_index, index/ivf_pq_fast_scan.hpp).
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    std::size_t j = 0;
    for (; j + 4 <= m; j += 4, table += 4 * stride) {
      s0 += table[code[j]];
      s1 += table[stride + code[j + 1]];
      s2 += table[2 * stride + code[j + 2]];
      s3 += table[3 * stride + code[j + 3]];
    }
    for (; j < m; ++j, table += stride) s0 += table[code[j]];
    return (s0 + s1) + (s2 + s3);
  }

  /// Codebook bytes.
  std::size_t memory_bytes() const {
    std::size_t bytes = 0;
    for (const auto& b : codebooks_) bytes += b.memory_bytes();
    return bytes;
  }

  void save(serial::writer& w) const {
    w.section("pq", serial::record().set("m", m_).set("nbits", nbits_));
    if (!trained()) return;
    w.begin("pq.codebooks");
    for (const auto& book : codebooks_) {
      const auto values = book.stored_values();
      w.append(std::span<const float>(values));
    }
    w.end();
  }

  /// The quantizer a file saved, for vectors of `dim` floats: m must divide
  /// dim and nbits be 1..8; codebooks of finite values present exactly when
  /// `trained` (format_error otherwise).
  static product_quantizer load(serial::reader& r, std::size_t dim, bool trained) {
    const auto rec = r.fields("pq");
    const std::size_t m = rec.u64_in("m", 1, dim);
    if (dim % m != 0)
      r.fail("pq", "m = " + std::to_string(m) + " sub-vectors do not divide the dimension " + std::to_string(dim));
    product_quantizer pq(dim, m, rec.u64_in("nbits", 1, 8));
    if (!trained) {
      if (r.has("pq.codebooks")) r.fail("pq.codebooks", "codebooks for an index the file says is untrained");
      return pq;
    }
    const std::size_t ksub = pq.ksub(), dsub = pq.dsub(), per_book = ksub * dsub;
    const auto values = r.structure_array<float>("pq.codebooks", r.product("pq.codebooks", ksub, dim));
    std::vector<centroid_table> books(m);
    for (std::size_t j = 0; j < m; ++j) {
      const auto book = values.subspan(j * per_book, per_book);
      if (const auto why = centroid_table::check_stored(book, ksub, dsub, std::numeric_limits<double>::infinity()))
        r.fail("pq.codebooks", "sub-space " + std::to_string(j) + ": " + *why);
      books[j] = centroid_table::from_stored(book, ksub, dsub);
    }
    pq.codebooks_ = std::move(books);
    return pq;
  }

 private:
  void require_trained(const char* what) const {
    if (!trained()) throw invalid_argument(std::string("product_quantizer: ") + what + " before train");
  }
  // Sub-vector j of every row: a strided view, no copy.
  matrix_view<const float> sub_view(matrix_view<const float> rows, std::size_t j) const {
    return {rows.data() + j * dsub(), rows.rows(), dsub(), rows.stride()};
  }

  std::size_t dim_ = 0, m_ = 0, nbits_ = 8;
  std::vector<centroid_table> codebooks_;
};

}  // namespace annulus
