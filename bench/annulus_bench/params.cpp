#include "params.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace annulus::bench {

std::size_t positive(const params& p, const std::string& key, std::size_t fallback) {
  const std::size_t v = p.get_size(key, fallback);
  if (v == 0) throw usage_error("parameter " + key + " must be positive");
  return v;
}

std::size_t ivf_list_count(const params& build, std::size_t n, const std::string& name) {
  const std::size_t asked = positive(build, "nlist", 1024);
  const std::size_t most = std::max<std::size_t>(1, n / 39);
  if (asked <= most) return asked;
  std::fprintf(stderr, "%s: %zu base rows are too few for nlist=%zu (39 per list); using nlist=%zu\n",
               name.c_str(), n, asked, most);
  return most;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string piece;
  for (char c : text) {
    if (c == sep) {
      if (!piece.empty()) out.push_back(piece);
      piece.clear();
    } else {
      piece += c;
    }
  }
  if (!piece.empty()) out.push_back(piece);
  return out;
}

params params::parse(const std::string& text, const std::string& what) {
  params p;
  for (const std::string& pair : split(text, ',')) {
    const auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == pair.size())
      throw usage_error(what + ": '" + pair + "' is not key=value");
    const std::string key = pair.substr(0, eq);
    if (!p.values_.emplace(key, pair.substr(eq + 1)).second)
      throw usage_error(what + ": '" + key + "' is given twice");
  }
  return p;
}

std::string params::str() const {
  std::string out;
  for (const auto& [k, v] : values_) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

std::size_t params::get_size(const std::string& key, std::size_t fallback) const {
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  used_.insert(key);
  std::size_t v = 0;
  const std::string& s = it->second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    throw usage_error("parameter " + key + "=" + s + ": expected a whole number");
  return v;
}

double params::get_double(const std::string& key, double fallback) const {
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  used_.insert(key);
  const std::string& s = it->second;
  std::size_t end = 0;
  double v = 0;
  try {
    v = std::stod(s, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  if (end != s.size() || !std::isfinite(v))
    throw usage_error("parameter " + key + "=" + s + ": expected a number");
  return v;
}

std::string params::get_string(const std::string& key, const std::string& fallback) const {
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  used_.insert(key);
  return it->second;
}

params params::merged(const params& other) const {
  params p = *this;
  for (const auto& [k, v] : other.values_) p.values_[k] = v;
  p.used_.clear();
  return p;
}

void params::require_all_used(const std::string& what) const {
  std::string unknown;
  for (const auto& [k, v] : values_)
    if (!used_.count(k)) unknown += (unknown.empty() ? "" : ", ") + k;
  if (!unknown.empty()) throw usage_error(what + ": unknown parameter " + unknown);
}

}  // namespace annulus::bench
