// The one file format of every annulus index (format version 1).
//
//   offset 0   header, 64 bytes
//                magic "ANNULUS\0"; u32 format version; u32 header size (64);
//                char kind[16] ("flat", "hnsw", ...); u32 metric (1 l2,
//                2 inner product, 3 cosine); u32 dimension; u64 count (live
//                vectors); u8 sizes of float, label, slot (4, 8, 4); u8 1
//                (little-endian); u16 x 3 the library version that wrote it;
//                6 zero bytes
//   64         sections, each starting on a multiple of 64 bytes (so a
//              memory-mapped section of floats is aligned for SIMD loads),
//              zero bytes between them
//   T          section table, 64 bytes an entry, in file order:
//                char name[32] (NUL-padded); u64 offset; u64 length;
//                u64 XXH3-64 of the section's bytes; u64 0
//   T + 64 n   footer, 32 bytes: u64 T; u64 n; u64 XXH3-64 of the header and
//              the table; "SULUNNA\0"
//
// Every number is little-endian and of fixed width: no size_t, no padding
// that depends on the compiler or the instruction set, so a file written by
// any build loads in any other (x86-64 at any level, AArch64; big-endian
// targets are refused at compile time). The table sits at the end so a
// writer streams sections without seeking; a reader finds it from the
// footer. A single changed bit anywhere is caught: in a section by its
// checksum, in the header or table by the footer's, in the gaps by the
// zero check, in the footer by its own fields.
//
// Parameters and small scalars go in `record` sections: named 64-bit fields
// (char key[24], u64 value: 32 bytes a field), read by name, so a later
// version may add fields that an older file lacks (the reader gives a
// default) without a new format version.
//
// Compatibility promise: a build reads every format version up to its own
// (tests/data/format-v1/ holds files that must keep loading); a file of a
// newer version is refused by name. The format version changes only when a
// reader of the old version could misread a new file.
//
// reader trusts nothing: every offset, length and count is checked against
// the file's size before anything is allocated or read, and every failure
// is a format_error naming the source (path or "stream"), the section and
// what was expected.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "annulus/core/checksum.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/version.hpp"

namespace annulus::serial {

static_assert(std::endian::native == std::endian::little,
              "annulus files are little-endian and read in place: big-endian targets are not supported");

inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t header_bytes = 64;
inline constexpr std::size_t entry_bytes = 64;
inline constexpr std::size_t footer_bytes = 32;
inline constexpr std::size_t alignment = 64;
inline constexpr std::size_t kind_bytes = 16;   // 15 characters and a NUL
inline constexpr std::size_t name_bytes = 32;   // 31 characters and a NUL
inline constexpr std::size_t key_bytes = 24;    // record field names: 23 characters and a NUL
inline constexpr std::size_t field_bytes = 32;
inline constexpr std::size_t max_sections = 1024;
inline constexpr char magic[8] = {'A', 'N', 'N', 'U', 'L', 'U', 'S', '\0'};
inline constexpr char end_magic[8] = {'S', 'U', 'L', 'U', 'N', 'N', 'A', '\0'};

/// What a file says of the index it holds.
struct file_header {
  std::string kind;       ///< index kind, e.g. "hnsw" (at most 15 characters)
  metric_kind metric{};
  std::uint32_t dim = 0;
  std::uint64_t count = 0;  ///< live vectors
};

namespace detail {

inline void put(std::byte* at, const void* value, std::size_t n) { std::memcpy(at, value, n); }
template <class T>
void put_int(std::byte* at, T v) {
  static_assert(std::is_integral_v<T>);
  std::memcpy(at, &v, sizeof v);
}
template <class T>
T get_int(const std::byte* at) {
  T v;
  std::memcpy(&v, at, sizeof v);
  return v;
}
inline constexpr std::size_t round_up(std::size_t x) { return (x + alignment - 1) / alignment * alignment; }

// A NUL-padded name of at most `width - 1` printable ASCII characters.
inline bool valid_name(std::string_view s, std::size_t width) {
  if (s.empty() || s.size() >= width) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 127; });
}
inline void put_name(std::byte* at, std::string_view s, std::size_t width) {
  std::memset(at, 0, width);
  std::memcpy(at, s.data(), s.size());
}
// The name in a NUL-padded field, or nullopt if it is not one (no NUL,
// bytes after the NUL, a character outside printable ASCII).
inline std::optional<std::string> get_name(const std::byte* at, std::size_t width) {
  const char* c = reinterpret_cast<const char*>(at);
  const std::size_t n = std::find(c, c + width, '\0') - c;
  if (n == 0 || n == width) return std::nullopt;
  if (std::any_of(c + n, c + width, [](char x) { return x != '\0'; })) return std::nullopt;
  std::string s(c, n);
  if (!valid_name(s, width)) return std::nullopt;
  return s;
}

inline std::string metric_name(std::uint32_t m) {
  switch (m) {
    case std::uint32_t(metric_kind::l2): return "l2";
    case std::uint32_t(metric_kind::inner_product): return "inner_product";
    case std::uint32_t(metric_kind::cosine): return "cosine";
    default: return "unknown metric " + std::to_string(m);
  }
}

}  // namespace detail

/// A small section of named 64-bit fields: parameters and scalars.
class record {
 public:
  record& set(std::string_view key, std::uint64_t value) {
    if (!detail::valid_name(key, key_bytes))
      throw invalid_argument("serial::record: bad field name '" + std::string(key) + "'");
    std::array<std::byte, field_bytes> f{};
    detail::put_name(f.data(), key, key_bytes);
    detail::put_int<std::uint64_t>(f.data() + key_bytes, value);
    bytes_.insert(bytes_.end(), f.begin(), f.end());
    return *this;
  }
  record& set_double(std::string_view key, double value) { return set(key, std::bit_cast<std::uint64_t>(value)); }
  std::span<const std::byte> bytes() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

/// Writes one file: the header at construction, then sections, then finish()
/// writes the table and the footer. Bytes go to `sink` in order (no seeking),
/// which throws if it cannot take them (a full disk, a failed stream).
class writer {
 public:
  using sink = std::function<void(std::span<const std::byte>)>;

  writer(sink out, const file_header& h) : out_(std::move(out)) {
    if (!detail::valid_name(h.kind, kind_bytes))
      throw invalid_argument("serial::writer: bad index kind '" + h.kind + "'");
    std::array<std::byte, header_bytes> b{};
    detail::put(b.data(), magic, 8);
    detail::put_int<std::uint32_t>(b.data() + 8, format_version);
    detail::put_int<std::uint32_t>(b.data() + 12, header_bytes);
    detail::put_name(b.data() + 16, h.kind, kind_bytes);
    detail::put_int<std::uint32_t>(b.data() + 32, std::uint32_t(h.metric));
    detail::put_int<std::uint32_t>(b.data() + 36, h.dim);
    detail::put_int<std::uint64_t>(b.data() + 40, h.count);
    b[48] = std::byte{4};  // float
    b[49] = std::byte{8};  // label
    b[50] = std::byte{4};  // slot
    b[51] = std::byte{1};  // little-endian
    detail::put_int<std::uint16_t>(b.data() + 52, version_major);
    detail::put_int<std::uint16_t>(b.data() + 54, version_minor);
    detail::put_int<std::uint16_t>(b.data() + 56, version_patch);
    emit(b);
    footer_sum_.add(b);
  }

  /// A whole section of trivially copyable values.
  template <class T>
  void section(std::string_view name, std::span<const T> values) {
    begin(name);
    append(values);
    end();
  }
  void section(std::string_view name, const record& r) { section(name, r.bytes()); }

  /// A section written in pieces: begin, append..., end.
  void begin(std::string_view name) {
    if (open_) throw invalid_argument("serial::writer: section '" + std::string(name) + "' begun inside another");
    if (!detail::valid_name(name, name_bytes))
      throw invalid_argument("serial::writer: bad section name '" + std::string(name) + "'");
    for (const auto& e : entries_)
      if (e.name == name) throw invalid_argument("serial::writer: section '" + std::string(name) + "' written twice");
    if (entries_.size() == max_sections) throw invalid_argument("serial::writer: more than 1024 sections");
    pad();
    entries_.push_back({std::string(name), offset_, 0, 0});
    sum_.reset();
    open_ = true;
  }
  template <class T>
  void append(std::span<const T> values) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto bytes = std::as_bytes(values);
    emit(bytes);
    sum_.add(bytes);
    entries_.back().length += bytes.size();
  }
  void end() {
    entries_.back().checksum = sum_.value();
    open_ = false;
  }

  /// The table and the footer: the file is complete once this returns.
  void finish() {
    if (open_) throw invalid_argument("serial::writer: finish inside a section");
    pad();
    const std::uint64_t table = offset_;
    for (const auto& e : entries_) {
      std::array<std::byte, entry_bytes> b{};
      detail::put_name(b.data(), e.name, name_bytes);
      detail::put_int<std::uint64_t>(b.data() + 32, e.offset);
      detail::put_int<std::uint64_t>(b.data() + 40, e.length);
      detail::put_int<std::uint64_t>(b.data() + 48, e.checksum);
      emit(b);
      footer_sum_.add(b);
    }
    std::array<std::byte, footer_bytes> f{};
    detail::put_int<std::uint64_t>(f.data(), table);
    detail::put_int<std::uint64_t>(f.data() + 8, entries_.size());
    detail::put_int<std::uint64_t>(f.data() + 16, footer_sum_.value());
    detail::put(f.data() + 24, end_magic, 8);
    emit(f);
  }

 private:
  struct entry {
    std::string name;
    std::uint64_t offset, length, checksum;
  };
  void emit(std::span<const std::byte> b) {
    if (!b.empty()) out_(b);
    offset_ += b.size();
  }
  void pad() {
    static constexpr std::array<std::byte, alignment> zeros{};
    emit(std::span(zeros).first(detail::round_up(offset_) - offset_));
  }

  sink out_;
  std::uint64_t offset_ = 0;
  std::vector<entry> entries_;
  checksum_stream sum_, footer_sum_;
  bool open_ = false;
};

/// What the index made from a file will do with it.
enum class open_mode {
  load,  ///< copy every section into memory of its own: every checksum checked on access
  view,  ///< read bulk sections in place: structure() sections checked on access,
         ///< payload() sections left to verify()
};

/// The named 64-bit fields of a record section.
class record_view {
 public:
  record_view(std::span<const std::byte> bytes, std::string where) : where_(std::move(where)) {
    if (bytes.size() % field_bytes != 0)
      throw format_error(where_ + ": " + std::to_string(bytes.size()) + " bytes, not a whole number of " +
                         std::to_string(field_bytes) + "-byte fields");
    for (std::size_t at = 0; at < bytes.size(); at += field_bytes) {
      const auto key = detail::get_name(bytes.data() + at, key_bytes);
      if (!key) throw format_error(where_ + ": field " + std::to_string(at / field_bytes) + " has a malformed name");
      fields_.emplace_back(*key, detail::get_int<std::uint64_t>(bytes.data() + at + key_bytes));
    }
  }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  std::uint64_t u64(std::string_view key) const {
    if (const auto* f = find(key)) return f->second;
    throw format_error(where_ + ": no field '" + std::string(key) + "'");
  }
  std::uint64_t u64_or(std::string_view key, std::uint64_t otherwise) const {
    const auto* f = find(key);
    return f ? f->second : otherwise;
  }
  /// A field that must lie in [lo, hi].
  std::uint64_t u64_in(std::string_view key, std::uint64_t lo, std::uint64_t hi) const {
    const std::uint64_t v = u64(key);
    if (v < lo || v > hi)
      throw format_error(where_ + ": field '" + std::string(key) + "' is " + std::to_string(v) + ", expected " +
                         std::to_string(lo) + ".." + std::to_string(hi));
    return v;
  }
  double f64(std::string_view key) const { return std::bit_cast<double>(u64(key)); }
  /// A finite double field.
  double finite(std::string_view key) const {
    const double v = f64(key);
    if (!(v == v) || v - v != 0)
      throw format_error(where_ + ": field '" + std::string(key) + "' is not a finite number");
    return v;
  }

 private:
  const std::pair<std::string, std::uint64_t>* find(std::string_view key) const {
    for (const auto& f : fields_)
      if (f.first == key) return &f;
    return nullptr;
  }
  std::string where_;
  std::vector<std::pair<std::string, std::uint64_t>> fields_;
};

/// A section's place in its file, for verifying it later (a view's lazy sections).
struct section_entry {
  std::string name;
  std::uint64_t offset = 0, length = 0, checksum = 0;
};

/// Reads one file held whole in memory (a mapping or a buffer that the
/// caller keeps alive while the reader and what it returned are used).
/// The constructor checks the header, the table and the footer.
class reader {
 public:
  reader(std::span<const std::byte> file, std::string source, open_mode mode = open_mode::load)
      : file_(file), source_(std::move(source)), mode_(mode) {
    const std::size_t size = file.size();
    if (size < header_bytes + footer_bytes)
      fail("truncated: " + std::to_string(size) + " bytes, less than a header and a footer (" +
           std::to_string(header_bytes + footer_bytes) + ")");
    const std::byte* h = file.data();
    if (std::memcmp(h, magic, 8) != 0) fail("not an annulus index file (its first bytes are not \"ANNULUS\")");
    const auto version = detail::get_int<std::uint32_t>(h + 8);
    if (version == 0 || version > format_version)
      fail("format version " + std::to_string(version) + ", this build of annulus (" + version_string +
           ") reads versions 1 to " + std::to_string(format_version) +
           (version > format_version ? ": the file is from a newer annulus" : ""));
    if (detail::get_int<std::uint32_t>(h + 12) != header_bytes)
      fail("header size " + std::to_string(detail::get_int<std::uint32_t>(h + 12)) + ", expected 64");

    // The footer and the table, checked against the file's size before the table is read.
    const std::byte* f = h + size - footer_bytes;
    if (std::memcmp(f + 24, end_magic, 8) != 0) fail("truncated or damaged: no footer at the end of the file");
    const auto table = detail::get_int<std::uint64_t>(f);
    const auto count = detail::get_int<std::uint64_t>(f + 8);
    if (count > max_sections) fail("the footer declares " + std::to_string(count) + " sections, at most 1024 exist");
    if (table < header_bytes || table % alignment != 0 || table > size - footer_bytes ||
        (size - footer_bytes - table) != count * entry_bytes)
      fail("the footer places a table of " + std::to_string(count) + " sections at byte " + std::to_string(table) +
           " of a " + std::to_string(size) + "-byte file");
    checksum_stream sum;
    sum.add(file.first(header_bytes));
    sum.add(file.subspan(table, count * entry_bytes));
    if (sum.value() != detail::get_int<std::uint64_t>(f + 16))
      fail("checksum mismatch in the header or the section table (the file is damaged)");

    // The header's fields (covered by the checksum just checked).
    const auto kind = detail::get_name(h + 16, kind_bytes);
    if (!kind) fail("malformed index kind in the header");
    header_.kind = *kind;
    const auto metric = detail::get_int<std::uint32_t>(h + 32);
    if (metric < 1 || metric > 3) fail("unknown metric code " + std::to_string(metric));
    header_.metric = metric_kind(metric);
    header_.dim = detail::get_int<std::uint32_t>(h + 36);
    if (header_.dim == 0) fail("dimension 0");
    header_.count = detail::get_int<std::uint64_t>(h + 40);
    if (h[48] != std::byte{4} || h[49] != std::byte{8} || h[50] != std::byte{4} || h[51] != std::byte{1})
      fail("stored types of other sizes or byte order (float/label/slot bytes " + std::to_string(int(h[48])) + "/" +
           std::to_string(int(h[49])) + "/" + std::to_string(int(h[50])) + ", expected 4/8/4, little-endian)");
    if (std::any_of(h + 58, h + header_bytes, [](std::byte b) { return b != std::byte{0}; }))
      fail("nonzero reserved bytes in the header");

    // The table: names, sections in file order, 64-byte aligned, inside the
    // data area, zeros between them.
    std::uint64_t end = header_bytes;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::byte* e = h + table + i * entry_bytes;
      const auto name = detail::get_name(e, name_bytes);
      if (!name) fail("section " + std::to_string(i) + " has a malformed name");
      section_entry s{*name, detail::get_int<std::uint64_t>(e + 32), detail::get_int<std::uint64_t>(e + 40),
                      detail::get_int<std::uint64_t>(e + 48)};
      if (detail::get_int<std::uint64_t>(e + 56) != 0) fail("section '" + s.name + "': nonzero reserved field");
      if (s.offset != detail::round_up(end) || s.length > table - s.offset)
        fail("section '" + s.name + "' at bytes [" + std::to_string(s.offset) + ", +" + std::to_string(s.length) +
             ") does not follow the previous one inside the data area [64, " + std::to_string(table) + ")");
      for (const auto& other : entries_)
        if (other.name == s.name) fail("section '" + s.name + "' appears twice");
      zeros_between(end, s.offset);
      end = s.offset + s.length;
      entries_.push_back(std::move(s));
    }
    if (detail::round_up(end) != table) fail("the section table does not follow the last section");
    zeros_between(end, table);
    verified_.assign(entries_.size(), false);
  }

  const file_header& header() const { return header_; }
  const std::string& source() const { return source_; }
  /// Whether the index borrows bulk sections in place (a view) instead of copying them.
  bool viewing() const { return mode_ == open_mode::view; }

  /// Throws format_error unless the file holds a `kind` index of `metric`.
  void expect(std::string_view kind, metric_kind metric) const {
    if (header_.kind != kind) fail("holds a '" + header_.kind + "' index, expected '" + std::string(kind) + "'");
    if (header_.metric != metric)
      fail("holds an index over " + detail::metric_name(std::uint32_t(header_.metric)) + ", expected " +
           detail::metric_name(std::uint32_t(metric)));
  }

  bool has(std::string_view name) const { return find(name) != nullptr; }

  /// A section's bytes, its checksum verified: for sections whose values
  /// steer memory accesses (links, offsets, labels, trees, parameters).
  std::span<const std::byte> structure(std::string_view name) { return bytes(name, true); }
  /// A section's bytes, verified now when loading, by verify() when viewing: for
  /// plain numbers (vectors, codes), whose damage changes distances, never
  /// addresses.
  std::span<const std::byte> payload(std::string_view name) { return bytes(name, mode_ == open_mode::load); }

  /// A structure section as `count` values of T (count = nullopt: any whole number).
  template <class T>
  std::span<const T> structure_array(std::string_view name, std::optional<std::uint64_t> count = {}) {
    return as_array<T>(name, structure(name), count);
  }
  template <class T>
  std::span<const T> payload_array(std::string_view name, std::optional<std::uint64_t> count = {}) {
    return as_array<T>(name, payload(name), count);
  }
  record_view fields(std::string_view name) { return record_view(structure(name), where(name)); }

  /// The entries of the sections not verified yet (a view's payloads).
  std::vector<section_entry> unverified() const {
    std::vector<section_entry> out;
    for (std::size_t i = 0; i < entries_.size(); ++i)
      if (!verified_[i]) out.push_back(entries_[i]);
    return out;
  }

  /// a x b for a section's expected size; format_error naming it on overflow.
  std::uint64_t product(std::string_view name, std::uint64_t a, std::uint64_t b) const {
    std::uint64_t out = 0;
    if (__builtin_mul_overflow(a, b, &out))
      fail(name, std::to_string(a) + " x " + std::to_string(b) + " values overflow a 64-bit size");
    return out;
  }

  /// "SOURCE, section 'NAME'" for messages.
  std::string where(std::string_view name) const { return source_ + ", section '" + std::string(name) + "'"; }
  [[noreturn]] void fail(const std::string& what) const { throw format_error(source_ + ": " + what); }
  [[noreturn]] void fail(std::string_view name, const std::string& what) const {
    throw format_error(where(name) + ": " + what);
  }

 private:
  const section_entry* find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  std::span<const std::byte> bytes(std::string_view name, bool verify) {
    const section_entry* e = find(name);
    if (!e) fail("no section '" + std::string(name) + "'");
    const auto out = file_.subspan(e->offset, e->length);
    const std::size_t i = std::size_t(e - entries_.data());
    if (verify && !verified_[i]) {
      if (checksum(out) != e->checksum) fail(name, "checksum mismatch (the file is damaged)");
      verified_[i] = true;
    }
    return out;
  }
  template <class T>
  std::span<const T> as_array(std::string_view name, std::span<const std::byte> b, std::optional<std::uint64_t> count) {
    static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= alignment);
    if (b.size() % sizeof(T) != 0 || (count && b.size() / sizeof(T) != *count))
      fail(name, std::to_string(b.size()) + " bytes, expected " +
                     (count ? std::to_string(*count) + " values of " + std::to_string(sizeof(T)) + " bytes"
                            : "a whole number of " + std::to_string(sizeof(T)) + "-byte values"));
    if (reinterpret_cast<std::uintptr_t>(b.data()) % alignof(T) != 0) fail(name, "misaligned in memory");
    return {reinterpret_cast<const T*>(b.data()), b.size() / sizeof(T)};
  }
  void zeros_between(std::uint64_t from, std::uint64_t to) const {
    if (std::any_of(file_.data() + from, file_.data() + to, [](std::byte b) { return b != std::byte{0}; }))
      fail("nonzero bytes in the padding at byte " + std::to_string(from));
  }

  std::span<const std::byte> file_;
  std::string source_;
  open_mode mode_;
  file_header header_;
  std::vector<section_entry> entries_;
  std::vector<bool> verified_;
};

/// Checks sections a view left unverified, in `file`; throws
/// format_error naming the first damaged one.
inline void verify_sections(std::span<const std::byte> file, const std::vector<section_entry>& entries,
                            const std::string& source) {
  for (const auto& e : entries)
    if (checksum(file.subspan(e.offset, e.length)) != e.checksum)
      throw format_error(source + ", section '" + e.name + "': checksum mismatch (the file is damaged)");
}

}  // namespace annulus::serial
