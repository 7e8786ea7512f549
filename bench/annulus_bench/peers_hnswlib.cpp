// hnswlib as a peer of annulus's HNSW: HierarchicalNSW<float>, compiled here
// with our target's flags (-march=native), so its SIMD distances are used.
// Metrics: l2 is L2Space (squared distances, as annulus); ip is
// InnerProductSpace, whose distance is 1 - <a, b>; cosine is that space over
// normalised copies (the base at build, each query at search, its cost
// counted as for annulus). Labels are base row numbers.
#include "peers.hpp"

#ifdef ANNULUS_HAVE_HNSWLIB
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <string>
#endif

namespace annulus::bench {

#ifndef ANNULUS_HAVE_HNSWLIB
std::vector<index_entry> hnswlib_entries() { return {}; }
#else
namespace {

class hnswlib_peer final : public bench_index {
 public:
  hnswlib_peer(const dataset& ds, const params& build, std::size_t threads)
      : metric_(ds.metric), d_(ds.base.cols()) {
    const std::size_t n = ds.base.rows();
    if (metric_ == metric_kind::l2) space_ = std::make_unique<hnswlib::L2Space>(d_);
    else space_ = std::make_unique<hnswlib::InnerProductSpace>(d_);
    const std::size_t m = build.get_size("m", 16), ef_construction = build.get_size("ef_construction", 200);
    const std::size_t seed = build.get_size("seed", 100);
    if (m == 0 || ef_construction == 0) throw usage_error("hnswlib: m and ef_construction must be positive");
    index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), n, m, ef_construction, seed);
    std::vector<float> unit;  // cosine: the normalised base, only until added
    if (metric_ == metric_kind::cosine) unit.resize(n * d_), store_rows<cosine>(ds.base, unit.data());
    auto row = [&](std::size_t i) { return unit.empty() ? ds.base.row_ptr(i) : &unit[i * d_]; };
    // The first point alone makes the entry point; the rest can then be
    // inserted concurrently (hnswlib's addPoint locks what it touches).
    if (n > 0) index_->addPoint(row(0), 0);
    parallel_for(n - std::min<std::size_t>(n, 1), threads,
                 [&](std::size_t i, std::size_t) { index_->addPoint(row(i + 1), i + 1); });
  }

  /// What saveIndex wrote to `path` (loadIndex: the file read into memory;
  /// hnswlib has no memory-mapped form).
  hnswlib_peer(const dataset& ds, const std::string& path) : metric_(ds.metric), d_(ds.base.cols()) {
    if (metric_ == metric_kind::l2) space_ = std::make_unique<hnswlib::L2Space>(d_);
    else space_ = std::make_unique<hnswlib::InnerProductSpace>(d_);
    index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), path, false, ds.base.rows());
  }

  bool save(const std::string& path) const override {
    index_->saveIndex(path);
    return true;
  }

  void configure(const params& search) override {
    const std::size_t ef = search.get_size("ef", index_->ef_);
    if (ef == 0) throw usage_error("hnswlib: ef must be positive");
    search.require_all_used("hnswlib search");
    index_->setEf(ef);
  }

  std::size_t search_one(std::span<const float> query, std::size_t k, std::span<neighbor> out) override {
    query_.resize(d_);
    return search(query.data(), std::min(k, out.size()), out.data(), query_.data());
  }

  // searchKnn is safe concurrently once setEf is done (the visited-list pool
  // is locked), so queries are spread over our own workers.
  result_matrix search_all(matrix_view<const float> queries, std::size_t k, std::size_t threads) override {
    const std::size_t nq = queries.rows();
    result_matrix r(nq, k);
    std::vector<float> unit(metric_ == metric_kind::cosine ? nq * d_ : 0);
    parallel_for(nq, threads, [&](std::size_t i, std::size_t) {
      r.set_count(i, search(queries.row_ptr(i), k, r.row_storage(i).data(), unit.data() + i * d_));
    });
    return r;
  }

  // Level 0 (links, vector and label per element, allocated for all
  // max_elements), upper-level link lists, per-element bookkeeping (level,
  // link-list pointer, lock), the fixed table of update locks, and an estimate
  // of the label map (a 32-byte node per entry plus the buckets). Not counted:
  // the visited lists searches keep (2 bytes per element per searching thread).
  std::size_t memory_bytes() const override {
    const auto& h = *index_;
    std::size_t upper = 0;
    for (std::size_t i = 0; i < h.cur_element_count; ++i)
      if (h.element_levels_[i] > 0) upper += h.size_links_per_element_ * std::size_t(h.element_levels_[i]);
    const std::size_t per_element = sizeof(int) + sizeof(char*) + sizeof(std::mutex);
    return h.max_elements_ * (h.size_data_per_element_ + per_element) + upper +
           h.link_list_update_locks_.size() * sizeof(std::mutex) + h.label_lookup_.size() * 32 +
           h.label_lookup_.bucket_count() * sizeof(void*);
  }

 private:
  // One query; `scratch` (d floats) takes its normalised copy under cosine.
  std::size_t search(const float* q, std::size_t k, neighbor* out, float* scratch) const {
    if (metric_ == metric_kind::cosine) {
      store_rows<cosine>(matrix_view<const float>(q, 1, d_), scratch);
      q = scratch;
    }
    auto top = index_->searchKnn(q, k);  // a max-heap: farthest on top
    const std::size_t n = top.size();
    for (std::size_t j = n; j-- > 0; top.pop()) {
      // hnswlib's IP distance is 1 - ip: annulus's -ip is that minus 1, and
      // its cosine distance is exactly that.
      const float d = top.top().first;
      out[j] = {label_t(top.top().second), metric_ == metric_kind::inner_product ? d - 1.f : d};
    }
    return n;
  }

  metric_kind metric_;
  std::size_t d_;
  std::unique_ptr<hnswlib::SpaceInterface<float>> space_;  // outlives index_, which points to it
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
  std::vector<float> query_;  // search_one's scratch
};

}  // namespace

std::vector<index_entry> hnswlib_entries() {
  index_entry e{"hnswlib", "hnswlib", "hnsw", params::parse("m=16,ef_construction=200,seed=100", "hnswlib"), "ef",
                sweeps::ef, sweeps::ef_quick,
                [](const dataset& ds, const params& build, std::size_t threads) -> std::unique_ptr<bench_index> {
                  return std::make_unique<hnswlib_peer>(ds, build, threads);
                }};
  e.open = [](const dataset& ds, const params&, const std::string& path, bool view) -> std::unique_ptr<bench_index> {
    if (view) throw not_supported("hnswlib has no memory-mapped index");
    return std::make_unique<hnswlib_peer>(ds, path);
  };
  e.file_extension = ".hnswlib";
  return {e};
}
#endif

}  // namespace annulus::bench
