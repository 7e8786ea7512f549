// sharded_index: S indexes of one type over a partition of the data,
// searched together and their top-k merged, as one index.
//
//   using shards = annulus::sharded_index<annulus::hnsw_index<annulus::l2>>;
//   auto idx = shards::build(data, {.shards = 4, .shard = {.m = 16}});
//   auto hits = idx.search(query, 10, {.ef = 64});   // each shard's own search_params
//   idx.add(rows, labels);  idx.remove(label);       // routed to the owning shard
//   idx.save("dir");  auto again = shards::load("dir");  // shard files + manifest
//
// Partitions (build_params::partition; the only two offered):
//   round_robin  row i of the build, and of every later add, counted over all
//                adds, goes to shard i mod S: shards differ in size by at
//                most one after a build. The owner of a label is found by
//                asking each shard (S hash lookups per remove, update, get).
//   label_hash   a label's shard is a fixed hash of the label mod S: the owner
//                is known without asking, and a service can route a label to
//                the process holding its shard (dist/mpi.hpp). Shard sizes
//                vary by about sqrt(n / S).
// Neither lets a query skip shards: every search asks every shard. (A
// partition by IVF cell would, at the cost of recall on queries near cell
// borders; not offered.)
//
// Results: every shard is asked for k (or all it holds, if fewer) and the S
// lists are merged by (distance, label), the order every index uses. Labels
// are the users' labels across shards. For an exact index (flat, kd_tree)
// the results equal those of one index over all the data, distances and
// tie order included (tests/index/sharded_test.cpp). For an approximate
// one each shard searches a smaller set with the same parameters: a graph
// (hnsw) then reaches at least one index's recall, at up to S times the
// search work; IVF probes the same share of each shard's cells as one index
// of all, and its recall stays about the same (within 0.01 in the tests).
//
// Threads: a single search asks the shards one after another on the calling
// thread, or, after set_search_threads(t > 1), on t workers of parallel_for
// (worth it when one shard's search costs far more than starting a thread,
// tens of microseconds: flat, large shards). search_batch runs each shard's
// own batch path (flat's GEMM) on `threads` workers, then merges on them.
// Searches are safe from many threads. add, remove and update run one at a
// time; beside searches only where the shard type allows that (hnsw).
//
// Failure: build, add, remove and update validate everything first (rows,
// labels across all shards), then change shards; remove and update touch one
// shard, whose call is all-or-nothing. An add reaching several shards adds
// to each in turn; when a later shard throws (out of memory), the rows added
// to the earlier ones are removed again and the exception rethrown. Removal
// allocates a little (a free-list entry): if memory is still exhausted then,
// that removal's exception reaches the caller and those rows stay. Tested
// with one failing allocation, not with memory that stays exhausted.
//
// health() reads every shard's health() and reports their sums, the shard
// balance and the shards' own findings (see add_health).
//
// Files: save(dir) writes shard-NNNNN.annulus per shard (each the shard
// type's own file, atomic) and then manifest.annulus (kind "sharded": the
// partition, the shard count, and per shard its vector count and a
// fingerprint of its file's footer), so a manifest names exactly the shard
// files written with it. load(dir) and view(dir) check every shard file
// against the manifest and throw format_error naming the file.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annulus/core/checksum.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/file.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/health.hpp"

namespace annulus {

/// How sharded_index assigns vectors to shards (see the top of index/sharded.hpp).
enum class shard_partition : std::uint8_t { round_robin = 0, label_hash = 1 };

/// The shard that owns `label` under label_hash (splitmix64's finaliser: every
/// label bit moves the result). Fixed: saved files depend on it.
constexpr std::size_t label_hash_shard(label_t label, std::size_t shards) {
  std::uint64_t z = label + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return std::size_t((z ^ (z >> 31)) % shards);
}

template <class Index>
  requires inspectable_index<Index>
class sharded_index : public index_base<sharded_index<Index>, typename Index::metric_type> {
  using Metric = typename Index::metric_type;
  using base = index_base<sharded_index<Index>, Metric>;
  friend base;

 public:
  static constexpr std::string_view index_name = "sharded_index";
  static constexpr std::string_view file_kind = "sharded";
  static constexpr bool viewable = requires { requires Index::viewable; };
  /// Routed adds, removes and updates may run beside searches where the shards allow it.
  static constexpr bool writes_beside_searches = annulus::writes_beside_searches<Index>;
  static constexpr std::size_t max_shards = 1024;  // merge_topk's limit
  using shard_type = Index;
  /// Each shard is searched with these.
  using search_params = typename Index::search_params;
  struct build_params {
    std::size_t shards = 2;  ///< S, 1 .. max_shards
    shard_partition partition = shard_partition::round_robin;
    typename Index::build_params shard{};  ///< every shard's own build parameters
  };

  /// S empty shards of `dim` dimensions (an IVF shard is then untrained: use
  /// build). Throws invalid_argument on a shard count outside 1 .. max_shards,
  /// and what Index's constructor throws.
  sharded_index(std::size_t dim, const build_params& params = {}) : params_(checked(params)) {
    shards_.reserve(params.shards);
    for (std::size_t s = 0; s < params.shards; ++s) shards_.emplace_back(dim, params.shard);
    serve_at_most();
  }

  sharded_index(sharded_index&& o) noexcept
      : base(std::move(o)), params_(o.params_), shards_(std::move(o.shards_)), added_(o.added_),
        search_threads_(o.search_threads_) {}
  sharded_index& operator=(sharded_index&& o) noexcept {
    base::operator=(std::move(o));
    params_ = o.params_;
    shards_ = std::move(o.shards_);
    added_ = o.added_;
    search_threads_ = o.search_threads_;
    return *this;
  }

  std::size_t dim() const { return shards_.front().dim(); }
  /// Live vectors over every shard.
  std::size_t size() const {
    std::size_t n = 0;
    for (const Index& s : shards_) n += s.size();
    return n;
  }
  std::size_t memory_bytes() const {
    std::size_t n = sizeof(*this) + shards_.capacity() * sizeof(Index);
    for (const Index& s : shards_) n += s.memory_bytes();
    return n;
  }

  std::size_t shard_count() const { return shards_.size(); }
  /// Shard s; throws invalid_argument past shard_count().
  const Index& shard(std::size_t s) const {
    return shards_[check::part_index("sharded_index::shard", "shard", s, shards_.size())];
  }
  shard_partition partition() const { return params_.partition; }

  /// Workers for a single search (1 = the calling thread asks each shard in
  /// turn; 0 = all cores). Set before the index is shared between threads.
  void set_search_threads(std::size_t threads) { search_threads_ = threads; }

  /// Whether `label` is in its shard.
  bool contains(label_t label) const { return owner(label) != nullptr; }
  /// The vector stored under `label` (as its shard's get). Throws
  /// invalid_argument for an unknown label.
  std::vector<float> get(label_t label) const { return owning("get", label).get(label); }
  /// Every shard's labels, shard after shard.
  std::vector<label_t> labels() const {
    std::vector<label_t> out;
    for (const Index& s : shards_) {
      const std::vector<label_t> part = s.labels();
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

  // ---- files: a directory of shard files and a manifest ----

  static std::filesystem::path manifest_path(const std::filesystem::path& dir) { return dir / "manifest.annulus"; }
  static std::filesystem::path shard_path(const std::filesystem::path& dir, std::size_t s) {
    std::string n = std::to_string(s);
    return dir / ("shard-" + std::string(5 - std::min<std::size_t>(5, n.size()), '0') + n + ".annulus");
  }

  /// Writes every shard to `dir` (created if missing), then the manifest.
  /// Each file is written atomically; a crash midway leaves a manifest
  /// that no longer matches its shard files, which load reports. Throws
  /// io_error, std::bad_alloc. Safe beside searches.
  void save(const std::filesystem::path& dir) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw io_error(std::string(index_name) + "::save: cannot create " + dir.string() + ": " + ec.message());
    std::vector<std::uint64_t> table;
    for (std::size_t s = 0; s < shards_.size(); ++s) {
      shards_[s].save(shard_path(dir, s));
      table.push_back(shards_[s].size());
      table.push_back(fingerprint(shard_path(dir, s)));
    }
    atomic_file file(manifest_path(dir));
    serial::writer w = this->start_file([&](std::span<const std::byte> b) { file.write(b); });
    w.section("sharded", serial::record()
                             .set("shards", shards_.size())
                             .set("partition", std::uint64_t(params_.partition))
                             .set("added", added_));
    w.section("sharded.table", std::span<const std::uint64_t>(table));
    w.finish();
    file.commit();
  }

  /// The index saved in `dir`, every shard loaded into memory of its own.
  /// Throws io_error (a missing file) and format_error naming the file: not
  /// a sharded manifest, another metric, kind or dimension in a shard file,
  /// a shard file not written with this manifest, and what Index::load throws.
  static sharded_index load(const std::filesystem::path& dir) { return base::load(manifest_path(dir)); }
  /// The same with every shard a read-only view of its file (Index::view);
  /// add, remove and update throw read_only_error.
  template <class I = Index>
    requires(I::viewable)
  static sharded_index view(const std::filesystem::path& dir) {
    return base::view(manifest_path(dir));
  }
  /// Checks the checksums view() left unread, in the manifest and every shard.
  void verify() const {
    base::verify();
    for (const Index& s : shards_) s.verify();
  }

  /// What a manifest says: for a process that opens one shard of a saved
  /// index (dist/mpi.hpp) rather than all of them.
  struct manifest {
    build_params params{};  ///< the shard count and partition (the shards' own parameters are in their files)
    std::uint64_t added = 0;
    std::size_t dim = 0;
    std::uint64_t count = 0;                 ///< vectors over every shard
    k_policy policy = k_policy::strict;      ///< the saved index's k policy
    std::vector<std::uint64_t> counts;       ///< vectors per shard
    std::vector<std::uint64_t> fingerprints; ///< per shard file (fingerprint())
  };
  /// Reads and checks `dir`'s manifest. Throws io_error, and format_error
  /// naming the file (not a sharded manifest of this metric, damaged).
  static manifest read_manifest(const std::filesystem::path& dir) {
    const mapped_file file(manifest_path(dir));
    serial::reader r(file.bytes(), manifest_path(dir).string(), serial::open_mode::load);
    r.expect(file_kind, Metric::kind);
    manifest m = read_manifest(r);
    m.policy = r.fields("base").u64_in("k_policy", 0, 1) == 0 ? k_policy::strict : k_policy::at_most;
    return m;
  }
  /// Shard `s` of the index saved in `dir`, loaded or (view = true) viewed,
  /// after checking it is the file the manifest was saved with and holds
  /// what the manifest says. Throws io_error and format_error naming the file.
  static Index open_shard(const std::filesystem::path& dir, const manifest& m, std::size_t s, bool view) {
    if (s >= m.params.shards)
      throw invalid_argument(std::string(index_name) + "::open_shard: shard " + std::to_string(s) + " of " +
                             std::to_string(m.params.shards));
    const std::filesystem::path file = shard_path(dir, s);
    const std::string where = manifest_path(dir).string() + ", section 'sharded.table'";
    if (fingerprint(file) != m.fingerprints[s])
      throw format_error(where + ": " + file.string() + " is not the shard file saved with this manifest");
    Index shard = [&] {
      if constexpr (viewable)
        if (view) return Index::view(file);
      return Index::load(file);
    }();
    if (shard.dim() != m.dim || shard.size() != m.counts[s])
      throw format_error(where + ": " + file.string() + " holds " + std::to_string(shard.size()) +
                         " vectors of dimension " + std::to_string(shard.dim()) + ", the manifest says " +
                         std::to_string(m.counts[s]) + " of " + std::to_string(m.dim));
    shard.set_k_policy(k_policy::at_most);
    return shard;
  }

 private:
  sharded_index(const build_params& params, std::vector<Index>&& shards, std::uint64_t added)
      : params_(params), shards_(std::move(shards)), added_(added) {
    serve_at_most();
  }

  static build_params checked(const build_params& p) {
    if (p.shards == 0 || p.shards > max_shards)
      throw invalid_argument(std::string(index_name) + ": shards must be in 1.." + std::to_string(max_shards) +
                             ", got " + std::to_string(p.shards));
    if (p.partition != shard_partition::round_robin && p.partition != shard_partition::label_hash)
      throw invalid_argument(std::string(index_name) + ": unknown partition " +
                             std::to_string(int(p.partition)));
    return p;
  }

  // A shard holding fewer than k answers with what it holds; a shard left
  // empty by removals answers nothing. The sharded index applies its own k
  // policy to the total.
  void serve_at_most() {
    for (Index& s : shards_) s.set_k_policy(k_policy::at_most);
  }

  // ---- health (index/base.hpp) ----

  // Each shard's reading (with its own locking), summed: removed vectors
  // and memory_needed (plus this object's own bytes), the shards' own
  // findings forwarded as "shard i: ..." (at most health_limits::shard_findings,
  // the rest counted). Figures: shards; shard_live_largest, _mean,
  // _smallest; shard_balance = largest / mean (1 = even); and, up to 8
  // shards, shard_<i>_live for each.
  void add_health(health_report& r) const {
    const std::size_t n = shards_.size();
    std::size_t removed = 0, largest = 0, smallest = std::numeric_limits<std::size_t>::max(), live = 0, more = 0;
    std::size_t held = sizeof(*this) + shards_.capacity() * sizeof(Index), needed = held;
    std::vector<std::size_t> per_shard(n);
    std::vector<health_finding> found;
    for (std::size_t i = 0; i < n; ++i) {
      const health_report h = shards_[i].health();
      if (i == 0) r.index += " of " + std::to_string(n) + " " + h.index;
      per_shard[i] = h.live;
      live += h.live;
      removed += h.removed_unreclaimed;
      held += h.memory_held;
      needed += h.memory_needed;
      largest = std::max(largest, h.live);
      smallest = std::min(smallest, h.live);
      for (const health_finding& f : health_detail::own_findings(h)) {
        if (found.size() < health_limits::shard_findings)
          found.push_back({"shard " + std::to_string(i) + ": " + f.what, f.remedy});
        else
          ++more;
      }
    }
    // Taken from the same readings, so that the sums agree with each other.
    r.live = live;
    r.removed_unreclaimed = removed;
    r.memory_held = held;
    r.memory_needed = needed;
    const double mean = double(live) / double(n);
    const double balance = live ? double(largest) / mean : 1.0;
    r.add_figure("shards", double(n), "");
    r.add_figure("shard_live_largest", double(largest), "live vectors");
    r.add_figure("shard_live_mean", mean, "live vectors");
    r.add_figure("shard_live_smallest", double(smallest), "live vectors");
    r.add_figure("shard_balance", balance, "largest / mean (1 = even; a query waits for the largest)");
    if (n <= 8)
      for (std::size_t i = 0; i < n; ++i)
        r.add_figure("shard_" + std::to_string(i) + "_live", double(per_shard[i]), "live vectors");
    for (health_finding& f : found) r.findings.push_back(std::move(f));
    if (more > 0)
      r.flag(std::to_string(more) + " more shard findings", "read shard(i).health() for each shard");
    // A hundred vectors a shard at least: below that, label_hash's spread alone passes the limit.
    if (balance > health_limits::shard_imbalance && mean >= 100)
      r.flag("shards unbalanced: the largest holds " + health_detail::fmt("%.2fx", balance) + " the mean",
             "rebuild (round_robin partitions evenly)");
  }

  // ---- routing ----

  // Where row `i` of an add (labels[i]) goes; `first` is added_ at the add.
  std::size_t route(label_t label, std::uint64_t first, std::size_t i) const {
    if (params_.partition == shard_partition::label_hash) return label_hash_shard(label, shards_.size());
    return std::size_t((first + i) % shards_.size());
  }

  const Index* owner(label_t label) const {
    if (params_.partition == shard_partition::label_hash) {
      const Index& s = shards_[label_hash_shard(label, shards_.size())];
      return s.contains(label) ? &s : nullptr;
    }
    for (const Index& s : shards_)
      if (s.contains(label)) return &s;
    return nullptr;
  }
  Index& owning(const char* call, label_t label) {
    return const_cast<Index&>(std::as_const(*this).owning(call, label));
  }
  const Index& owning(const char* call, label_t label) const {
    const Index* s = owner(label);
    if (!s)
      throw invalid_argument(std::string(index_name) + "::" + call + ": label " + std::to_string(label) +
                             " is not in the index");
    return *s;
  }

  // Labels given, or the default ones (added_ + i); every one new to every
  // shard and distinct. Throws invalid_argument naming the first that is not.
  std::vector<label_t> new_labels(std::size_t rows, std::span<const label_t> labels) const {
    return new_labels_for_holder(std::string(index_name) + "::add", rows, labels, added_,
                                 [&](label_t l) { return owner(l) != nullptr; });
  }

  // The rows and labels each shard receives.
  struct split {
    std::vector<std::vector<std::size_t>> rows;
    matrix<float> gathered(matrix_view<const float> data, std::size_t s) const {
      matrix<float> m(rows[s].size(), data.cols());
      for (std::size_t i = 0; i < rows[s].size(); ++i)
        std::copy_n(data.row_ptr(rows[s][i]), data.cols(), m.row_ptr(i));
      return m;
    }
    std::vector<label_t> labels_of(std::span<const label_t> labels, std::size_t s) const {
      std::vector<label_t> out(rows[s].size());
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = labels[rows[s][i]];
      return out;
    }
  };
  split split_rows(std::span<const label_t> labels, std::uint64_t first) const {
    split sp{std::vector<std::vector<std::size_t>>(shards_.size())};
    for (std::size_t i = 0; i < labels.size(); ++i) sp.rows[route(labels[i], first, i)].push_back(i);
    return sp;
  }

  // ---- the base's hooks ----

  // Every shard built over its part (Index::build_with_labels), one after
  // another, each on `threads` workers; a copy of each part is made first.
  static sharded_index build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                       const build_params& params, std::size_t threads) {
    sharded_index idx(data.cols(), checked(params));  // empty shards: routing and label checks
    const std::vector<label_t> all = idx.new_labels(data.rows(), labels);
    const split sp = idx.split_rows(all, 0);
    for (std::size_t s = 0; s < sp.rows.size(); ++s)
      if (sp.rows[s].empty())
        throw invalid_argument(std::string(index_name) + "::build: shard " + std::to_string(s) + " of " +
                               std::to_string(sp.rows.size()) + " would hold no vectors (" +
                               std::to_string(data.rows()) + " rows): use fewer shards");
    std::vector<Index> shards;
    shards.reserve(sp.rows.size());
    for (std::size_t s = 0; s < sp.rows.size(); ++s) {
      const matrix<float> part = sp.gathered(data, s);
      const std::vector<label_t> part_labels = sp.labels_of(all, s);
      shards.push_back(Index::build_with_labels(part.view(), part_labels, params.shard, threads));
    }
    return sharded_index(params, std::move(shards), data.rows());
  }

  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    if (data.rows() == 0) return;
    const std::lock_guard lock(writer_);
    const std::vector<label_t> all = new_labels(data.rows(), labels);
    const split sp = split_rows(all, added_);
    std::size_t done = 0;
    try {
      for (; done < shards_.size(); ++done) {
        if (sp.rows[done].empty()) continue;
        const matrix<float> part = sp.gathered(data, done);
        const std::vector<label_t> part_labels = sp.labels_of(all, done);
        shards_[done].add(part.view(), part_labels, threads);
      }
    } catch (...) {
      for (std::size_t s = 0; s < done; ++s)
        for (const std::size_t i : sp.rows[s]) shards_[s].remove(all[i]);
      throw;
    }
    added_ += data.rows();
  }

  void remove_label(label_t label) {
    const std::lock_guard lock(writer_);
    owning("remove", label).remove(label);
  }
  void update_validated(label_t label, std::span<const float> vector) {
    const std::lock_guard lock(writer_);
    owning("update", label).update(label, vector);
  }

  // q validated and prepared by the base: each shard searches with it as is.
  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    const std::size_t n = shards_.size();
    // Per thread (and nesting depth: a filter may search again), reused.
    scratch_lease<std::vector<neighbor>> results_lease;
    scratch_lease<std::vector<std::span<const neighbor>>> lists_lease;
    std::vector<neighbor>& results = *results_lease;
    std::vector<std::span<const neighbor>>& lists = *lists_lease;
    if (results.size() < n * k) results.resize(n * k);
    lists.resize(n);
    auto one = [&](std::size_t s, std::size_t) {
      const std::span<neighbor> mine(results.data() + s * k, k);
      lists[s] = mine.first(base::search_held(shards_[s], q, k, params, mine, keep));
    };
    if (search_threads_ == 1 || n == 1) {
      for (std::size_t s = 0; s < n; ++s) one(s, 0);
    } else {
      parallel_for(n, search_threads_, one);
    }
    return merge_topk(lists, k, out);
  }

  // Queries validated (raw: each shard's batch path prepares them once).
  result_matrix search_batch_prepared(matrix_view<const float> queries, std::size_t k, const search_params& params,
                                      std::size_t threads) const {
    std::vector<result_matrix> parts;
    parts.reserve(shards_.size());
    for (const Index& s : shards_)
      if (s.size() != 0) parts.push_back(s.search_batch(queries, k, params, threads));
    result_matrix out(queries.rows(), k);
    parallel_for(
        queries.rows(), threads,
        [&](std::size_t i, std::size_t) {
          std::span<const neighbor> lists[max_shards];
          for (std::size_t p = 0; p < parts.size(); ++p) lists[p] = parts[p][i];
          out.set_count(i, merge_topk(std::span(lists, parts.size()), k, out.row_storage(i)));
        },
        64);
    return out;
  }

  // ---- the manifest (the base writes and reads its header and base record) ----

  // A shard file's identity: the checksum of its 32-byte footer, which
  // holds the checksum of its header and section table, which hold every
  // section's checksum. Throws io_error if the file cannot be read.
  static std::uint64_t fingerprint(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw io_error(std::string(index_name) + ": the shard file " + path.string() + " is missing");
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    std::array<std::byte, serial::footer_bytes> footer{};
    if (!in || std::streamoff(in.tellg()) < std::streamoff(footer.size()) ||
        !in.seekg(-std::streamoff(footer.size()), std::ios::end) ||
        !in.read(reinterpret_cast<char*>(footer.data()), std::streamsize(footer.size())))
      throw io_error(std::string(index_name) + ": cannot read the end of " + path.string());
    return checksum(footer);
  }

  // The manifest's own sections (the base checked its kind, metric and base record).
  static manifest read_manifest(serial::reader& r) {
    const auto rec = r.fields("sharded");
    manifest m;
    m.params.shards = std::size_t(rec.u64_in("shards", 1, max_shards));
    m.params.partition = shard_partition(rec.u64_in("partition", 0, 1));
    m.added = rec.u64("added");
    m.dim = r.header().dim;
    m.count = r.header().count;
    const auto table =
        r.structure_array<std::uint64_t>("sharded.table", r.product("sharded.table", m.params.shards, 2));
    for (std::size_t s = 0; s < m.params.shards; ++s) {
      m.counts.push_back(table[2 * s]);
      m.fingerprints.push_back(table[2 * s + 1]);
    }
    return m;
  }

  static sharded_index load_sections(serial::reader& r) {
    const manifest m = read_manifest(r);
    const std::filesystem::path dir = std::filesystem::path(r.source()).parent_path();
    std::vector<Index> shards;
    shards.reserve(m.params.shards);
    for (std::size_t s = 0; s < m.params.shards; ++s) shards.push_back(open_shard(dir, m, s, r.viewing()));
    return sharded_index(m.params, std::move(shards), m.added);
  }

  build_params params_;
  std::vector<Index> shards_;
  std::uint64_t added_ = 0;  // vectors ever added: the round-robin position and the next default label
  std::size_t search_threads_ = 1;
  std::mutex writer_;  // add, remove, update: one at a time
};

}  // namespace annulus
