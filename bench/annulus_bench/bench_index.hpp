// What annulus-bench needs of any index, annulus's or a peer's, behind one
// virtual interface (the bench is not a hot path; the indexes' own search
// calls inside are).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <annulus/annulus.hpp>

#include "dataset.hpp"
#include "params.hpp"

namespace annulus::bench {

/// A built index, searched at one setting of its search knob at a time.
class bench_index {
 public:
  virtual ~bench_index() = default;
  /// Applies one sweep point ("ef=64", "nprobe=8"; empty for flat). Throws
  /// usage_error on an unknown or invalid key.
  virtual void configure(const params& search) = 0;
  /// One query, as a service calls it; writes up to k neighbours (labels are
  /// base row numbers) closest first, returns how many.
  virtual std::size_t search_one(std::span<const float> query, std::size_t k,
                                 std::span<neighbor> out) = 0;
  /// All rows of `queries` through the library's batch call, on `threads` threads.
  virtual result_matrix search_all(matrix_view<const float> queries, std::size_t k,
                                   std::size_t threads) = 0;
  /// The library's own count of index bytes (0 where it has none).
  virtual std::size_t memory_bytes() const = 0;
  /// Writes the index to `path` in its library's own format (annulus save,
  /// hnswlib saveIndex, FAISS write_index). False: this library cannot.
  virtual bool save(const std::string& path) const {
    (void)path;
    return false;
  }
};

/// An index kind or a way of opening it that a library does not offer
/// (hnswlib has no memory-mapped view): the bench reports "n/a".
struct not_supported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Default sweeps of the shared search knobs, for annulus's indexes and their
/// peers alike (a run compares them point for point). Rising in effort: a
/// default sweep stops once recall passes 0.995 (run_options::stop_recall).
namespace sweeps {
inline const std::vector<std::string> ef{"10", "16", "24", "32", "48", "64", "96", "128", "256", "512"};
inline const std::vector<std::string> ef_quick{"16", "64", "256"};
inline const std::vector<std::string> nprobe{"1", "4", "8", "16", "32", "64", "128"};
inline const std::vector<std::string> nprobe_quick{"1", "4", "16"};
}  // namespace sweeps

/// One registered index: how to build it, its parameters and default sweep.
struct index_entry {
  std::string name;            ///< as given to --index / --peers: "flat", "faiss-hnsw"
  std::string library;         ///< "annulus", "faiss", "hnswlib"
  std::string peer_of;         ///< for a peer: the annulus index it is compared with
  params default_build;        ///< build parameters when the user gives none
  std::string knob;            ///< the search parameter swept ("ef"); empty: none
  std::vector<std::string> sweep, quick_sweep;  ///< its default values
  /// Builds over ds.base with `threads` threads (0 = all). Reads what it needs
  /// of `build`; the caller checks nothing was left unread.
  std::function<std::unique_ptr<bench_index>(const dataset& ds, const params& build,
                                             std::size_t threads)>
      build;
  /// Dataset metrics it can search under; "--index all" skips it on others.
  std::vector<metric_kind> metrics{metric_kind::l2, metric_kind::inner_product, metric_kind::cosine};
  /// Opens what save() wrote, with the same build parameters (they set
  /// search knobs such as IVF-PQ's refine): into memory of its own (view =
  /// false) or served from a read-only mapping (view = true; throws
  /// not_supported where the library has none). Empty: cannot open files.
  std::function<std::unique_ptr<bench_index>(const dataset& ds, const params& build, const std::string& path,
                                             bool view)>
      open{};
  std::string file_extension = ".idx";  ///< of the files save() writes
  /// For an annulus index: the index whose peers it is compared with
  /// (hnsw_sq8 with hnsw's); empty: its own name.
  std::string family{};
  /// Laid over default_build under --quick (before the user's parameters):
  /// what the small quick set needs for a point above recall 0.9.
  params quick_build{};
  /// How its one-query latency grows with n, for the advisor's extrapolation
  /// in report.html (a peer's is the one of the annulus index it is compared with).
  advisor_growth growth = advisor_growth::linear;
  /// The annulus index name its comparisons go by: family (or name) for an
  /// annulus index, peer_of for a peer.
  const std::string& compared_as() const {
    return library == "annulus" ? (family.empty() ? name : family) : peer_of;
  }
};

/// Every index the bench knows: annulus's (annulus_entries.cpp, the one place
/// an annulus index is added), then the peers found at configure time.
std::vector<index_entry> registry();

}  // namespace annulus::bench
