// Index parameters as written on the command line: "m=32,ef_construction=400".
// Every key an index reads is marked used; keys nobody read are an error, so a
// typo never silently runs the defaults.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace annulus::bench {

/// A bench error: one clear line for the user, then a non-zero exit.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A path as messages quote it: 'path'. Built by appending: GCC 12 warns
/// falsely (-Wrestrict) on "'" + std::string&&. Inline: the fuzzers link
/// dataset.cpp and hdf5_file.cpp without params.cpp.
inline std::string in_quotes(const std::filesystem::path& p) {
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

class params {
 public:
  params() = default;
  /// Parses "k=v,k=v" (empty = none). Throws usage_error on a malformed pair
  /// or a repeated key; `what` names the source in messages.
  static params parse(const std::string& text, const std::string& what);

  bool empty() const { return values_.empty(); }
  /// Whether `key` was given (does not count as reading it).
  bool contains(const std::string& key) const { return values_.count(key) != 0; }
  /// "k=v,k=v" in key order (how results.csv shows them).
  std::string str() const;

  /// The value of `key` as a positive integer, or `fallback` when absent.
  std::size_t get_size(const std::string& key, std::size_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  /// Overlays `other` on this (other wins), for defaults + user values.
  params merged(const params& other) const;
  void set(const std::string& key, const std::string& value) { values_[key] = value; }

  /// Throws usage_error naming keys that no get_* asked for.
  void require_all_used(const std::string& what) const;

 private:
  std::map<std::string, std::string> values_;
  mutable std::set<std::string> used_;
};

/// p.get_size(key, fallback), which must be positive (else usage_error).
std::size_t positive(const params& p, const std::string& key, std::size_t fallback);

/// The "nlist" build parameter (default 1024) of an IVF index over n rows,
/// lowered so each list gets the 39 training points FAISS's k-means asks for
/// (the quick dataset is too small for 1024 lists), with a note on stderr.
std::size_t ivf_list_count(const params& build, std::size_t n, const std::string& name);

/// The IVF training size the runner sets unless train_size is given:
/// ivf_train_rows_per_list rows a list, at least ivf_min_train_rows, at most
/// the rows (runner.cpp; summary.md says so).
inline constexpr std::size_t ivf_train_rows_per_list = 64, ivf_min_train_rows = 65536;

/// Splits "a,b,c" on commas (empty pieces dropped).
std::vector<std::string> split(const std::string& text, char sep);

}  // namespace annulus::bench
