// What IVF-Flat and IVF-PQ share besides the lists: the dimension, the coarse
// quantizer, the slot directory, training on a sample, and the checks at the
// start of each public call. Each index keeps its own entries and scan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/distinct.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/ivf/coarse.hpp"
#include "annulus/quant/kmeans.hpp"

namespace annulus::ivf {

template <metric Metric>
class core {
 public:
  core(std::string name, std::size_t dim, std::size_t nlist) : name_(std::move(name)), dim_(dim), nlist_(nlist) {
    if (dim == 0) throw invalid_argument(name_ + ": dimension must be at least 1, got 0");
    if (nlist == 0) throw invalid_argument(name_ + ": nlist must be at least 1, got 0");
  }

  const std::string& name() const { return name_; }
  std::size_t dim() const { return dim_; }
  std::size_t nlist() const { return nlist_; }
  bool trained() const { return coarse_.trained(); }
  const coarse_quantizer<Metric>& coarse() const { return coarse_; }
  slot_directory& slots() { return slots_; }
  const slot_directory& slots() const { return slots_; }

  /// Throws unless trained (and, for an index with more to train, `also_ready`).
  void require_trained(const char* what, bool also_ready = true) const {
    if (!trained() || !also_ready)
      throw invalid_argument(name_ + "::" + what + ": the index is not trained; call train(sample) or build(data)");
  }

  /// Throws unless a train call may replace the quantizer: no vector ever
  /// added (removed ones leave slots assigned to the old centroids' lists).
  void require_empty_for_training() const {
    if (slots_.slots() != 0)
      throw invalid_argument(name_ + "::train: the index holds (or held) vectors assigned to its "
                                     "current centroids; train a new, empty index");
  }

  /// Rows in stored form: normalised copies under cosine (in `copy`), else the rows themselves.
  static matrix_view<const float> stored_form(matrix_view<const float> rows, matrix<float>& copy) {
    if constexpr (!Metric::normalizes) {
      return rows;
    } else {
      copy = matrix<float>(rows.rows(), rows.cols());
      store_rows<Metric>(rows, copy.view().data());
      return copy.view();
    }
  }

  /// The rows build trains on, in stored form: train_size of them (0 = 256
  /// per list), a seeded random subset in data order when fewer than all.
  matrix<float> training_sample(matrix_view<const float> data, std::size_t train_size,
                                std::uint64_t seed) const {
    const std::size_t n = training_rows(data.rows(), nlist_, train_size);
    matrix<float> sample(n, dim_);
    random_generator rng(seed);  // as the benchmark's FAISS peers draw theirs: the same rows
    const auto rows = n < data.rows() ? random_subset(data.rows(), n, rng)
                                      : std::vector<std::size_t>{};
    for (std::size_t i = 0; i < n; ++i)
      store_rows<Metric>(data.rows_slice(rows.empty() ? i : rows[i], 1), sample.view().row_ptr(i));
    // One copy of each value trains: k-means would otherwise spend lists on
    // pulling centroids toward a vector repeated hundreds of times.
    const std::vector<std::size_t> distinct = distinct_rows(sample.view());
    if (distinct.size() == n || distinct.size() < nlist_) return sample;
    matrix<float> unique(distinct.size(), dim_);
    for (std::size_t i = 0; i < distinct.size(); ++i)
      std::copy_n(sample.row_ptr(distinct[i]), dim_, unique.row_ptr(i));
    return unique;
  }

  /// k-means for a coarse quantizer over a stored-form sample; set_coarse
  /// installs it (train into a temporary, so a throw changes nothing).
  coarse_quantizer<Metric> train_coarse(matrix_view<const float> sample, std::size_t iterations,
                                        std::uint64_t seed, std::size_t threads) const {
    require_empty_for_training();
    check::dimension("training data", sample.cols(), dim_);
    training_rows(sample.rows(), nlist_, sample.rows());  // enough rows, or a clear error
    kmeans_params p;
    p.iterations = iterations;
    p.seed = seed;
    p.threads = threads;
    // The caller chose the sample: train on all of it.
    p.max_points_per_centroid = (sample.rows() + nlist_ - 1) / nlist_;
    coarse_quantizer<Metric> q;
    q.train(sample, nlist_, p);
    return q;
  }
  void set_coarse(coarse_quantizer<Metric>&& q) noexcept { coarse_ = std::move(q); }

  /// The checks every search starts with; returns the number of lists to probe.
  std::size_t check_search(std::size_t k, std::size_t out_size, std::size_t nprobe,
                           bool also_ready = true) const {
    require_trained("search", also_ready);
    check::k_in_range(k, slots_.live());
    check::output_size(out_size, k);
    return probes(nprobe, nlist_);
  }

  std::size_t memory_bytes() const { return coarse_.memory_bytes() + slots_.memory_bytes(); }

 private:
  std::string name_;
  std::size_t dim_, nlist_;
  coarse_quantizer<Metric> coarse_;
  slot_directory slots_;
};

}  // namespace annulus::ivf
