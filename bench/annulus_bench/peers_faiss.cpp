// FAISS as a peer: flat, IVF-flat, IVF-PQ (+ exact refinement) and HNSW, each
// compared with the annulus index of the same kind (peer_of).
// Metrics: l2 is FAISS's METRIC_L2 (squared distances, as annulus); ip is
// METRIC_INNER_PRODUCT; cosine has no FAISS metric, so the base is normalised
// at build and each query at search (its cost counted, as for annulus), then
// searched by inner product. Distances come back in annulus's convention
// (smaller is closer) so results compare directly; labels are base row
// numbers, which FAISS ids are when rows are added in order.
#include "peers.hpp"

#ifdef ANNULUS_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexRefine.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <numeric>

#include "peer_threads.hpp"
#endif

namespace annulus::bench {

#ifndef ANNULUS_HAVE_FAISS
std::vector<index_entry> faiss_entries() { return {}; }
#else
namespace {

using faiss_id = faiss::Index::idx_t;  // faiss::idx_t after 1.7

faiss::MetricType faiss_metric(metric_kind m) {
  return m == metric_kind::l2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

// FAISS reports squared L2 or the inner product (larger closer).
float to_annulus(metric_kind m, float d) {
  switch (m) {
    case metric_kind::l2: return d;
    case metric_kind::inner_product: return -d;
    case metric_kind::cosine: return 1.f - d;
  }
  return d;
}

// The rows as FAISS takes them: contiguous, and normalised under cosine.
// Copies into `buffer` only when the rows are not already that.
const float* faiss_rows(matrix_view<const float> rows, metric_kind m, std::vector<float>& buffer) {
  if (m != metric_kind::cosine && rows.contiguous()) return rows.data();
  buffer.resize(rows.rows() * rows.cols());
  if (m == metric_kind::cosine) store_rows<cosine>(rows, buffer.data());
  else store_rows<l2>(rows, buffer.data());
  return buffer.data();
}

// FAISS's result row (-1 ids at the end when fewer than k exist) into ours.
std::size_t convert(metric_kind m, const float* dist, const faiss_id* ids, std::size_t k, neighbor* out) {
  std::size_t n = 0;
  for (std::size_t j = 0; j < k; ++j)
    if (ids[j] >= 0) out[n++] = {label_t(ids[j]), to_annulus(m, dist[j])};
  return n;
}

class faiss_peer final : public bench_index {
 public:
  using knob_setter = std::function<void(const params&)>;  // empty: no knob
  using byte_counter = std::function<std::size_t()>;

  faiss_peer(std::string name, std::unique_ptr<faiss::Index> index, metric_kind metric,
             knob_setter knob, byte_counter bytes)
      : name_(std::move(name)), index_(std::move(index)), metric_(metric),
        knob_(std::move(knob)), bytes_(std::move(bytes)) {}

  // FAISS reads its knobs from index fields; the runner never searches while
  // configuring, so setting them here is safe.
  void configure(const params& search) override {
    if (knob_) knob_(search);
    search.require_all_used(name_ + " search");
  }

  std::size_t search_one(std::span<const float> query, std::size_t k, std::span<neighbor> out) override {
    pin_peer_threads(1);  // a service's single query: no OpenMP team (cached: free when already 1)
    k = std::min(k, out.size());
    dist_.resize(k), ids_.resize(k);
    const float* q = faiss_rows(row_view(query), metric_, query_);
    index_->search(1, q, faiss_id(k), dist_.data(), ids_.data());
    return convert(metric_, dist_.data(), ids_.data(), k, out.data());
  }

  result_matrix search_all(matrix_view<const float> queries, std::size_t k, std::size_t threads) override {
    pin_peer_threads(threads);
    const std::size_t nq = queries.rows();
    std::vector<float> normalised, dist(nq * k);
    std::vector<faiss_id> ids(nq * k);
    const float* q = faiss_rows(queries, metric_, normalised);
    index_->search(faiss_id(nq), q, faiss_id(k), dist.data(), ids.data());
    result_matrix r(nq, k);
    for (std::size_t i = 0; i < nq; ++i)
      r.set_count(i, convert(metric_, &dist[i * k], &ids[i * k], k, r.row_storage(i).data()));
    return r;
  }

  std::size_t memory_bytes() const override { return bytes_(); }
  bool save(const std::string& path) const override {
    faiss::write_index(index_.get(), path.c_str());
    return true;
  }

 private:
  std::string name_;
  std::unique_ptr<faiss::Index> index_;
  metric_kind metric_;
  knob_setter knob_;
  byte_counter bytes_;
  std::vector<float> query_, dist_;  // search_one's scratch, reused
  std::vector<faiss_id> ids_;
};


std::unique_ptr<bench_index> build_flat(const dataset& ds, const params&, std::size_t threads) {
  pin_peer_threads(threads);
  const std::size_t d = ds.base.cols();
  std::unique_ptr<faiss::IndexFlat> index;
  if (ds.metric == metric_kind::l2) index = std::make_unique<faiss::IndexFlatL2>(d);
  else index = std::make_unique<faiss::IndexFlatIP>(d);
  std::vector<float> buffer;
  index->add(faiss_id(ds.base.rows()), faiss_rows(ds.base, ds.metric, buffer));
  const auto* flat = index.get();
  return std::make_unique<faiss_peer>("faiss-flat", std::move(index), ds.metric, nullptr,
                                      [flat] { return flat->codes.size(); });
}

// ---- IVF ----


// Trains `index` on train_size rows of the (FAISS-ready) base drawn with
// `seed`, then adds the whole base in row order. Default train_size is
// min(n, 256 * nlist): FAISS's k-means subsamples to 256 points per centroid
// anyway, so this is what FAISS would use, but drawn reproducibly.
void train_and_add(faiss::Index& index, const params& build, std::size_t nlist, const float* base,
                   std::size_t n, std::size_t d, std::uint64_t seed) {
  const std::size_t train = std::min(n, positive(build, "train_size", std::min(n, 256 * nlist)));
  std::vector<float> sample;
  if (train < n) {  // a seeded random subset, in row order for locality
    random_generator rng(seed);
    const std::vector<std::size_t> rows = random_subset(n, train, rng);
    sample.resize(train * d);
    for (std::size_t i = 0; i < train; ++i) std::copy_n(base + rows[i] * d, d, &sample[i * d]);
  }
  index.train(faiss_id(train), train < n ? sample.data() : base);
  index.add(faiss_id(n), base);
}

// Inverted lists (code + id per entry) and the coarse centroids.
std::size_t ivf_bytes(const faiss::IndexIVF& ivf) {
  std::size_t entries = 0;
  for (std::size_t l = 0; l < ivf.nlist; ++l) entries += ivf.invlists->list_size(l);
  return entries * (ivf.code_size + sizeof(faiss_id)) +
         std::size_t(ivf.quantizer->ntotal) * std::size_t(ivf.d) * sizeof(float);
}

faiss_peer::knob_setter nprobe_knob(faiss::IndexIVF* ivf) {
  // FAISS would clamp too; nprobe beyond nlist (small data) means all lists.
  return [ivf](const params& p) { ivf->nprobe = std::min(ivf->nlist, positive(p, "nprobe", ivf->nprobe)); };
}

// Codes and lists, PQ codebooks, the per-list distance tables FAISS
// precomputes for l2 (nlist * 256 * m floats), and refine's float copy.
faiss_peer::byte_counter ivf_pq_bytes(faiss::IndexIVFPQ* ivf, bool refine, std::size_t n, std::size_t d) {
  return [ivf, refine, n, d] {
    return ivf_bytes(*ivf) + (ivf->pq.centroids.size() + ivf->precomputed_table.size()) * sizeof(float) +
           (refine ? n * d * sizeof(float) : 0);
  };
}

faiss_peer::knob_setter ef_knob(faiss::IndexHNSWFlat* hnsw) {
  return [hnsw](const params& p) { hnsw->hnsw.efSearch = int(positive(p, "ef", hnsw->hnsw.efSearch)); };
}

// The stored floats and the graph: neighbour ids of every level, each
// element's offset into them, and its level.
faiss_peer::byte_counter hnsw_bytes(faiss::IndexHNSWFlat* hnsw) {
  return [hnsw] {
    const faiss::HNSW& g = hnsw->hnsw;
    return std::size_t(hnsw->storage->ntotal) * std::size_t(hnsw->d) * sizeof(float) +
           g.neighbors.size() * sizeof(g.neighbors[0]) + g.offsets.size() * sizeof(g.offsets[0]) +
           g.levels.size() * sizeof(g.levels[0]);
  };
}

std::unique_ptr<bench_index> build_ivf_flat(const dataset& ds, const params& build, std::size_t threads) {
  pin_peer_threads(threads);
  const std::size_t n = ds.base.rows(), d = ds.base.cols();
  const std::size_t nlist = positive(build, "nlist", 1024);  // fitted to the rows by run_entry
  const std::uint64_t seed = build.get_size("seed", 1234);
  auto index = std::make_unique<faiss::IndexIVFFlat>(new faiss::IndexFlat(d, faiss_metric(ds.metric)), d,
                                                     nlist, faiss_metric(ds.metric));
  index->own_fields = true;  // the quantizer
  index->cp.seed = int(seed);
  std::vector<float> buffer;
  train_and_add(*index, build, nlist, faiss_rows(ds.base, ds.metric, buffer), n, d, seed);
  auto* ivf = index.get();
  return std::make_unique<faiss_peer>("faiss-ivf-flat", std::move(index), ds.metric, nprobe_knob(ivf),
                                      [ivf] { return ivf_bytes(*ivf); });
}


std::unique_ptr<bench_index> build_ivf_pq(const dataset& ds, const params& build, std::size_t threads) {
  pin_peer_threads(threads);
  const std::size_t n = ds.base.rows(), d = ds.base.cols();
  const std::size_t nlist = positive(build, "nlist", 1024);  // fitted to the rows by run_entry
  const std::size_t m = positive(build, "m", annulus::default_pq_m(d)), nbits = positive(build, "nbits", 8);
  const std::size_t refine = build.get_size("refine", 4);
  const std::uint64_t seed = build.get_size("seed", 1234);
  if (d % m != 0)
    throw usage_error("faiss-ivf-pq: m=" + std::to_string(m) + " does not divide d=" + std::to_string(d));
  if (n < (std::size_t{1} << nbits))
    throw usage_error("faiss-ivf-pq: nbits=" + std::to_string(nbits) + " needs at least " +
                      std::to_string(1u << nbits) + " base rows, there are " + std::to_string(n));
  auto pq = std::make_unique<faiss::IndexIVFPQ>(new faiss::IndexFlat(d, faiss_metric(ds.metric)), d, nlist,
                                                m, nbits, faiss_metric(ds.metric));
  pq->own_fields = true;
  pq->cp.seed = pq->pq.cp.seed = int(seed);
  pq->pq.cp.niter = int(positive(build, "pq_iterations", std::size_t(pq->pq.cp.niter)));
  auto* ivf = pq.get();
  std::unique_ptr<faiss::Index> index;
  if (refine > 0) {  // re-rank refine * k candidates by exact distance to the stored floats
    auto r = std::make_unique<faiss::IndexRefineFlat>(pq.release());
    r->own_fields = true;
    r->k_factor = float(refine);
    index = std::move(r);
  } else {
    index = std::move(pq);
  }
  std::vector<float> buffer;
  train_and_add(*index, build, nlist, faiss_rows(ds.base, ds.metric, buffer), n, d, seed);
  return std::make_unique<faiss_peer>("faiss-ivf-pq", std::move(index), ds.metric, nprobe_knob(ivf),
                                      ivf_pq_bytes(ivf, refine > 0, n, d));
}

// IndexIVFPQFastScan (4-bit PQ, blocks of 32, byte-shuffle lookups) under
// IndexRefineFlat: the peer of ivf_pq_fs, which always keeps its vectors.
std::unique_ptr<bench_index> build_ivf_pq_fs(const dataset& ds, const params& build, std::size_t threads) {
  pin_peer_threads(threads);
  const std::size_t n = ds.base.rows(), d = ds.base.cols();
  const std::size_t nlist = positive(build, "nlist", 1024);  // fitted to the rows by run_entry
  const std::size_t m = positive(build, "m", annulus::default_fast_scan_m(d));
  const std::size_t refine = build.get_size("refine", 20);
  const std::uint64_t seed = build.get_size("seed", 1234);
  if (d % m != 0)
    throw usage_error("faiss-ivf-pq-fs: m=" + std::to_string(m) + " does not divide d=" + std::to_string(d));
  auto pq = std::make_unique<faiss::IndexIVFPQFastScan>(new faiss::IndexFlat(d, faiss_metric(ds.metric)), d, nlist,
                                                        m, 4, faiss_metric(ds.metric));
  pq->own_fields = true;
  pq->cp.seed = pq->pq.cp.seed = int(seed);
  faiss::IndexIVF* ivf = pq.get();
  auto r = std::make_unique<faiss::IndexRefineFlat>(pq.release());
  r->own_fields = true;
  r->k_factor = float(std::max<std::size_t>(refine, 1));
  std::vector<float> buffer;
  train_and_add(*r, build, nlist, faiss_rows(ds.base, ds.metric, buffer), n, d, seed);
  return std::make_unique<faiss_peer>("faiss-ivf-pq-fs", std::move(r), ds.metric, nprobe_knob(ivf),
                                      [ivf, n, d] { return ivf_bytes(*ivf) + n * d * sizeof(float); });
}

// ---- HNSW ----

std::unique_ptr<bench_index> build_hnsw(const dataset& ds, const params& build, std::size_t threads) {
  pin_peer_threads(threads);
  const std::size_t d = ds.base.cols();
  const std::size_t m = positive(build, "m", 16), ef_construction = positive(build, "ef_construction", 200);
  auto index = std::make_unique<faiss::IndexHNSWFlat>(int(d), int(m), faiss_metric(ds.metric));
  index->hnsw.efConstruction = int(ef_construction);
  std::vector<float> buffer;
  index->add(faiss_id(ds.base.rows()), faiss_rows(ds.base, ds.metric, buffer));
  auto* hnsw = index.get();
  return std::make_unique<faiss_peer>("faiss-hnsw", std::move(index), ds.metric, ef_knob(hnsw), hnsw_bytes(hnsw));
}

// ---- Saved indexes: write_index's files, read back (IO_FLAG_MMAP for a view:
// FAISS 1.7.3 maps only an IVF index's inverted lists) ----

std::unique_ptr<bench_index> open_saved(const std::string& name, const dataset& ds, const params& build,
                                        const std::string& path, bool view) {
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::read_index(path.c_str(), view ? faiss::IO_FLAG_MMAP : 0));
  } catch (const faiss::FaissException& e) {
    if (view) throw not_supported(name + ": read_index with IO_FLAG_MMAP: " + e.what());
    throw;
  }
  faiss::Index* raw = index.get();
  // read_index ignores IO_FLAG_MMAP for anything but an IVF index's lists
  // (it reads the whole file), and IndexRefineFlat reads its float copy
  // whole: neither is a view.
  if (view && !dynamic_cast<faiss::IndexIVF*>(raw))
    throw not_supported(name + ": FAISS 1.7.3 maps only a bare IVF index's inverted lists");
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(raw))
    return std::make_unique<faiss_peer>(name, std::move(index), ds.metric, ef_knob(hnsw), hnsw_bytes(hnsw));
  if (auto* refine = dynamic_cast<faiss::IndexRefineFlat*>(raw)) {
    refine->k_factor = float(build.get_size("refine", 4));
    const std::size_t n = ds.base.rows(), d = ds.base.cols();
    if (auto* fs = dynamic_cast<faiss::IndexIVFPQFastScan*>(refine->base_index)) {
      refine->k_factor = float(std::max<std::size_t>(build.get_size("refine", 20), 1));
      return std::make_unique<faiss_peer>(name, std::move(index), ds.metric, nprobe_knob(fs),
                                          [fs, n, d] { return ivf_bytes(*fs) + n * d * sizeof(float); });
    }
    auto* ivf = dynamic_cast<faiss::IndexIVFPQ*>(refine->base_index);
    if (!ivf) throw not_supported(name + ": unexpected index inside IndexRefineFlat");
    return std::make_unique<faiss_peer>(name, std::move(index), ds.metric, nprobe_knob(ivf), ivf_pq_bytes(ivf, true, n, d));
  }
  if (auto* pq = dynamic_cast<faiss::IndexIVFPQ*>(raw))
    return std::make_unique<faiss_peer>(name, std::move(index), ds.metric, nprobe_knob(pq),
                                        ivf_pq_bytes(pq, false, ds.base.rows(), ds.base.cols()));
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(raw))
    return std::make_unique<faiss_peer>(name, std::move(index), ds.metric, nprobe_knob(ivf),
                                        [ivf] { return ivf_bytes(*ivf); });
  if (auto* flat = dynamic_cast<faiss::IndexFlat*>(raw))
    return std::make_unique<faiss_peer>(name, std::move(index), ds.metric, nullptr,
                                        [flat] { return flat->codes.size(); });
  throw not_supported(name + ": unexpected index type in " + path);
}

}  // namespace

std::vector<index_entry> faiss_entries() {
  const auto& nprobe = sweeps::nprobe;
  const auto& nprobe_quick = sweeps::nprobe_quick;
  const auto& ef = sweeps::ef;
  const auto& ef_quick = sweeps::ef_quick;
  // train_size (IVF; runner.cpp sets it when not given) and m (IVF-PQ)
  // default to values derived from the data, so they are not listed here;
  // they are still accepted as build parameters.
  std::vector<index_entry> entries{
      {"faiss-flat", "faiss", "flat", {}, "", {}, {}, build_flat},
      {"faiss-ivf-flat", "faiss", "ivf_flat", params::parse("nlist=1024,seed=1234", "faiss-ivf-flat"),
       "nprobe", nprobe, nprobe_quick, build_ivf_flat},
      {"faiss-ivf-pq", "faiss", "ivf_pq", params::parse("nlist=1024,nbits=8,pq_iterations=10,refine=4,seed=1234", "faiss-ivf-pq"),
       "nprobe", nprobe, nprobe_quick, build_ivf_pq},
      {"faiss-ivf-pq-fs", "faiss", "ivf_pq_fs", params::parse("nlist=1024,refine=20,seed=1234", "faiss-ivf-pq-fs"),
       "nprobe", nprobe, nprobe_quick, build_ivf_pq_fs},
      {"faiss-hnsw", "faiss", "hnsw", params::parse("m=16,ef_construction=200", "faiss-hnsw"), "ef", ef,
       ef_quick, build_hnsw},
  };
  entries[2].quick_build = params::parse("refine=16", "faiss-ivf-pq");  // as ivf_pq's
  for (index_entry& e : entries) {
    e.open = [name = e.name](const dataset& ds, const params& build, const std::string& path, bool view) {
      return open_saved(name, ds, build, path, view);
    };
    e.file_extension = ".faiss";
  }
  return entries;
}
#endif

}  // namespace annulus::bench
