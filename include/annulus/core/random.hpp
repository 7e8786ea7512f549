// Seeded random numbers. Integer and uniform draws are identical on every
// platform and standard library (the std:: distributions are not); normal()
// also depends on the C library's log/sin/cos. Same seed, same index bytes.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <vector>

namespace annulus {

inline constexpr std::uint64_t default_seed = 1234;

/// splitmix64: turns any 64-bit value into a well-mixed one. Used to seed
/// generators and to derive independent streams (one per thread or per tree).
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// xoshiro256** generator with portable uniform and normal draws.
/// Satisfies std::uniform_random_bit_generator.
class random_generator {
 public:
  using result_type = std::uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }

  explicit random_generator(std::uint64_t seed = 42, std::uint64_t stream = 0) {
    std::uint64_t x = mix64(seed) ^ mix64(stream + 0x5851f42d4c957f2dULL);
    for (auto& s : s_) s = x = mix64(x);
  }

  result_type operator()() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1), 53 bits.
  double uniform() { return double((*this)() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n); n > 0. (Lemire's multiply-shift, unbiased enough
  /// for sampling: bias below 2^-64 * n.)
  std::uint64_t below(std::uint64_t n) {
    __extension__ using wide = unsigned __int128;  // GCC and Clang; keeps -Wpedantic quiet
    return static_cast<std::uint64_t>((static_cast<wide>((*this)()) * n) >> 64);
  }
  /// The whole state, for saving a generator to resume it later
  /// (from_state): the four xoshiro words, the bits of the normal held for
  /// the next normal() call, and whether one is held (0 or 1).
  std::array<std::uint64_t, 6> state() const {
    return {s_[0], s_[1], s_[2], s_[3], std::bit_cast<std::uint64_t>(spare_), std::uint64_t{has_spare_ ? 1u : 0u}};
  }
  /// The generator in state `st`, or nullopt for a state no generator is in
  /// (the four words all zero: xoshiro would draw 0 forever; a flag other
  /// than 0 or 1, a normal that is not finite).
  static std::optional<random_generator> from_state(const std::array<std::uint64_t, 6>& st) {
    const double spare = std::bit_cast<double>(st[4]);
    if ((st[0] | st[1] | st[2] | st[3]) == 0 || st[5] > 1 || !std::isfinite(spare))
      return std::nullopt;
    random_generator g;
    for (std::size_t i = 0; i < 4; ++i) g.s_[i] = st[i];
    g.spare_ = spare;
    g.has_spare_ = st[5] == 1;
    return g;
  }

  /// Standard normal, Box-Muller (one of the pair is kept for the next call).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1;
    do u1 = uniform(); while (u1 <= 0.0);
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(6.283185307179586 * u2);
    has_spare_ = true;
    return r * std::cos(6.283185307179586 * u2);
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

/// `count` (<= n) distinct numbers below n drawn with `rng`, in increasing
/// order (training samples: a random subset read in data order).
inline std::vector<std::size_t> random_subset(std::size_t n, std::size_t count, random_generator& rng) {
  std::vector<std::size_t> rows(n);
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  for (std::size_t i = 0; i < count; ++i) std::swap(rows[i], rows[i + rng.below(n - i)]);
  rows.resize(count);
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace annulus
