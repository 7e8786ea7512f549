// Recall measured while an index serves: a sampled, rolling recall@k with a
// 95% interval, and an alert when it falls below a target.
//
//   annulus::monitored served(index, {.k = 10, .sample_rate = 0.001, .alert_below = 0.9,
//                                     .on_alert = [](const annulus::recall_estimate& e) { page(e); }});
//   auto hits = served.search(query, 10, {.ef = 64});   // index.search, then observe
//   served.add(rows, labels);  served.remove(label);    // the index and the monitor in step
//   annulus::recall_estimate e = served.estimate();     // e.recall, within [e.low, e.high]
//
// recall_monitor<Metric> is the measuring part and knows no index:
// observe(query, results) after a search (any thread); added / removed /
// updated to keep it in step with what is served. monitored<Index> wraps a
// served index (held by reference) and makes those calls for you; it uses
// only the index's public search / add / remove / update (and, to start,
// labels() / get()), so any object with that API can be wrapped.
//
// How it works. Each observe() decides, per thread, whether this query is
// sampled: a thread-local countdown to the next sample, drawn from the
// geometric distribution with mean 1 / sample_rate (so every query is
// sampled independently with probability sample_rate, without a random draw
// per query). An unsampled observe is a thread-local decrement and a
// comparison: no lock, no atomic, no allocation. A sampled one copies the
// query and the returned labels into a bounded lock-free queue of
// max_pending preallocated slots (full: the sample is dropped and counted;
// the query thread never waits) and wakes the monitor's worker thread. The
// worker gathers samples for up to `gather` (500 ms), then scans the
// monitor's own exact copy of the live vectors (a flat_index, its "mirror")
// once for the true top-k of all of them, never on a query's thread, and
// adds each sample's recall@k to a rolling window of the last `window`
// samples. (The scan is bound by memory bandwidth, which the searches on
// the other cores share: one pass per batch instead of one per sample is
// what keeps the monitor's cost off their QPS.)
//
// Recall here is plain recall@k, as recall_at_k(results, exact, k) in
// eval/recall.hpp: |first k returned ∩ true top-k| / k, the truth over the
// live vectors at scan time, ties at the k-th distance broken by smaller
// label as in every annulus index. An index that returns an equally close
// vector of a larger label has it counted as a miss: with many exact
// duplicates in the data, read the estimate as a lower bound. A search
// asked for k' < k results is measured at k' (observe's `asked_k`). Fewer
// results than asked count the missing ones as misses. Filtered searches
// cannot be measured (the truth would need the filter): monitored forwards
// them unobserved.
//
// The truth is computed later than the query ran (up to `gather` later,
// more when the worker is busy), so churn in between biases the estimate:
// - a returned label removed in between would count as a miss. Every
//   removed() bumps a counter that each sample notes; a sample that returned
//   a label the mirror no longer holds, with a removal since it was taken, is
//   set aside as `stale` instead of counted. (With no removal since, a label
//   the mirror lacks is the served index's own error and counts as a miss.)
// - a vector added in between can enter the truth of a query that could not
//   have seen it, and one updated in between can enter it or leave it: a
//   false miss, not detected. Its rate is about k x (vectors changed within
//   the latency) / size(): at the default gather, 10 x (changes in half a
//   second) / size(), 0.05% for 100 changes a second to a million vectors.
//   Lower `gather` where a large share of the index changes every second.
//   (Detecting it would need the label and time of every recent change,
//   kept until no queued sample predates it.)
//
// Memory: the mirror holds every live vector exactly (4 x dim bytes, a 4-byte
// norm, a byte and under custom labels about 16 bytes of label map a vector:
// a second copy of the data, which IVF-PQ users save by serving codes), the
// queue and the worker's batch 2 x max_pending x (4 x dim + 8 x k) bytes,
// the window 12 bytes a sample. The exact copy is what makes the truth exact
// for every index kind (IVF-PQ stores approximations, cosine indexes
// normalised vectors).
//
// Threads: observe() and estimate() are safe from any number of threads at
// once, beside everything else. added / removed / updated are safe from any
// thread; they take the mirror's lock exclusively and so run one at a time
// and wait for a running scan (the worker holds the lock shared for one
// batch of scans). on_alert runs on the worker thread with no lock held: it
// may call estimate() and the mutators, but not flush() or the destructor
// (each waits for the worker, which is running the callback).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/index/flat.hpp"

namespace annulus {

/// The rolling estimate: recall@k over the last `samples` sampled queries.
struct recall_estimate {
  double recall = 0;  ///< mean per-query recall@k over the window (0 while samples = 0)
  double low = 0;     ///< 95% interval (0 and 1 while samples = 0)
  double high = 1;
  std::size_t samples = 0;  ///< sampled queries in the window (<= window)
  std::size_t checked = 0;  ///< sampled queries ever checked against the truth
  std::size_t dropped = 0;  ///< sampled queries lost: the queue was full (or the exact scan refused the query)
  std::size_t stale = 0;    ///< set aside: a returned label was removed before the scan
};

struct recall_monitor_options {
  std::size_t k = 10;            ///< recall@k, >= 1
  double sample_rate = 0.001;    ///< share of observed queries checked, in (0, 1]
  std::size_t window = 1000;     ///< sampled queries in the rolling estimate, >= 1
  double alert_below = 0;        ///< on_alert's target recall in [0, 1] (0 = no alert)
  std::size_t min_samples = 100; ///< no alert before the window holds this many (<= window when alerting)
  std::size_t max_pending = 256; ///< queue slots, >= 1: samples waiting for the worker
  std::size_t threads = 1;       ///< workers for each batch of exact scans (0 = all cores)
  /// After a sample arrives the worker waits up to this long for more (or
  /// until max_pending are queued) and checks them together: one pass over
  /// the mirror for the batch instead of one per sample. The mirror's scan
  /// is bound by memory bandwidth, which the searches share; at 1/1000 of
  /// 10,000 QPS, 500 ms makes one pass a second instead of ten. 0 = check
  /// each sample as soon as it arrives.
  std::chrono::milliseconds gather{500};
  std::uint64_t seed = default_seed;  ///< the sampling draws (one stream per observing thread)
  /// Called on the worker thread when the estimate's upper end falls below
  /// alert_below; once per fall (again only after the interval's lower end
  /// is back at or above alert_below). Exceptions it throws are discarded.
  std::function<void(const recall_estimate&)> on_alert = nullptr;
};

namespace drift_detail {

// A thread's sampling state: which monitor it counts for and how many
// observes remain until the next sample. One per thread for all monitors: a
// thread alternating between monitors redraws at each switch (tens of ns),
// which keeps sampling exact because the geometric gap is memoryless.
// Constant-initialised, trivially destructible: no TLS guard on the hot path.
struct sampler {
  std::uint64_t owner = 0;  // monitor id; 0 = none
  std::uint64_t countdown = 0;
  std::uint64_t state = 0;  // splitmix64
};
inline thread_local sampler thread_sampler;

// Monitor ids, so a thread's sampler never mistakes a new monitor at a dead one's address for it.
inline std::atomic<std::uint64_t> next_monitor_id{1};

// The 95% interval of a mean of per-query recalls.
//
// Per-query recalls are means of k hits that are correlated (a query in a
// sparse region misses several at once), so neither textbook interval fits:
// a normal interval from their standard deviation collapses to a point when
// every sampled query scores the same (often 1.0), and a Wilson interval on
// hits out of k x n treats correlated hits as independent, too narrow. We use
// Wilson's score interval on the mean with an effective sample size
// n_eff = p (1 - p) / se^2, se^2 = s^2 / n the variance of the mean from the
// per-query recalls, clamped to [n, sum of k]: n_eff = n when whole queries
// hit or miss together, sum of k when hits are independent (the least
// variance a query's recall can have), and sum of k when s = 0. The result
// stays inside [0, 1], is never a point, and widens with the spread of
// per-query recall as a normal interval would.
inline void interval(recall_estimate& e, std::size_t n, double mean, double variance, double total_k) {
  constexpr double z = 1.959963984540054;  // two-sided 95%
  e.recall = mean;
  if (n == 0) {
    e.low = 0, e.high = 1;
    return;
  }
  const double p = std::clamp(mean, 0.0, 1.0);
  const double dn = double(n);
  double n_eff = total_k;
  if (n >= 2 && variance > 0 && p > 0 && p < 1) n_eff = std::clamp(p * (1 - p) / (variance / dn), dn, total_k);
  if (n < 2) n_eff = dn;  // one sample says nothing about the spread
  const double z2 = z * z / n_eff;
  const double centre = (p + z2 / 2) / (1 + z2);
  const double half = z * std::sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff)) / (1 + z2);
  e.low = std::max(0.0, centre - half);
  e.high = std::min(1.0, centre + half);
}

// The last `capacity` per-query recalls, with running sums.
class rolling_window {
 public:
  explicit rolling_window(std::size_t capacity) : recall_(capacity), k_(capacity) {}

  void push(double recall, std::uint32_t k) {
    if (count_ == recall_.size()) {
      sum_ -= recall_[next_], sum_sq_ -= recall_[next_] * recall_[next_], sum_k_ -= k_[next_];
    } else {
      ++count_;
    }
    recall_[next_] = recall, k_[next_] = k;
    sum_ += recall, sum_sq_ += recall * recall, sum_k_ += k;
    next_ = (next_ + 1) % recall_.size();
    if (++pushes_ % recall_.size() == 0) resum();  // subtracting leaves rounding behind: start afresh now and then
  }

  std::size_t size() const { return count_; }

  void estimate(recall_estimate& e) const {
    e.samples = count_;
    const double n = double(count_);
    const double mean = count_ == 0 ? 0 : sum_ / n;
    const double variance = count_ < 2 ? 0 : std::max(0.0, (sum_sq_ - n * mean * mean) / (n - 1));
    interval(e, count_, mean, variance, double(sum_k_));
  }

 private:
  void resum() {
    sum_ = sum_sq_ = 0, sum_k_ = 0;
    for (std::size_t i = 0; i < count_; ++i) sum_ += recall_[i], sum_sq_ += recall_[i] * recall_[i], sum_k_ += k_[i];
  }

  std::vector<double> recall_;
  std::vector<std::uint32_t> k_;
  std::size_t next_ = 0, count_ = 0, pushes_ = 0;
  double sum_ = 0, sum_sq_ = 0;
  std::uint64_t sum_k_ = 0;
};

inline void check_options(const recall_monitor_options& o) {
  if (o.k == 0) throw invalid_argument("recall_monitor: k must be at least 1, got 0");
  if (o.k > std::numeric_limits<std::uint32_t>::max())
    throw invalid_argument("recall_monitor: k must be at most 4294967295, got " + std::to_string(o.k));
  if (!(o.sample_rate > 0 && o.sample_rate <= 1))
    throw invalid_argument("recall_monitor: sample_rate must be in (0, 1], got " + std::to_string(o.sample_rate));
  if (o.window == 0) throw invalid_argument("recall_monitor: window must be at least 1 sample, got 0");
  if (o.max_pending == 0) throw invalid_argument("recall_monitor: max_pending must be at least 1, got 0");
  if (o.gather.count() < 0)
    throw invalid_argument("recall_monitor: gather must be at least 0 ms, got " + std::to_string(o.gather.count()));
  if (!(o.alert_below >= 0 && o.alert_below <= 1))
    throw invalid_argument("recall_monitor: alert_below must be in [0, 1], got " + std::to_string(o.alert_below));
  if (o.alert_below > 0 && o.min_samples > o.window)
    throw invalid_argument("recall_monitor: min_samples " + std::to_string(o.min_samples) + " exceeds window " +
                           std::to_string(o.window) + ": the alert could never fire");
}

}  // namespace drift_detail

/// The measuring part: an exact mirror of the live vectors, the sample
/// queue, the worker thread and the rolling window (see the top of this
/// file). Movable, not copyable; a moved-from monitor may only be destroyed
/// or assigned to. The destructor stops the worker (samples still queued are
/// not checked) and joins it.
template <metric Metric>
class recall_monitor {
 public:
  using metric_type = Metric;

  /// A monitor with an empty mirror for vectors of `dim` floats; added()
  /// fills it. Throws invalid_argument (dim = 0, bad options: k = 0,
  /// sample_rate outside (0, 1], window = 0, max_pending = 0, gather < 0, alert_below
  /// outside [0, 1], min_samples > window while alerting), std::bad_alloc,
  /// std::system_error (no thread for the worker).
  explicit recall_monitor(std::size_t dim, recall_monitor_options options = {})
      : s_(std::make_unique<state>(dim, validated(std::move(options)))) {
    s_->start();
  }

  /// A monitor whose mirror holds `data` with `labels` (empty = row
  /// numbers): the vectors the served index was built from, the exact
  /// truth also where the index keeps approximations (IVF-PQ without kept
  /// vectors). Copies the data. Throws as above, and what flat_index's
  /// build_with_labels throws for the data and labels (NaN/Inf, a zero
  /// vector under cosine, a label count other than the row count, a label
  /// repeated).
  recall_monitor(matrix_view<const float> data, std::span<const label_t> labels,
                 recall_monitor_options options = {})
      : s_(std::make_unique<state>(data.cols(), validated(std::move(options)))) {
    if (!labels.empty() && labels.size() != data.rows())
      throw invalid_argument("recall_monitor: " + std::to_string(labels.size()) + " labels for " +
                             std::to_string(data.rows()) + " rows");
    s_->mirror.reserve(data.rows());
    s_->mirror.add(data, labels, s_->options.threads);
    s_->start();
  }

  /// A monitor whose mirror holds what `served` holds now, read through its
  /// public labels() and get() (under cosine the normalised vectors; under
  /// IVF-PQ without kept vectors the decoded approximations: give the
  /// original data to the constructor above instead). Throws as the first
  /// constructor, and what served.get throws.
  template <class Index>
    requires requires(const Index& i, label_t l) {
      { i.dim() } -> std::convertible_to<std::size_t>;
      { i.labels() } -> std::convertible_to<std::vector<label_t>>;
      { i.get(l) } -> std::convertible_to<std::vector<float>>;
    }
  explicit recall_monitor(const Index& served, recall_monitor_options options = {})
      : s_(std::make_unique<state>(served.dim(), validated(std::move(options)))) {
    const std::vector<label_t> labels = served.labels();
    const std::size_t dim = s_->dim;
    s_->mirror.reserve(labels.size());
    constexpr std::size_t chunk = 4096;  // copies in chunks: not a second whole copy at once
    std::vector<float> rows(std::min(chunk, labels.size()) * dim);
    for (std::size_t first = 0; first < labels.size(); first += chunk) {
      const std::size_t n = std::min(chunk, labels.size() - first);
      for (std::size_t i = 0; i < n; ++i) {
        const std::vector<float> v = served.get(labels[first + i]);
        check::dimension("recall_monitor: a stored vector", v.size(), dim);
        std::copy(v.begin(), v.end(), rows.begin() + std::ptrdiff_t(i * dim));
      }
      s_->mirror.add(matrix_view<const float>(rows.data(), n, dim), std::span(labels).subspan(first, n),
                     s_->options.threads);
    }
    s_->start();
  }

  recall_monitor(recall_monitor&&) noexcept = default;
  recall_monitor& operator=(recall_monitor&&) noexcept = default;

  std::size_t dim() const { return s_->dim; }
  const recall_monitor_options& options() const { return s_->options; }

  /// Records a search just made: `results` is what it returned for `query`
  /// (closest first), `asked_k` the k it was asked for (measured at
  /// min(k, asked_k)). Almost always returns at once; a sampled query is
  /// copied into the queue (allocating nothing) or, the queue full, dropped.
  /// The query's values are not checked here (the search did that); one the
  /// exact scan refuses is dropped there. Safe from any number of threads.
  /// Throws dimension_mismatch (query of another dimension) and
  /// invalid_argument (asked_k = 0), sampled or not.
  void observe(std::span<const float> query, std::span<const neighbor> results,
               std::size_t asked_k = std::numeric_limits<std::size_t>::max()) const {
    state& s = *s_;
    if (query.size() != s.dim)
      throw dimension_mismatch("recall_monitor::observe: query has " + std::to_string(query.size()) +
                               " dimensions, the monitor has " + std::to_string(s.dim));
    if (asked_k == 0) throw invalid_argument("recall_monitor::observe: k must be at least 1, got 0");
    drift_detail::sampler& t = drift_detail::thread_sampler;
    if (t.owner == s.id && --t.countdown != 0) return;  // the common case
    if (t.owner != s.id) {  // this thread's first observe here (or it observed another monitor since)
      t.owner = s.id;
      t.state = mix64(s.options.seed ^ mix64(s.streams.fetch_add(1, std::memory_order_relaxed)));
      t.countdown = s.gap(t.state);
      if (--t.countdown != 0) return;
    }
    t.countdown = s.gap(t.state);
    s.push(query, results, std::min(s.options.k, asked_k));
  }

  /// The vectors of an add to the served index, under the labels it gave
  /// them (one a row; the mirror cannot guess an index's default labels).
  /// Copies them. Throws invalid_argument (label count, a label present or
  /// repeated, NaN/Inf, a zero vector under cosine), dimension_mismatch,
  /// std::bad_alloc; then the mirror is as it was.
  void added(matrix_view<const float> rows, std::span<const label_t> labels) {
    if (labels.size() != rows.rows())
      throw invalid_argument("recall_monitor::added: " + std::to_string(labels.size()) + " labels for " +
                             std::to_string(rows.rows()) + " rows; give the labels the index gave them");
    std::unique_lock lock(s_->mirror_mutex);
    s_->mirror.add(rows, labels, s_->options.threads);
  }
  void added(std::span<const float> vector, label_t label) { added(row_view(vector), std::span(&label, 1)); }

  /// `label` was removed from the served index. Throws invalid_argument
  /// (the mirror does not hold it), std::bad_alloc; then nothing changed.
  void removed(label_t label) {
    std::unique_lock lock(s_->mirror_mutex);
    if (!s_->mirror.contains(label))
      throw invalid_argument("recall_monitor::removed: label " + std::to_string(label) + " is not in the monitor");
    s_->mirror.remove(label);
    s_->removals.fetch_add(1, std::memory_order_relaxed);
  }

  /// `label`'s vector was replaced in the served index. Throws
  /// invalid_argument (unknown label, NaN/Inf, a zero vector under cosine),
  /// dimension_mismatch; then nothing changed.
  void updated(label_t label, std::span<const float> vector) {
    std::unique_lock lock(s_->mirror_mutex);
    if (!s_->mirror.contains(label))
      throw invalid_argument("recall_monitor::updated: label " + std::to_string(label) + " is not in the monitor");
    s_->mirror.update(label, vector);
  }

  /// Whether the mirror holds `label`; the vectors it holds.
  bool contains(label_t label) const {
    std::shared_lock lock(s_->mirror_mutex);
    return s_->mirror.contains(label);
  }
  std::size_t size() const {
    std::shared_lock lock(s_->mirror_mutex);
    return s_->mirror.size();
  }

  /// The estimate as of the last batch the worker finished. Safe from any thread.
  recall_estimate estimate() const {
    recall_estimate e;
    {
      std::lock_guard lock(s_->window_mutex);
      s_->window.estimate(e);
    }
    e.checked = s_->checked.load(std::memory_order_relaxed);
    e.dropped = s_->dropped.load(std::memory_order_relaxed);
    e.stale = s_->stale.load(std::memory_order_relaxed);
    return e;
  }

  /// Waits until every sample queued before the call has been checked (or
  /// set aside), and the estimate and any alert reflect it: for tests and
  /// examples. Not from on_alert (it would wait for itself).
  void flush() const {
    state& s = *s_;
    const std::uint64_t target = s.enqueue_pos.load(std::memory_order_acquire);
    s.flushing.fetch_add(1, std::memory_order_acq_rel);  // the worker stops gathering
    {
      std::unique_lock lock(s.done_mutex);
      s.done.wait(lock, [&] { return s.handled >= target; });
    }
    s.flushing.fetch_sub(1, std::memory_order_acq_rel);
  }

  /// Bytes of heap memory held: the mirror, the queue, the worker's batch, the window.
  std::size_t memory_bytes() const {
    std::shared_lock lock(s_->mirror_mutex);
    const std::size_t slots = s_->options.max_pending;
    return s_->mirror.memory_bytes() +
           2 * slots * (s_->dim * sizeof(float) + s_->options.k * sizeof(label_t) + sizeof(cell)) +
           s_->options.window * (sizeof(double) + sizeof(std::uint32_t));
  }

 private:
  static recall_monitor_options validated(recall_monitor_options o) {
    drift_detail::check_options(o);
    return o;
  }

  // A queue slot's bookkeeping; its query and labels live in the state's arrays.
  // seq follows a bounded multi-producer queue's protocol, in units of two
  // so that a one-slot queue works too: a producer may fill slot
  // p % capacity for queue position p when seq = 2p, publishes it with
  // 2p + 1, and the worker hands it on to position p + capacity with
  // 2 (p + capacity).
  struct cell {
    std::atomic<std::uint64_t> seq{0};
    std::uint64_t removals = 0;  // the removal count when the sample was taken
    std::uint32_t k = 0;         // measured at this k
    std::uint32_t count = 0;     // labels stored (<= k)
  };

  // Everything, behind one pointer so the monitor can move while the worker runs.
  struct state {
    state(std::size_t d, recall_monitor_options o)
        : id(drift_detail::next_monitor_id.fetch_add(1, std::memory_order_relaxed)),
          dim(d != 0 ? d : throw invalid_argument("recall_monitor: dimension must be at least 1, got 0")),
          options(std::move(o)),
          log_keep(options.sample_rate < 1 ? std::log1p(-options.sample_rate) : 0),
          cells(std::make_unique<cell[]>(options.max_pending)),
          queries(options.max_pending * d),
          labels(options.max_pending * options.k),
          mirror(d),
          window(options.window),
          batch_queries(options.max_pending, d),
          batch_labels(options.max_pending * options.k),
          batch_cells(options.max_pending) {
      for (std::size_t i = 0; i < options.max_pending; ++i) cells[i].seq.store(2 * i, std::memory_order_relaxed);
      mirror.set_k_policy(k_policy::at_most);  // fewer live vectors than k: the truth is all of them
    }
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
      if (!worker.joinable()) return;
      stop.store(true, std::memory_order_release);
      signal.fetch_add(1, std::memory_order_release);
      signal.notify_one();
      worker.join();
    }

    void start() { worker = std::thread([this] { run(); }); }

    // Observes until the next sample, >= 1: geometric with mean 1 / sample_rate.
    std::uint64_t gap(std::uint64_t& rng) const {
      if (options.sample_rate >= 1) return 1;
      rng += 0x9e3779b97f4a7c15ULL;
      const double u = double(mix64(rng) >> 11) * 0x1.0p-53;  // [0, 1)
      const double g = std::floor(std::log1p(-u) / log_keep);  // log(1 - u) in (-inf, 0]
      return g >= 0x1.0p62 ? std::uint64_t(1) << 62 : std::uint64_t(g) + 1;
    }

    // A producer's enqueue: claim a slot, fill it, publish it, wake the worker.
    void push(std::span<const float> query, std::span<const neighbor> results, std::size_t k) {
      const std::size_t capacity = options.max_pending;
      std::uint64_t pos = enqueue_pos.load(std::memory_order_relaxed);
      cell* c;
      for (;;) {
        c = &cells[pos % capacity];
        const std::uint64_t seq = c->seq.load(std::memory_order_acquire);
        if (seq == 2 * pos) {
          if (enqueue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
        } else if (seq < 2 * pos) {  // the slot still holds the sample capacity places back: full
          dropped.fetch_add(1, std::memory_order_relaxed);
          return;
        } else {
          pos = enqueue_pos.load(std::memory_order_relaxed);
        }
      }
      const std::size_t slot = pos % capacity;
      std::copy(query.begin(), query.end(), queries.begin() + std::ptrdiff_t(slot * dim));
      const std::size_t n = std::min(k, results.size());
      for (std::size_t i = 0; i < n; ++i) labels[slot * options.k + i] = results[i].label;
      c->removals = removals.load(std::memory_order_relaxed);
      c->k = std::uint32_t(k);
      c->count = std::uint32_t(n);
      c->seq.store(2 * pos + 1, std::memory_order_release);
      signal.fetch_add(1, std::memory_order_release);
      signal.notify_one();
    }

    void run() {
      for (;;) {
        const std::uint32_t seen = signal.load(std::memory_order_acquire);
        if (stop.load(std::memory_order_acquire)) return;
        std::size_t n = drain(0);
        if (n == 0) {
          signal.wait(seen, std::memory_order_acquire);
          continue;
        }
        n = gather_more(n);
        std::optional<recall_estimate> alert;
        try {
          alert = check(n);
        } catch (...) {  // out of memory in the scan: these samples are lost, the monitor carries on
          dropped.fetch_add(n, std::memory_order_relaxed);
        }
        if (alert && options.on_alert) {
          try {
            options.on_alert(*alert);
          } catch (...) {  // the worker must outlive a failing callback
          }
        }
        {
          std::lock_guard lock(done_mutex);
          handled = dequeue_pos;
        }
        done.notify_all();
      }
    }

    // Waits up to options.gather for more samples while the batch holds n
    // and has room (not while a flush or the destructor waits); returns how
    // many it holds then.
    std::size_t gather_more(std::size_t n) {
      using clock = std::chrono::steady_clock;
      const auto until = clock::now() + options.gather;
      const auto poll = std::min<clock::duration>(options.gather, std::chrono::milliseconds(5));
      while (n < options.max_pending && clock::now() < until && flushing.load(std::memory_order_acquire) == 0 &&
             !stop.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(poll);
        n = drain(n);
      }
      return n;
    }

    // Moves published samples into the batch after its first n, until the
    // batch is full (max_pending); returns how many it holds.
    std::size_t drain(std::size_t n) {
      const std::size_t capacity = options.max_pending;
      while (n < capacity) {
        const std::size_t slot = dequeue_pos % capacity;
        cell& c = cells[slot];
        if (c.seq.load(std::memory_order_acquire) != 2 * dequeue_pos + 1) break;  // empty, or still being filled
        std::copy_n(queries.begin() + std::ptrdiff_t(slot * dim), dim, batch_queries.row_ptr(n));
        std::copy_n(labels.begin() + std::ptrdiff_t(slot * options.k), c.count,
                    batch_labels.begin() + std::ptrdiff_t(n * options.k));
        batch_cells[n].removals = c.removals, batch_cells[n].k = c.k, batch_cells[n].count = c.count;
        c.seq.store(2 * (dequeue_pos + capacity), std::memory_order_release);
        ++dequeue_pos;
        ++n;
      }
      return n;
    }

    // Checks the first n samples of the batch; returns the estimate to alert with, if any.
    std::optional<recall_estimate> check(std::size_t n) {
      // A query no search would accept fails a whole batch scan: set it aside first.
      std::size_t m = 0;
      for (std::size_t i = 0; i < n; ++i) {
        try {
          validate_rows<Metric>("query", batch_queries.view().rows_slice(i, 1), dim);
        } catch (const error&) {
          dropped.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (m != i) {
          std::copy_n(batch_queries.row_ptr(i), dim, batch_queries.row_ptr(m));
          std::copy_n(batch_labels.begin() + std::ptrdiff_t(i * options.k), batch_cells[i].count,
                      batch_labels.begin() + std::ptrdiff_t(m * options.k));
          batch_cells[m].removals = batch_cells[i].removals;
          batch_cells[m].k = batch_cells[i].k;
          batch_cells[m].count = batch_cells[i].count;
        }
        ++m;
      }
      if (m == 0) return std::nullopt;

      result_matrix truth;
      std::vector<char> is_stale(m, 0);
      {
        std::shared_lock lock(mirror_mutex);
        if (mirror.size() == 0) return std::nullopt;  // no truth to measure against
        // The one-query kernel, not GEMM: GEMM picks candidates through
        // |q|^2 + |v|^2 - 2 <q, v>, whose cancellation can lose a true
        // neighbour far from the origin; the truth must be the one-query
        // scan's. The batch still reads the mirror once.
        truth = mirror.search_batch(batch_queries.view().rows_slice(0, m), options.k,
                                    {.one_query_kernel = true}, options.threads);
        const std::uint64_t now = removals.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < m; ++i) {
          if (batch_cells[i].removals == now) continue;
          const label_t* got = batch_labels.data() + i * options.k;
          for (std::size_t j = 0; j < batch_cells[i].count && !is_stale[i]; ++j)
            is_stale[i] = !mirror.contains(got[j]);
        }
      }

      std::lock_guard lock(window_mutex);
      for (std::size_t i = 0; i < m; ++i) {
        if (is_stale[i]) {
          stale.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const std::size_t k = batch_cells[i].k;
        const std::span<const neighbor> want = truth[i].first(std::min<std::size_t>(k, truth[i].size()));
        const std::span<const label_t> got(batch_labels.data() + i * options.k, batch_cells[i].count);
        std::size_t hits = 0;
        for (std::size_t j = 0; j < got.size(); ++j) {
          if (std::find(got.begin(), got.begin() + std::ptrdiff_t(j), got[j]) != got.begin() + std::ptrdiff_t(j))
            continue;  // a label returned twice counts once
          hits += std::any_of(want.begin(), want.end(), [&](const neighbor& t) { return t.label == got[j]; });
        }
        window.push(double(hits) / double(want.size()), std::uint32_t(want.size()));
        checked.fetch_add(1, std::memory_order_relaxed);
      }
      if (options.alert_below <= 0 || window.size() < options.min_samples) return std::nullopt;
      recall_estimate e;
      window.estimate(e);
      // Fire when even the interval's upper end is below the target (a fall
      // the samples make near certain, not noise), once; re-arm only when
      // the lower end is back at the target (a recovery as certain), so an
      // estimate hovering near the line does not fire again and again: the
      // drift bench, re-arming on the estimate alone, fired four times
      // over one fall with a window of 100.
      if (armed && e.high < options.alert_below) {
        armed = false;
        e.checked = checked.load(std::memory_order_relaxed);
        e.dropped = dropped.load(std::memory_order_relaxed);
        e.stale = stale.load(std::memory_order_relaxed);
        return e;
      }
      if (!armed && e.low >= options.alert_below) armed = true;
      return std::nullopt;
    }

    // Read by every observe.
    const std::uint64_t id;
    const std::size_t dim;
    const recall_monitor_options options;
    const double log_keep;  // log(1 - sample_rate)

    // Written by sampled observes only: kept off the line above.
    alignas(64) std::atomic<std::uint64_t> enqueue_pos{0};
    std::atomic<std::uint64_t> streams{0};  // sampling streams handed to threads
    std::atomic<std::uint64_t> dropped{0};
    std::atomic<std::uint32_t> signal{0};  // bumped at each publish; the worker sleeps on it
    std::unique_ptr<cell[]> cells;
    std::vector<float> queries;    // max_pending x dim
    std::vector<label_t> labels;   // max_pending x k

    // The truth.
    alignas(64) mutable std::shared_mutex mirror_mutex;
    flat_index<Metric> mirror;
    std::atomic<std::uint64_t> removals{0};

    // The estimate.
    std::mutex window_mutex;
    drift_detail::rolling_window window;
    bool armed = true;  // the worker's only
    std::atomic<std::uint64_t> checked{0}, stale{0};

    // flush()'s wait.
    std::mutex done_mutex;
    std::condition_variable done;
    std::uint64_t handled = 0;  // queue positions the worker has finished with
    std::atomic<int> flushing{0};  // flush() calls waiting: check what is queued now

    // The worker's own.
    std::uint64_t dequeue_pos = 0;
    matrix<float> batch_queries;
    std::vector<label_t> batch_labels;
    std::vector<cell> batch_cells;  // only removals, k and count are used
    std::atomic<bool> stop{false};
    std::thread worker;
  };

  std::unique_ptr<state> s_;
};

/// A served index and a recall_monitor over its vectors: search, then
/// observe; add, remove and update go to both. Holds `served` by reference
/// (it must outlive the wrapper) and uses only its public search / add /
/// remove / update (and labels() / get() / dim() in the first constructor),
/// so it wraps any object with that API. Thread safety is the index's:
/// searches from many threads where the index allows them; add, remove and
/// update as the index allows (the monitor's side is safe from any thread).
template <class Index>
class monitored {
 public:
  using index_type = Index;
  using metric_type = typename Index::metric_type;
  using search_params = typename Index::search_params;

  /// Monitors `served` from what it holds now (recall_monitor's constructor
  /// from an index: read `get`'s caveat for IVF-PQ). Throws what that throws.
  explicit monitored(Index& served, recall_monitor_options options = {})
      : index_(&served), monitor_(std::as_const(served), std::move(options)) {}

  /// Monitors `served`, which holds `data` under `labels` (empty = row
  /// numbers): the exact vectors, for indexes that keep approximations.
  /// Throws dimension_mismatch (data of another width than served.dim()),
  /// and what recall_monitor's constructor throws.
  monitored(Index& served, matrix_view<const float> data, std::span<const label_t> labels,
            recall_monitor_options options = {})
      : index_(&served), monitor_(checked_data(served, data), labels, std::move(options)) {}

  Index& index() { return *index_; }
  const Index& index() const { return *index_; }
  recall_monitor<metric_type>& monitor() { return monitor_; }
  const recall_monitor<metric_type>& monitor() const { return monitor_; }
  recall_estimate estimate() const { return monitor_.estimate(); }
  void flush() const { monitor_.flush(); }

  /// index.search(query, k, params), observed. Throws what the search throws.
  std::vector<neighbor> search(std::span<const float> query, std::size_t k, const search_params& params = {}) const {
    std::vector<neighbor> hits = index_->search(query, k, params);
    monitor_.observe(query, hits, k);
    return hits;
  }
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out) const {
    const std::size_t n = index_->search(query, k, params, out);
    monitor_.observe(query, out.first(n), k);
    return n;
  }
  /// Filtered searches, forwarded and not observed: their truth depends on the filter.
  template <label_predicate Keep>
  std::vector<neighbor> search(std::span<const float> query, std::size_t k, const search_params& params,
                               const Keep& keep) const {
    return index_->search(query, k, params, keep);
  }
  template <label_predicate Keep>
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return index_->search(query, k, params, out, keep);
  }
  /// index.search_batch, every row observed (sampled as single searches are).
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k, const search_params& params = {},
                             std::size_t threads = 0) const {
    result_matrix out = index_->search_batch(queries, k, params, threads);
    for (std::size_t i = 0; i < out.size(); ++i) monitor_.observe(queries.row(i), out[i], k);
    return out;
  }

  /// Adds to the index, then to the monitor. Labels are required (one a
  /// row): the monitor cannot learn the default labels an index picks.
  /// Throws invalid_argument (label count) before anything, then what the
  /// index's add throws (nothing changed); should the monitor's add then
  /// fail (out of memory), the rows are removed from the index again and the
  /// exception rethrown.
  void add(matrix_view<const float> rows, std::span<const label_t> labels, std::size_t threads = 0) {
    if (labels.size() != rows.rows())
      throw invalid_argument("monitored::add: " + std::to_string(labels.size()) + " labels for " +
                             std::to_string(rows.rows()) + " rows; the monitor needs the labels");
    if constexpr (requires { index_->add(rows, labels, threads); })
      index_->add(rows, labels, threads);
    else
      index_->add(rows, labels);
    try {
      monitor_.added(rows, labels);
    } catch (...) {
      for (const label_t l : labels) try {
          index_->remove(l);
        } catch (...) {  // best effort: the original exception is the one to see
        }
      throw;
    }
  }
  void add(std::span<const float> vector, label_t label) { add(row_view(vector), std::span(&label, 1), 1); }

  /// Removes from the index, then from the monitor. Throws invalid_argument
  /// (a label the monitor does not hold, before anything changes), what the
  /// index's remove throws (nothing changed), std::bad_alloc from the
  /// monitor after the index changed (the monitor then still holds the label).
  void remove(label_t label) {
    if (!monitor_.contains(label))
      throw invalid_argument("monitored::remove: label " + std::to_string(label) + " is not in the monitor");
    index_->remove(label);
    monitor_.removed(label);
  }

  /// Updates the index, then the monitor. Throws what the index's update
  /// throws (nothing changed); the monitor checks the same things, so it
  /// then fails only on a label it does not hold (a change made behind the
  /// wrapper's back), which leaves the index updated.
  void update(label_t label, std::span<const float> vector) {
    index_->update(label, vector);
    monitor_.updated(label, vector);
  }

 private:
  static matrix_view<const float> checked_data(const Index& served, matrix_view<const float> data) {
    if constexpr (requires { served.dim(); }) {
      if (data.rows() != 0 && data.cols() != served.dim())
        throw dimension_mismatch("monitored: data has " + std::to_string(data.cols()) +
                                 " dimensions, the index has " + std::to_string(served.dim()));
    }
    return data;
  }

  Index* index_;
  recall_monitor<metric_type> monitor_;
};

}  // namespace annulus
