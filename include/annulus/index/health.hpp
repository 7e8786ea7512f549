// health_report: what index.health() (index/base.hpp) returns, a reading of
// one index cheap enough to take while it serves.
//
//   const annulus::health_report h = idx.health();
//   std::cout << h;                                   // a dozen lines, the last one a verdict
//   if (h.figure("unreachable_live") > 0) ...         // a figure by name
//
// Every index fills the common fields; an index with more to say (hnsw,
// ivf_flat, ivf_pq, sharded, mips) adds named figures and findings through
// its add_health hook. The verdict is drawn from the findings: "healthy"
// when there are none, else each finding and what to do about it, e.g.
// "lists unbalanced: scan cost 2.3x balanced; adds since training quantise
// 1.8x worse than the training set: retrain (rebuild)".
//
// The figures each index adds (names, units, what they mean) are listed in
// its add_health; the thresholds that turn figures into findings are the
// named constants in health_limits below, each with why it sits where it does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"

namespace annulus {

/// One index-specific number of a health report.
struct health_figure {
  std::string name;  ///< identifier for figure(): "unreachable_live", "scan_cost_ratio", ...
  double value = 0;  ///< NaN when the index cannot know it (say, a statistic a file from before did not keep)
  std::string unit;  ///< a short unit or explanation: "live nodes", "x a balanced index", ...
};

/// Something a health reading found wrong, and what would fix it.
struct health_finding {
  std::string what;    ///< drawn from the numbers: "lists unbalanced: scan cost 2.3x balanced"
  std::string remedy;  ///< "rebuild", "retrain (rebuild)", ...
};

struct health_report {
  std::string index;                    ///< the index type's name, e.g. "hnsw_index"
  std::size_t live = 0;                 ///< vectors searches can return (size())
  std::size_t removed_unreclaimed = 0;  ///< removed vectors whose room is not reclaimed yet (tombstones)
  std::size_t memory_held = 0;          ///< bytes the index holds (memory_bytes())
  /// Bytes a fresh build of the live vectors would hold, estimated without
  /// building: each index says how in its add_health (by default, indexes
  /// that keep everything per slot: memory_held x live / slots ever handed out).
  std::size_t memory_needed = 0;
  std::vector<health_figure> figures;    ///< index-specific numbers, in the order the index added them
  std::vector<health_finding> findings;  ///< what is wrong, index-specific ones first (empty: healthy)
  std::string verdict;                   ///< "healthy", or the findings and their remedies in one line

  /// The value of the figure named `name`. Throws invalid_argument naming
  /// the figures there are when it is not one of them.
  double figure(std::string_view name) const {
    for (const health_figure& f : figures)
      if (f.name == name) return f.value;
    std::string known;
    for (const health_figure& f : figures) known += (known.empty() ? "" : ", ") + f.name;
    throw invalid_argument("health_report::figure: " + index + " reports no figure '" + std::string(name) +
                           "' (it has: " + (known.empty() ? "none" : known) + ")");
  }
  /// Whether a figure named `name` is there.
  bool has_figure(std::string_view name) const {
    for (const health_figure& f : figures)
      if (f.name == name) return true;
    return false;
  }

  /// For add_health hooks: appends a figure.
  void add_figure(std::string name, double value, std::string unit) {
    figures.push_back({std::move(name), value, std::move(unit)});
  }
  /// For add_health hooks: records a finding.
  void flag(std::string what, std::string remedy) { findings.push_back({std::move(what), std::move(remedy)}); }

  /// A short printable report (the common fields, a line a figure) ending in the verdict.
  std::string summary() const;
  friend std::ostream& operator<<(std::ostream& os, const health_report& r) { return os << r.summary(); }
};

/// The thresholds that turn figures into findings.
namespace health_limits {

/// Removed but unreclaimed vectors above this share of those stored: every
/// search then walks (graph) or skips (lists, leaves) a third more entries
/// than it returns from, 1 / (1 - 0.25). rp_forest and lsh purge at an eighth
/// by themselves, kd_tree rebuilds at an eighth, so this fires for hnsw,
/// whose tombstones stay until adds reuse their slots.
inline constexpr double removed_share = 0.25;
/// memory_held above this multiple of memory_needed (and by more than
/// memory_slack bytes): stores that grow by doubling hold up to 2x right
/// after growing, so only what lies beyond that is waste a rebuild returns.
inline constexpr double memory_ratio = 2.5;
/// Waste smaller than this is not worth a rebuild whatever the ratio (a
/// small index's first allocation, say hnsw's 64 slots).
inline constexpr std::size_t memory_slack = std::size_t{8} << 20;

/// hnsw: live nodes unreachable from the entry point above this share. A
/// search never returns them (unless it falls back to an exact scan), so
/// recall is capped at 1 minus this; fresh builds leave none or a few per
/// ten thousand (tests/index/health_test.cpp).
inline constexpr double unreachable_share = 0.01;

/// IVF: expected scan cost per probe above this multiple of a balanced
/// index's. k-means on clustered data lands at about 1.1-1.6; at 2 the
/// probes of a query cost twice what the same nprobe would in balanced lists.
inline constexpr double scan_cost = 2.0;
/// IVF: vectors added since training farther from their centroid (or,
/// ivf_pq, worse reconstructed) than the training set by this factor. A
/// fresh build's adds are the training distribution (ratio about 1, a little
/// above for rows outside the sample); 1.5 means the centroids no longer
/// describe where the data lives.
inline constexpr double error_ratio = 1.5;
/// IVF: the share of adds since training landing in the lists that were the
/// largest tenth at training, above this multiple of the training set's
/// share of them: new data piles into lists that were big already.
inline constexpr double crowding_ratio = 1.5;
/// IVF: drift figures turn into findings only once this many vectors were
/// added since training (fewer are noise).
inline constexpr std::size_t min_added = 100;

/// sharded: the largest shard above this multiple of the mean. Every query
/// waits for its slowest shard, so latency follows the largest: at 1.5 it
/// costs half again what balanced shards would. round_robin stays within
/// one vector; label_hash within about sqrt(n / S).
inline constexpr double shard_imbalance = 1.5;
/// sharded: at most this many shard findings are forwarded one by one (the
/// rest are counted), so the verdict stays one readable line.
inline constexpr std::size_t shard_findings = 4;

}  // namespace health_limits

namespace health_detail {

inline std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}
/// A figure's value: whole numbers whole, others to 4 significant digits, NaN as "unknown".
inline std::string value(double x) {
  if (std::isnan(x)) return "unknown";
  if (x == std::floor(x) && std::abs(x) < 1e15) return fmt("%.0f", x);
  return fmt("%.4g", x);
}
inline std::string bytes(std::size_t b) {
  if (b < (std::size_t{1} << 20)) return fmt("%.1f KiB", double(b) / 1024);
  if (b < (std::size_t{1} << 30)) return fmt("%.1f MiB", double(b) / (1 << 20));
  return fmt("%.2f GiB", double(b) / double(1 << 30));
}
inline std::string percent(double share) { return fmt("%.1f%%", 100 * share); }

/// The findings every index shares, drawn from the common fields alone
/// (removed share, memory).
inline std::vector<health_finding> common_findings(const health_report& r) {
  std::vector<health_finding> out;
  const std::size_t stored = r.live + r.removed_unreclaimed;
  if (stored > 0 && double(r.removed_unreclaimed) > health_limits::removed_share * double(stored))
    out.push_back({percent(double(r.removed_unreclaimed) / double(stored)) +
                       " of stored vectors are removed but still held",
                   "rebuild (or add: new vectors reuse removed slots)"});
  if (r.memory_held > r.memory_needed + health_limits::memory_slack &&
      double(r.memory_held) > health_limits::memory_ratio * double(r.memory_needed))
    out.push_back({"holds " + bytes(r.memory_held) + ", a rebuild would need about " + bytes(r.memory_needed),
                   "rebuild"});
  return out;
}

/// A finished report's findings without the common ones: what its index's
/// hook found (for wrappers that forward an inner index's findings).
inline std::vector<health_finding> own_findings(const health_report& r) {
  const std::vector<health_finding> common = common_findings(r);
  std::vector<health_finding> out;
  for (const health_finding& f : r.findings)
    if (std::none_of(common.begin(), common.end(),
                     [&](const health_finding& c) { return c.what == f.what && c.remedy == f.remedy; }))
      out.push_back(f);
  return out;
}

/// The common findings after the index's own, then the verdict line.
/// health() runs this once the hook returned.
inline void conclude(health_report& r) {
  for (health_finding& f : common_findings(r)) r.findings.push_back(std::move(f));
  // Consecutive findings with one remedy share it: "a; b: remedy; c: other".
  std::string v;
  for (std::size_t i = 0; i < r.findings.size(); ++i) {
    if (!v.empty()) v += "; ";
    v += r.findings[i].what;
    if (i + 1 == r.findings.size() || r.findings[i + 1].remedy != r.findings[i].remedy) v += ": " + r.findings[i].remedy;
  }
  r.verdict = v.empty() ? "healthy" : v;
}

}  // namespace health_detail

inline std::string health_report::summary() const {
  using namespace health_detail;
  const std::size_t stored = live + removed_unreclaimed;
  std::string out = "health: " + index + "\n";
  out += "  live vectors: " + std::to_string(live) + "\n";
  out += "  removed, room not reclaimed: " + std::to_string(removed_unreclaimed) +
         (stored ? " (" + percent(double(removed_unreclaimed) / double(stored)) + " of stored)" : "") + "\n";
  out += "  memory held: " + bytes(memory_held) + "; a fresh build would hold about " + bytes(memory_needed) +
         (memory_needed ? fmt(" (held is %.2fx)", double(memory_held) / double(memory_needed)) : "") + "\n";
  for (const health_figure& f : figures) out += "  " + f.name + ": " + value(f.value) + " " + f.unit + "\n";
  return out + "  verdict: " + verdict + "\n";
}

}  // namespace annulus
