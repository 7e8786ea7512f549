// The container format (core/serialize.hpp) and the files it is written
// through (core/file.hpp): round trips, every single-bit flip and every
// truncation refused with format_error, hostile sizes refused before
// anything is read, atomic saves.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "annulus/core/file.hpp"
#include "annulus/core/serialize.hpp"
#include "support/matchers.hpp"
#include "support/reseal.hpp"
#include "support/temp_dir.hpp"

using namespace annulus;
using bytes_t = std::vector<std::byte, aligned_allocator<std::byte>>;

namespace {

bytes_t small_file() {
  bytes_t out;
  serial::writer w([&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); },
                   {"test", metric_kind::cosine, 3, 5});
  const std::vector<float> v{1.f, 2.f, 3.f, 4.f, 5.f};
  w.section("values", std::span<const float>(v));
  w.section("params", serial::record().set("m", 16).set_double("scale", 0.25));
  w.begin("pieces");
  const std::vector<std::uint32_t> a{7, 8}, b{9};
  w.append(std::span<const std::uint32_t>(a));
  w.append(std::span<const std::uint32_t>(b));
  w.end();
  w.section("empty", std::span<const std::uint64_t>());
  w.finish();
  return out;
}

// Reads everything a loader would: the header, then every section verified.
void read_all(std::span<const std::byte> file) {
  serial::reader r(file, "test-file");
  for (const char* name : {"values", "params", "pieces", "empty"}) r.structure(name);
  r.fields("params").u64("m");
}

using annulus::testing::reseal;

template <class T>
void poke(bytes_t& f, std::size_t at, T v) {
  std::memcpy(f.data() + at, &v, sizeof v);
}

}  // namespace

TEST_CASE("serialize: a file reads back what was written", "[serialize]") {
  const bytes_t f = small_file();
  REQUIRE(f.size() % 64 == 32);  // sections and table on 64-byte boundaries, then the 32-byte footer
  serial::reader r(f, "test-file");
  CHECK(r.header().kind == "test");
  CHECK(r.header().metric == metric_kind::cosine);
  CHECK(r.header().dim == 3);
  CHECK(r.header().count == 5);
  const auto values = r.structure_array<float>("values", 5);
  CHECK(std::vector<float>(values.begin(), values.end()) == std::vector<float>{1, 2, 3, 4, 5});
  CHECK(reinterpret_cast<std::uintptr_t>(values.data()) % 64 == 0);
  const auto pieces = r.structure_array<std::uint32_t>("pieces");
  CHECK(std::vector<std::uint32_t>(pieces.begin(), pieces.end()) == std::vector<std::uint32_t>{7, 8, 9});
  CHECK(r.structure("empty").empty());
  const auto params = r.fields("params");
  CHECK(params.u64("m") == 16);
  CHECK(params.f64("scale") == 0.25);
  CHECK(params.u64_or("added_later", 3) == 3);
  CHECK_THROWS_MATCHES(params.u64("missing"), format_error, annulus::testing::message_has("no field 'missing'"));
  CHECK_THROWS_MATCHES(params.u64_in("m", 1, 8), format_error, annulus::testing::message_has("16, expected 1..8"));
  CHECK_THROWS_MATCHES(r.structure_array<float>("values", 6), format_error,
                       annulus::testing::message_has("section 'values': 20 bytes, expected 6 values"));
  CHECK_THROWS_MATCHES(r.structure("nothing"), format_error, annulus::testing::message_has("no section 'nothing'"));
  CHECK_NOTHROW(r.expect("test", metric_kind::cosine));
  CHECK_THROWS_MATCHES(r.expect("hnsw", metric_kind::cosine), format_error,
                       annulus::testing::message_has("holds a 'test' index, expected 'hnsw'"));
  CHECK_THROWS_MATCHES(r.expect("test", metric_kind::l2), format_error,
                       annulus::testing::message_has("over cosine, expected l2"));
}

TEST_CASE("serialize: every single-bit flip is refused", "[serialize]") {
  const bytes_t good = small_file();
  REQUIRE_NOTHROW(read_all(good));
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    bytes_t bad = good;
    bad[bit / 8] ^= std::byte(1u << (bit % 8));
    INFO("bit " << bit << " of byte " << bit / 8);
    CHECK_THROWS_AS(read_all(bad), format_error);
  }
}

TEST_CASE("serialize: every truncation and extension is refused", "[serialize]") {
  const bytes_t good = small_file();
  for (std::size_t n = 0; n < good.size(); ++n) {
    INFO("first " << n << " bytes");
    CHECK_THROWS_AS(read_all(std::span<const std::byte>(good).first(n)), format_error);
  }
  bytes_t longer = good;
  longer.push_back(std::byte{0});
  CHECK_THROWS_AS(read_all(longer), format_error);
}

TEST_CASE("serialize: foreign, newer and hostile files get messages that say so", "[serialize]") {
  const bytes_t good = small_file();
  using annulus::testing::message_has;

  bytes_t foreign(200, std::byte{'x'});
  CHECK_THROWS_MATCHES(read_all(foreign), format_error, message_has("not an annulus index file"));

  bytes_t newer = good;
  poke<std::uint32_t>(newer, 8, 2);
  reseal(newer);
  CHECK_THROWS_MATCHES(read_all(newer), format_error, message_has("format version 2"));
  CHECK_THROWS_MATCHES(read_all(newer), format_error, message_has("newer annulus"));

  // 2^40 sections declared in a file of a few hundred bytes: refused from the
  // footer alone, nothing allocated for them.
  bytes_t many = good;
  poke<std::uint64_t>(many, many.size() - 24, std::uint64_t{1} << 40);
  CHECK_THROWS_MATCHES(read_all(many), format_error, message_has("declares 1099511627776 sections"));

  // A section claiming 2^60 bytes (checksums resealed): refused against the file's size.
  bytes_t huge = good;
  std::uint64_t table;
  std::memcpy(&table, huge.data() + huge.size() - 32, 8);
  poke<std::uint64_t>(huge, table + 40, std::uint64_t{1} << 60);
  reseal(huge);
  CHECK_THROWS_MATCHES(read_all(huge), format_error, message_has("section 'values'"));

  // Type sizes of another build.
  bytes_t sizes = good;
  sizes[49] = std::byte{4};
  reseal(sizes);
  CHECK_THROWS_MATCHES(read_all(sizes), format_error, message_has("expected 4/8/4"));

  // A damaged section names itself.
  bytes_t damaged = good;
  damaged[64] ^= std::byte{1};
  CHECK_THROWS_MATCHES(read_all(damaged), format_error,
                       message_has("test-file, section 'values': checksum mismatch"));
}

TEST_CASE("serialize: a view leaves payload checksums to verify", "[serialize]") {
  bytes_t bad = small_file();
  bad[64] ^= std::byte{1};  // inside "values"
  serial::reader r(bad, "test-file", serial::open_mode::view);
  CHECK(r.viewing());
  CHECK_NOTHROW(r.payload("values"));
  CHECK_THROWS_AS(r.structure("values"), format_error);
  serial::reader r2(bad, "test-file", serial::open_mode::view);
  r2.payload("values");
  r2.structure("params");
  const auto left = r2.unverified();
  CHECK(left.size() == 3);  // values, pieces, empty
  CHECK_THROWS_MATCHES(serial::verify_sections(bad, left, "test-file"), format_error,
                       annulus::testing::message_has("section 'values'"));
}

TEST_CASE("file: atomic_file replaces the path whole or not at all", "[serialize]") {
  annulus::testing::temp_dir dir;
  const auto path = dir / "index.annulus";
  const auto contents = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const auto write = [](atomic_file& f, const std::string& s) {
    f.write(std::as_bytes(std::span<const char>(s.data(), s.size())));
  };
  {
    atomic_file f(path);
    write(f, "old");
    f.commit();
  }
  CHECK(contents(path) == "old");
  try {
    atomic_file f(path);
    write(f, std::string(3 << 20, 'n'));  // past the buffer: bytes reach the temporary file
    throw std::runtime_error("crash mid-save");
  } catch (const std::runtime_error&) {
  }
  CHECK(contents(path) == "old");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);  // no temporary left
  {
    atomic_file f(path);
    write(f, "new");
    f.commit();
  }
  CHECK(contents(path) == "new");
  CHECK_THROWS_AS(atomic_file(dir / "no-such-dir" / "x"), io_error);
  CHECK_THROWS_AS(mapped_file(dir / "missing"), io_error);
}

namespace {
// A stream buffer that cannot seek (a pipe, a socket): read_stream cannot measure it first.
struct unseekable_buffer : std::stringbuf {
  using std::stringbuf::stringbuf;
  pos_type seekoff(off_type, std::ios_base::seekdir, std::ios_base::openmode) override { return pos_type(off_type(-1)); }
};
}  // namespace

TEST_CASE("file: read_stream reads seekable and unseekable streams whole", "[serialize]") {
  std::string data(3 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = char(i * 7);
  std::istringstream seekable(data);
  seekable.ignore(5);  // from where the stream stands
  unseekable_buffer buffer(data);
  std::istream pipe(&buffer);
  for (std::istream* in : {static_cast<std::istream*>(&seekable), &pipe}) {
    const std::size_t skip = in == &seekable ? 5 : 0;
    const auto a = read_stream(*in);
    CHECK(a.size() == data.size() - skip);
    CHECK(std::memcmp(a.data(), data.data() + skip, a.size()) == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
  }
}
