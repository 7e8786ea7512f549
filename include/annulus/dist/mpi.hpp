// Sharded search across processes and machines over MPI (Open MPI:
// libopenmpi-dev). Optional: only a program that includes this header needs
// mpi.h and links MPI (CMake: MPI::MPI_CXX); the rest of annulus never does.
//
// The index is one saved by sharded_index<Index>::save(dir) (a manifest and
// S shard files). The job's ranks form S shards x R replicas: rank r serves
// shard r mod S in replica group r / S, opening only its own shard file
// (viewed by default, so replicas on one machine share its pages). Within a
// group the rank serving shard 0 is the root: its search_batch broadcasts
// the batch (one MPI_Bcast of a header and the queries), every rank of the
// group searches its shard, and one MPI_Reduce with a merging operator
// (commutative: the total order every result has, distance then label)
// leaves the global top-k at the root. Replica groups run independently, so
// a service spreads its batches over them (batch b to group b mod R).
//
//   MPI_Init(&argc, &argv);
//   auto shards = annulus::dist::mpi_shards<annulus::hnsw_index<annulus::l2>>::open(MPI_COMM_WORLD, dir, replicas);
//   if (shards.root()) {
//     for (auto& batch : my_batches) use(shards.search_batch(batch, 10, {.ef = 64}));
//     shards.stop();                   // releases the other ranks of the group
//   } else {
//     while (shards.serve()) {}        // answers the root's batches until stop()
//   }
//   MPI_Finalize();
//
// The results are those of sharded_index<Index>::load(dir).search_batch over
// the same queries (each shard's own batch path, merged in the same order).
//
// Failures:
//   - open() is collective over `world`. A rank that cannot open its part (a
//     missing shard file, one not written with the manifest, another kind,
//     metric or dimension, a world size that is not S x R) makes every rank
//     throw startup_error carrying every failing rank's message (rank, shard,
//     file): no rank is left waiting.
//   - search_batch validates the batch at the root (dimension, k, NaN/Inf)
//     before anything is sent: a bad batch throws there and the group waits
//     for the next one.
//   - A rank that dies: MPI offers no recovery here (Open MPI 4.1 has no
//     ULFM). A rank that exits or is killed makes mpirun terminate every
//     other rank and exit non-zero (errors are fatal by default); a rank that
//     hangs without dying blocks its group, which mpirun --timeout bounds.
//     docs/scale.md and tests/dist/ measure how long a job takes to fail.
//
// Threads: open, search_batch, serve and stop are called from one thread per
// rank (MPI_THREAD_FUNNELED is enough); each rank's shard search runs on
// `threads` workers (set_threads, default 1: one rank per core).
#pragma once

// The C API only: Open MPI's deprecated C++ bindings are not used (and warn).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/sharded.hpp"

namespace annulus::dist {

/// An MPI call failed.
class mpi_error : public error {
 public:
  using error::error;
};
/// A rank could not open its part (mpi_shards::open): thrown on every rank.
class startup_error : public mpi_error {
 public:
  using mpi_error::mpi_error;
};

/// How each rank opens its shard file.
enum class shard_open { view, load };

namespace detail {

inline void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw mpi_error(std::string(call) + " failed: " + std::string(text, std::size_t(len)));
}

// A result slot no shard filled: after every real result in the order.
constexpr neighbor unfilled{std::numeric_limits<label_t>::max(), std::numeric_limits<float>::infinity()};

// The reduction: each element is one query's k results, closest first;
// inout becomes the k closest of both. k comes from the datatype's size.
inline void merge_results(void* in, void* inout, int* len, MPI_Datatype* type) {
  int bytes = 0;
  MPI_Type_size(*type, &bytes);
  const std::size_t k = std::size_t(bytes) / sizeof(neighbor);
  const auto* a = static_cast<const neighbor*>(in);
  auto* b = static_cast<neighbor*>(inout);
  std::vector<neighbor> merged(k);
  for (int q = 0; q < *len; ++q, a += k, b += k) {
    std::size_t i = 0, j = 0;
    for (std::size_t o = 0; o < k; ++o) merged[o] = closer(a[i], b[j]) ? a[i++] : b[j++];
    std::copy(merged.begin(), merged.end(), b);
  }
}

// What the root broadcasts before each batch.
struct batch_header {
  std::uint64_t command = 0;  // 0 stop, 1 search
  std::uint64_t queries = 0;
  std::uint64_t k = 0;
};

}  // namespace detail

template <class Index>
class mpi_shards {
  using Metric = typename Index::metric_type;

 public:
  using shard_type = Index;
  using search_params = typename Index::search_params;
  static_assert(std::is_trivially_copyable_v<search_params>, "search parameters are broadcast as bytes");

  /// Collective over `world` (every rank calls it): arranges the ranks as the
  /// manifest's S shards x `replicas` and opens this rank's shard file from
  /// `dir` (sharded_index<Index>::save's directory; a shared file system or
  /// a copy per machine). Throws startup_error on every rank if any rank failed,
  /// naming each failing rank, its shard and file, and what was wrong.
  static mpi_shards open(MPI_Comm world, const std::filesystem::path& dir, std::size_t replicas,
                         shard_open how = shard_open::view) {
    int rank = 0, size = 0;
    detail::check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank");
    detail::check(MPI_Comm_size(world, &size), "MPI_Comm_size");
    mpi_shards s;
    std::string failure;
    try {
      s.manifest_ = sharded_index<Index>::read_manifest(dir);
      const std::size_t shards = s.manifest_.params.shards;
      if (replicas == 0 || std::size_t(size) != shards * replicas)
        throw invalid_argument("the job has " + std::to_string(size) + " ranks; " + dir.string() + " holds " +
                               std::to_string(shards) + " shards, so " + std::to_string(replicas) +
                               " replicas need " + std::to_string(shards * replicas));
      s.replicas_ = replicas;
      s.shard_ = std::size_t(rank) % shards;
      s.replica_ = std::size_t(rank) / shards;
      s.local_.emplace(sharded_index<Index>::open_shard(dir, s.manifest_, s.shard_, how == shard_open::view));
      s.local_->set_k_policy(k_policy::at_most);
    } catch (const std::exception& e) {
      failure = "rank " + std::to_string(rank) + " (shard " +
                (s.manifest_.params.shards ? std::to_string(std::size_t(rank) % s.manifest_.params.shards) : "?") +
                " of " + dir.string() + "): " + e.what();
    }
    const std::string all = gather_failures(world, failure);
    if (!all.empty()) throw startup_error("annulus::dist::mpi_shards::open failed:\n" + all);
    detail::check(MPI_Comm_split(world, int(s.replica_), int(s.shard_), &s.group_), "MPI_Comm_split");
    detail::check(MPI_Op_create(&detail::merge_results, 1, &s.merge_), "MPI_Op_create");
    return s;
  }

  mpi_shards(mpi_shards&& o) noexcept { swap(o); }
  mpi_shards& operator=(mpi_shards&& o) noexcept {
    swap(o);
    return *this;
  }
  ~mpi_shards() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // nothing to free after MPI_Finalize
    if (merge_ != MPI_OP_NULL) MPI_Op_free(&merge_);
    if (group_ != MPI_COMM_NULL) MPI_Comm_free(&group_);
  }

  std::size_t shards() const { return manifest_.params.shards; }
  std::size_t replicas() const { return replicas_; }
  /// This rank's shard and replica group.
  std::size_t shard() const { return shard_; }
  std::size_t replica() const { return replica_; }
  /// Whether this rank is its group's root (shard 0): it calls search_batch and stop.
  bool root() const { return shard_ == 0; }
  /// The group's communicator (ranks ordered by shard).
  MPI_Comm group() const { return group_; }
  /// This rank's shard.
  const Index& local() const { return *local_; }
  std::size_t dim() const { return manifest_.dim; }
  /// Vectors in the whole index (every shard), as the manifest says.
  std::uint64_t size() const { return manifest_.count; }

  /// Workers for this rank's shard search (0 = all cores; default 1).
  void set_threads(std::size_t threads) { threads_ = threads; }
  /// Seconds this rank spent searching its shard, and queries it answered.
  double busy_seconds() const { return busy_; }
  std::uint64_t queries_answered() const { return answered_; }

  /// At the root: the k closest of the whole index to every row of
  /// `queries` (as sharded_index's search_batch); collective over the group.
  /// Throws at the root only, before sending anything: dimension_mismatch,
  /// invalid_argument (k = 0 or above size() unless the manifest's policy
  /// is at_most, NaN/Inf, a zero query under cosine); mpi_error.
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k, const search_params& params = {}) {
    if (!root()) throw invalid_argument("mpi_shards::search_batch: only the group root (shard 0) sends batches");
    const std::size_t served = manifest_.policy == k_policy::at_most ? std::min<std::size_t>(k, size()) : k;
    if (manifest_.policy == k_policy::strict) check::k_in_range(k, size());
    if (k == 0) check::k_in_range(0, 0);
    validate_rows<Metric>("query", queries, dim());
    if (queries.rows() == 0 || served == 0) return result_matrix(queries.rows(), served);
    detail::batch_header h{1, queries.rows(), served};
    matrix<float> copy;
    if (!queries.contiguous()) {
      copy = matrix<float>(queries.rows(), queries.cols());
      for (std::size_t i = 0; i < queries.rows(); ++i) std::copy_n(queries.row_ptr(i), queries.cols(), copy.row_ptr(i));
      queries = copy.view();
    }
    return run(h, params, queries.data());
  }

  /// At every other rank: answers one batch of the root's; false once the
  /// root called stop(). Collective over the group.
  bool serve() {
    if (root()) throw invalid_argument("mpi_shards::serve: the group root sends batches (search_batch), it does not serve");
    detail::batch_header h;
    broadcast(&h, sizeof h);
    if (h.command == 0) return false;
    run(h, {}, nullptr);
    return true;
  }

  /// At the root: tells the group's other ranks that no batch follows.
  void stop() {
    if (!root()) throw invalid_argument("mpi_shards::stop: only the group root stops its group");
    detail::batch_header h{0, 0, 0};
    broadcast(&h, sizeof h);
  }

 private:
  mpi_shards() = default;

  void swap(mpi_shards& o) noexcept {
    std::swap(manifest_, o.manifest_);
    std::swap(local_, o.local_);
    std::swap(replicas_, o.replicas_);
    std::swap(shard_, o.shard_);
    std::swap(replica_, o.replica_);
    std::swap(group_, o.group_);
    std::swap(merge_, o.merge_);
    std::swap(threads_, o.threads_);
    std::swap(busy_, o.busy_);
    std::swap(answered_, o.answered_);
  }

  void broadcast(void* data, std::size_t bytes) {
    // MPI counts are int: large batches go in pieces.
    auto* p = static_cast<char*>(data);
    constexpr std::size_t piece = std::size_t(1) << 30;
    for (std::size_t at = 0; at < bytes; at += piece)
      detail::check(MPI_Bcast(p + at, int(std::min(piece, bytes - at)), MPI_BYTE, 0, group_), "MPI_Bcast");
  }

  // One batch, at every rank of the group. The root has sent (or sends now)
  // the header; the parameters and the queries follow; then the reduction.
  result_matrix run(detail::batch_header h, search_params params, const float* root_queries) {
    if (root()) broadcast(&h, sizeof h);
    broadcast(&params, sizeof params);
    const std::size_t nq = std::size_t(h.queries), k = std::size_t(h.k);
    matrix<float> received;
    const float* q = root_queries;
    if (!root()) {
      received = matrix<float>(nq, dim());
      q = received.data();
    }
    broadcast(const_cast<float*>(q), sizes::product(sizes::product(nq, dim(), "batch"), sizeof(float), "batch"));

    // This shard's answer, every row padded to k.
    const auto start = std::chrono::steady_clock::now();
    std::vector<neighbor> mine(sizes::product(nq, k, "batch"), detail::unfilled);
    if (local_->size() != 0) {
      const result_matrix part = local_->search_batch(matrix_view<const float>(q, nq, dim()), k, params, threads_);
      for (std::size_t i = 0; i < nq; ++i) std::copy(part[i].begin(), part[i].end(), mine.begin() + i * k);
    }
    busy_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    answered_ += nq;

    MPI_Datatype row;
    detail::check(MPI_Type_contiguous(int(k * sizeof(neighbor)), MPI_BYTE, &row), "MPI_Type_contiguous");
    MPI_Type_commit(&row);
    std::vector<neighbor> merged(root() ? mine.size() : 0);
    constexpr std::size_t piece = std::size_t(1) << 20;  // queries per reduction call: int counts
    int rc = MPI_SUCCESS;
    for (std::size_t at = 0; at < nq && rc == MPI_SUCCESS; at += piece)
      rc = MPI_Reduce(mine.data() + at * k, root() ? merged.data() + at * k : nullptr, int(std::min(piece, nq - at)),
                      row, merge_, 0, group_);
    MPI_Type_free(&row);
    detail::check(rc, "MPI_Reduce");
    if (!root()) return {};
    result_matrix out(nq, k);
    for (std::size_t i = 0; i < nq; ++i) {
      const neighbor* r = merged.data() + i * k;
      const std::size_t n = std::size_t(std::find(r, r + k, detail::unfilled) - r);
      std::copy_n(r, n, out.row_storage(i).begin());
      out.set_count(i, n);
    }
    return out;
  }

  // Every rank's failure message ("" = none), joined, at every rank.
  static std::string gather_failures(MPI_Comm world, const std::string& mine) {
    int size = 0;
    MPI_Comm_size(world, &size);
    int len = int(std::min<std::size_t>(mine.size(), 4096));
    std::vector<int> lens(std::size_t(size), 0);
    detail::check(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, world), "MPI_Allgather");
    std::vector<int> offsets(std::size_t(size), 0);
    int total = 0;
    for (int r = 0; r < size; ++r) {
      offsets[std::size_t(r)] = total;
      total += lens[std::size_t(r)];
    }
    if (total == 0) return {};
    std::string all(std::size_t(total), '\0');
    detail::check(MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, world),
                  "MPI_Allgatherv");
    std::string out;
    for (int r = 0; r < size; ++r)
      if (lens[std::size_t(r)] > 0) out += "  " + all.substr(std::size_t(offsets[std::size_t(r)]), std::size_t(lens[std::size_t(r)])) + "\n";
    return out;
  }

  typename sharded_index<Index>::manifest manifest_{};
  std::optional<Index> local_;
  std::size_t replicas_ = 0, shard_ = 0, replica_ = 0;
  MPI_Comm group_ = MPI_COMM_NULL;
  MPI_Op merge_ = MPI_OP_NULL;
  std::size_t threads_ = 1;
  double busy_ = 0;
  std::uint64_t answered_ = 0;
};

}  // namespace annulus::dist
