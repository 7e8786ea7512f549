// annulus's own indexes in the benchmark: one adapter template for any type
// that models annulus::index, and one registry entry per index family.
#include <memory>
#include <string>

#include <annulus/index/sharded.hpp>

#include "bench_index.hpp"
#include "peers.hpp"

namespace annulus::bench {
namespace {

/// Wraps an annulus index; `Knobs` turns a sweep point into its search_params.
template <class Index, class Knobs>
class annulus_adapter final : public bench_index {
 public:
  annulus_adapter(Index idx, Knobs knobs) : index_(std::move(idx)), knobs_(knobs) {}
  void configure(const params& search) override {
    search_ = knobs_(search);
    search.require_all_used("search parameters");
  }
  std::size_t search_one(std::span<const float> q, std::size_t k, std::span<neighbor> out) override {
    return index_.search(q, k, search_, out);
  }
  result_matrix search_all(matrix_view<const float> queries, std::size_t k,
                           std::size_t threads) override {
    return annulus::search_batch(index_, queries, k, search_, threads);
  }
  std::size_t memory_bytes() const override { return index_.memory_bytes(); }
  bool save(const std::string& path) const override {
    // A sharded_index saves a directory, which --save's file figures do not measure.
    if constexpr (requires { Index::file_kind; } && !requires { typename Index::shard_type; }) {
      index_.save(path);
      return true;
    } else {
      return false;
    }
  }

 private:
  Index index_;
  Knobs knobs_;
  typename Index::search_params search_{};
};

template <class Index, class Knobs>
std::unique_ptr<bench_index> adapt(Index idx, Knobs knobs) {
  return std::make_unique<annulus_adapter<Index, Knobs>>(std::move(idx), knobs);
}

/// Where an entry's index comes from: built (no path), or opened from a
/// file its save() wrote, loaded or viewed.
struct source {
  std::string path;
  bool view = false;
  std::size_t shards = 1;  ///< > 1: a sharded_index of that many (annulus-bench --shards)
};

template <class Index, class Build>
Index obtain(const source& src, Build&& build) {
  if (src.path.empty()) return build();
  if constexpr (!requires { Index::file_kind; }) {
    throw not_supported(std::string(Index::index_name) + " does not save yet");
  } else if (src.view) {
    if constexpr (requires { requires Index::viewable; })
      return Index::view(src.path);
    else
      throw not_supported(std::string(Index::index_name) + " has no view");
  } else {
    return Index::load(src.path);
  }
}

/// The entry's index built from (or opened as) `src` says, wrapped for the
/// bench; with src.shards > 1 a sharded_index of that many over a
/// round-robin partition, each shard with `p`, searched with the same knobs.
template <class Index, class Knobs>
std::unique_ptr<bench_index> built(const dataset& ds, const typename Index::build_params& p, std::size_t threads,
                                   const source& src, Knobs knobs) {
  if (src.shards > 1) {
    using sharded = sharded_index<Index>;
    return adapt(obtain<sharded>(src, [&] { return sharded::build(ds.base, {.shards = src.shards, .shard = p}, threads); }),
                 knobs);
  }
  return adapt(obtain<Index>(src, [&] { return Index::build(ds.base, p, threads); }), knobs);
}

/// Sets an entry's build and open from one function
/// make(ds, build params, threads, source) -> unique_ptr<bench_index>.
template <class Make>
void made_by(index_entry& e, Make make) {
  e.build = [make](const dataset& ds, const params& build, std::size_t threads) {
    return make(ds, build, threads, source{"", false, build.get_size("shards", 1)});
  };
  e.open = [make](const dataset& ds, const params& build, const std::string& path, bool view) {
    return make(ds, build, 0, source{path, view, build.get_size("shards", 1)});
  };
  e.file_extension = ".annulus";
}

/// Calls make.template operator()<Metric>() for the dataset's metric.
template <class Make>
auto for_metric(metric_kind m, Make make) {
  switch (m) {
    case metric_kind::l2: return make.template operator()<l2>();
    case metric_kind::inner_product: return make.template operator()<inner_product>();
    case metric_kind::cosine: return make.template operator()<cosine>();
  }
  throw usage_error("unknown metric");
}

index_entry flat_entry() {
  index_entry e;
  e.name = "flat";
  e.library = "annulus";
  made_by(e, [](const dataset& ds, const params&, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      return built<flat_index<M>>(ds, {}, threads, src, [](const params&) {
        return typename flat_index<M>::search_params{};
      });
    });
  });
  return e;
}

// hnsw's build parameters (m, ef_construction, alpha, seed) and its search
// knob (ef), shared by every entry with an hnsw graph inside.
template <class BuildParams>
void read_hnsw_build(const params& build, BuildParams& p) {
  p.m = build.get_size("m", p.m);
  p.ef_construction = build.get_size("ef_construction", p.ef_construction);
  p.alpha = build.get_double("alpha", p.alpha);
  p.seed = build.get_size("seed", p.seed);
}
template <class Index>
typename Index::search_params read_hnsw_search(const params& search) {
  typename Index::search_params s;
  s.ef = search.get_size("ef", s.ef);
  return s;
}

// hnsw walked on the vectors (exact_walk, "hnsw") or on 8-bit node codes
// with an exact re-rank (sq8_walk, "hnsw_sq8"); the same graph and knobs.
template <class Walk>
index_entry hnsw_entry(const char* name) {
  index_entry e;
  e.name = name;
  e.library = "annulus";
  e.family = "hnsw";  // compared with hnsw's peers (hnswlib, faiss-hnsw)
  e.growth = advisor_growth::logarithmic;
  e.default_build = params::parse("m=16,ef_construction=200,alpha=1.05,seed=100", name);
  e.knob = "ef";
  e.sweep = sweeps::ef;
  e.quick_sweep = sweeps::ef_quick;
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      using index = hnsw_index<M, Walk>;
      typename index::build_params p;
      read_hnsw_build(build, p);
      p.reorder = build.get_size("reorder", 0) != 0;
      // rerank=R (hnsw_sq8): re-rank only the R closest by code, a fixed
      // search setting beside the ef sweep, as refine is for IVF-PQ; 0 (or
      // absent) is the library's default, max(8k, 64); any R >= ef re-ranks
      // the whole beam.
      std::size_t rerank = 0;
      if constexpr (index::walks_codes) rerank = build.get_size("rerank", 0);
      return built<index>(ds, p, threads, src, [rerank](const params& search) {
        auto s = read_hnsw_search<index>(search);
        s.rerank = rerank;
        return s;
      });
    });
  });
  return e;
}

// nlist, train_size and seed as the FAISS IVF peers read them, so one
// --build string configures both sides alike.
// run_entry has already fitted nlist and train_size to the rows.
template <class Params>
Params ivf_build_params(const params& build) {
  Params p;
  p.nlist = positive(build, "nlist", p.nlist);
  p.train_size = build.get_size("train_size", 0);
  p.seed = build.get_size("seed", p.seed);
  return p;
}

index_entry ivf_flat_entry() {
  index_entry e;
  e.name = "ivf_flat";
  e.growth = advisor_growth::square_root;
  e.library = "annulus";
  e.default_build = params::parse("nlist=1024,seed=1234", "ivf_flat");
  e.knob = "nprobe";
  e.sweep = sweeps::nprobe;
  e.quick_sweep = sweeps::nprobe_quick;
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      using index = ivf_flat_index<M>;
      const auto p = ivf_build_params<typename index::build_params>(build);
      return built<index>(ds, p, threads, src, [](const params& search) {
        typename index::search_params s;
        s.nprobe = positive(search, "nprobe", s.nprobe);
        return s;
      });
    });
  });
  return e;
}

// refine=R keeps the vectors and re-ranks k * R candidates (FAISS's
// IndexRefineFlat with k_factor R); refine=0 is plain IVF-PQ.
index_entry ivf_pq_entry() {
  index_entry e;
  e.name = "ivf_pq";
  e.growth = advisor_growth::square_root;
  e.library = "annulus";
  e.default_build = params::parse("nlist=1024,nbits=8,pq_iterations=10,refine=4,seed=1234", "ivf_pq");
  // The quick set's 64 dimensions get 8-byte codes: x4 re-ranking stops near 0.8.
  e.quick_build = params::parse("refine=16", "ivf_pq");
  e.knob = "nprobe";
  e.sweep = sweeps::nprobe;
  e.quick_sweep = sweeps::nprobe_quick;
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      using index = ivf_pq_index<M>;
      auto p = ivf_build_params<typename index::build_params>(build);
      p.m = positive(build, "m", default_pq_m(ds.base.cols()));
      p.nbits = positive(build, "nbits", p.nbits);
      p.pq_iterations = positive(build, "pq_iterations", p.pq_iterations);
      const std::size_t refine = build.get_size("refine", 4);
      p.keep_vectors = refine > 0;
      return built<index>(ds, p, threads, src, [refine](const params& search) {
        typename index::search_params s;
        s.nprobe = positive(search, "nprobe", s.nprobe);
        s.refine_factor = refine;
        return s;
      });
    });
  });
  return e;
}

// 4-bit fast-scan IVF-PQ (index/ivf_pq_fast_scan.hpp): the vectors are
// always kept; refine=R re-ranks k * R candidates (FAISS's
// IndexIVFPQFastScan under IndexRefineFlat with k_factor R).
index_entry ivf_pq_fs_entry() {
  index_entry e;
  e.name = "ivf_pq_fs";
  e.growth = advisor_growth::square_root;
  e.library = "annulus";
  e.default_build = params::parse("nlist=1024,refine=20,seed=1234", "ivf_pq_fs");
  e.knob = "nprobe";
  e.sweep = sweeps::nprobe;
  e.quick_sweep = sweeps::nprobe_quick;
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      using index = ivf_pq_fs_index<M>;
      auto p = ivf_build_params<typename index::build_params>(build);
      p.m = positive(build, "m", default_fast_scan_m(ds.base.cols()));
      const std::size_t refine = build.get_size("refine", 20);
      return built<index>(ds, p, threads, src, [refine](const params& search) {
        typename index::search_params s;
        s.nprobe = positive(search, "nprobe", s.nprobe);
        s.refine_factor = refine;
        return s;
      });
    });
  });
  return e;
}

// A kd-tree is for low dimensions; here it shows where it breaks. The sweep
// is best-bin-first's leaf budget (exact search is the flat entry's job).
index_entry kd_tree_entry() {
  index_entry e;
  e.name = "kd_tree";
  e.library = "annulus";
  e.default_build = params::parse("leaf_size=16", "kd_tree");
  e.metrics = {metric_kind::l2, metric_kind::cosine};
  e.knob = "max_leaves";
  e.sweep = {"1", "4", "16", "64", "256"};
  e.quick_sweep = {"1", "16", "256"};
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() -> std::unique_ptr<bench_index> {
      if constexpr (M::kind == metric_kind::inner_product) {
        throw usage_error("kd_tree: no inner_product");  // e.metrics keeps it from coming here
      } else {
        typename kd_tree_index<M>::build_params p;
        p.leaf_size = positive(build, "leaf_size", p.leaf_size);
        return built<kd_tree_index<M>>(ds, p, threads, src, [](const params& search) {
          typename kd_tree_index<M>::search_params s;
          s.max_leaves = positive(search, "max_leaves", 64);
          return s;
        });
      }
    });
  });
  return e;
}

index_entry rp_forest_entry() {
  index_entry e;
  e.name = "rp_forest";
  e.library = "annulus";
  e.default_build = params::parse("n_trees=16,leaf_size=32,seed=1234", "rp_forest");
  e.knob = "search_k";
  e.sweep = {"25", "50", "100", "200", "400", "800", "1600", "3200"};
  e.quick_sweep = {"50", "400", "1600"};
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      using index = rp_forest_index<M>;
      typename index::build_params p;
      p.n_trees = positive(build, "n_trees", p.n_trees);
      p.leaf_size = positive(build, "leaf_size", p.leaf_size);
      p.seed = build.get_size("seed", p.seed);
      return built<index>(ds, p, threads, src, [](const params& search) {
        typename index::search_params s;
        s.search_k = search.get_size("search_k", s.search_k);
        return s;
      });
    });
  });
  return e;
}

// bucket_width=0 (the default) picks the E2LSH width from the data (l2 only).
index_entry lsh_entry() {
  index_entry e;
  e.name = "lsh";
  e.library = "annulus";
  e.default_build = params::parse("tables=16,bits=12,seed=1234", "lsh");
  e.knob = "probes";
  e.sweep = {"0", "8", "64"};  // ~1 s a point on the default set
  e.quick_sweep = {"0", "32", "1024"};  // 1024 probes: the one point past recall 0.9 on the quick set
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads, const source& src) {
    return for_metric(ds.metric, [&]<class M>() {
      using index = lsh_index<M>;
      typename index::build_params p;
      p.tables = positive(build, "tables", p.tables);
      p.bits = positive(build, "bits", p.bits);
      p.bucket_width = float(build.get_double("bucket_width", p.bucket_width));
      p.seed = build.get_size("seed", p.seed);
      return built<index>(ds, p, threads, src, [](const params& search) {
        typename index::search_params s;
        s.probes = search.get_size("probes", s.probes);
        s.max_candidates = search.get_size("max_candidates", s.max_candidates);
        return s;
      });
    });
  });
  return e;
}

// Maximum inner product through HNSW over norm-augmented vectors
// (index/mips.hpp), for --metric ip: the other route next to hnsw's own
// inner_product search, and hnswlib's.
index_entry mips_hnsw_entry() {
  index_entry e;
  e.name = "mips_hnsw";
  e.growth = advisor_growth::logarithmic;
  e.library = "annulus";
  e.default_build = params::parse("m=16,ef_construction=200,alpha=1.05,seed=100,headroom=1", "mips_hnsw");
  e.metrics = {metric_kind::inner_product};
  e.knob = "ef";
  e.sweep = sweeps::ef;
  e.quick_sweep = sweeps::ef_quick;
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads,
                const source& src) -> std::unique_ptr<bench_index> {
    using index = mips_index<hnsw_index<l2>>;
    index::build_params p;
    read_hnsw_build(build, p.inner);
    p.norm_headroom = build.get_double("headroom", p.norm_headroom);
    return built<index>(ds, p, threads, src, read_hnsw_search<index>);
  });
  return e;
}

// Maximum inner product through HNSW over norm bands, each augmented with
// its own M (index/banded_mips.hpp): the route that holds on any norm spread.
index_entry banded_mips_hnsw_entry() {
  index_entry e;
  e.name = "banded_mips_hnsw";
  e.growth = advisor_growth::logarithmic;
  e.library = "annulus";
  e.default_build =
      params::parse("m=16,ef_construction=200,alpha=1.05,seed=100,band_ratio=1.25,min_band_size=1000",
                    "banded_mips_hnsw");
  e.metrics = {metric_kind::inner_product};
  e.knob = "ef";
  e.sweep = sweeps::ef;
  e.quick_sweep = sweeps::ef_quick;
  made_by(e, [](const dataset& ds, const params& build, std::size_t threads,
                const source& src) -> std::unique_ptr<bench_index> {
    using index = banded_mips_index<hnsw_index<l2>>;
    index::build_params p;
    read_hnsw_build(build, p.inner);
    p.band_ratio = build.get_double("band_ratio", p.band_ratio);
    p.min_band_size = build.get_size("min_band_size", p.min_band_size);
    return built<index>(ds, p, threads, src, read_hnsw_search<index>);
  });
  return e;
}

}  // namespace

std::vector<index_entry> registry() {
  std::vector<index_entry> all{flat_entry(),      hnsw_entry<exact_walk>("hnsw"), hnsw_entry<sq8_walk>("hnsw_sq8"),
                               ivf_flat_entry(),  ivf_pq_entry(),                 ivf_pq_fs_entry(),
                               kd_tree_entry(),
                               rp_forest_entry(), lsh_entry(),                    mips_hnsw_entry(),
                               banded_mips_hnsw_entry()};
  for (auto& e : faiss_entries()) all.push_back(std::move(e));
  for (auto& e : hnswlib_entries()) all.push_back(std::move(e));
  for (index_entry& peer : all)
    for (const index_entry& e : all)
      if (peer.library != "annulus" && e.name == peer.peer_of) peer.growth = e.growth;
  return all;
}

}  // namespace annulus::bench
