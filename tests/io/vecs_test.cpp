#include "annulus/io/vecs.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <typeinfo>
#include <vector>

#include "support/temp_dir.hpp"
#include "support/sanitizer.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

struct temp_dir : annulus::testing::temp_dir {
  temp_dir() : annulus::testing::temp_dir("annulus_vecs_test") {}
};

template <class T>
annulus::matrix<T> random_matrix(std::size_t rows, std::size_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  annulus::matrix<T> m(rows, cols);
  for (std::size_t i = 0; i < m.size(); ++i) {
    if constexpr (std::is_same_v<T, float>)
      m.data()[i] = std::normal_distribution<float>(0.f, 1.f)(rng);
    else if constexpr (std::is_same_v<T, std::int32_t>)
      m.data()[i] = static_cast<std::int32_t>(rng());
    else
      m.data()[i] = static_cast<std::uint8_t>(rng());
  }
  return m;
}

// Bitwise equality of a matrix with rows [first, first + count) of another.
template <class T>
bool equal_rows(const annulus::matrix<T>& got, const annulus::matrix<T>& all, std::size_t first,
                std::size_t count) {
  if (got.rows() != count || got.cols() != all.cols()) return false;
  return count == 0 ||
         std::memcmp(got.data(), all.row_ptr(first), count * all.cols() * sizeof(T)) == 0;
}

template <class T>
void write_vecs(const fs::path& p, const annulus::matrix<T>& m) {
  if constexpr (std::is_same_v<T, float>)
    annulus::write_fvecs(p, m);
  else if constexpr (std::is_same_v<T, std::int32_t>)
    annulus::write_ivecs(p, m);
  else
    annulus::write_bvecs(p, m);
}
template <class T>
annulus::matrix<T> read_vecs(const fs::path& p) {
  if constexpr (std::is_same_v<T, float>)
    return annulus::read_fvecs(p);
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return annulus::read_ivecs(p);
  else
    return annulus::read_bvecs(p);
}
template <class T>
annulus::matrix<T> read_vecs(const fs::path& p, std::size_t first, std::size_t count) {
  if constexpr (std::is_same_v<T, float>)
    return annulus::read_fvecs(p, first, count);
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return annulus::read_ivecs(p, first, count);
  else
    return annulus::read_bvecs(p, first, count);
}

std::vector<char> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs f, expects an exception of exactly type E, returns its message.
template <class E, class F>
std::string thrown_by(F&& f) {
  try {
    f();
  } catch (const annulus::error& e) {
    INFO("message: " << e.what());
    CHECK(typeid(e) == typeid(E));
    return e.what();
  }
  FAIL("no exception thrown");
  return {};
}

}  // namespace

TEMPLATE_TEST_CASE("vecs files round-trip and read row ranges", "[io][vecs]", float, std::int32_t,
                   std::uint8_t) {
  temp_dir dir;
  for (std::size_t dim : {1u, 7u, 785u}) {
    DYNAMIC_SECTION("dim " << dim) {
      const std::size_t rows = 23;
      const auto m = random_matrix<TestType>(rows, dim, 42 + static_cast<unsigned>(dim));
      const fs::path p = dir / ("x" + std::to_string(dim) + ".vecs");
      write_vecs(p, m);
      CHECK_FALSE(fs::exists(p.string() + ".part"));
      CHECK(fs::file_size(p) == rows * (4 + dim * sizeof(TestType)));
      const auto info = annulus::inspect_vecs(p, sizeof(TestType));
      CHECK(info.rows == rows);
      CHECK(info.dim == dim);

      CHECK(equal_rows(read_vecs<TestType>(p), m, 0, rows));
      CHECK(equal_rows(read_vecs<TestType>(p, 0, 5), m, 0, 5));                // first rows
      CHECK(equal_rows(read_vecs<TestType>(p, 9, 6), m, 9, 6));                // middle
      CHECK(equal_rows(read_vecs<TestType>(p, rows - 1, 1), m, rows - 1, 1));  // last row
      CHECK(equal_rows(read_vecs<TestType>(p, 0, rows), m, 0, rows));          // whole
      CHECK(equal_rows(read_vecs<TestType>(p, rows, 0), m, rows, 0));          // empty at end
    }
  }
}

TEST_CASE("vecs reads span several I/O chunks and write strided views", "[io][vecs]") {
  temp_dir dir;
  // 3000 rows of 3144 bytes cross the 8 MiB read buffer once (at row 2668).
  const auto m = random_matrix<float>(3000, 785, 7);
  const fs::path p = dir / "big.fvecs";
  annulus::write_fvecs(p, m);
  CHECK(equal_rows(annulus::read_fvecs(p), m, 0, 3000));
  CHECK(equal_rows(annulus::read_fvecs(p, 2000, 1000), m, 2000, 1000));

  // A row in the second chunk with a wrong dimension is found, with its offset.
  auto bytes = read_bytes(p);
  const std::int32_t bad = 784;
  std::memcpy(bytes.data() + 2900 * 3144, &bad, 4);
  write_bytes(p, bytes);
  const auto msg = thrown_by<annulus::format_error>([&] { annulus::read_fvecs(p); });
  CHECK_THAT(msg, Contains("big.fvecs") && Contains("row 2900") &&
                      Contains(std::to_string(2900 * 3144)) && Contains("784"));
  CHECK(annulus::read_fvecs(p, 0, 2900).rows() == 2900);  // rows before it are fine

  // Every other row, every other column: stride 2 * 7 over a 10 x 14 block.
  const auto src = random_matrix<std::uint8_t>(10, 14, 3);
  const annulus::matrix_view<const std::uint8_t> strided(src.data(), 5, 7, 28);
  annulus::write_bvecs(dir / "strided.bvecs", strided);
  const auto back = annulus::read_bvecs(dir / "strided.bvecs");
  REQUIRE(back.rows() == 5);
  for (std::size_t i = 0; i < 5; ++i)
    CHECK(std::memcmp(back.row_ptr(i), src.row_ptr(2 * i), 7) == 0);
}

TEST_CASE("vecs readers refuse bad files with the file and the byte offset", "[io][vecs]") {
  temp_dir dir;
  const auto m = random_matrix<float>(5, 7, 1);  // rows of 4 + 28 = 32 bytes, 160 in all
  const fs::path good = dir / "good.fvecs";
  annulus::write_fvecs(good, m);
  const auto bytes = read_bytes(good);

  SECTION("truncated") {
    const fs::path p = dir / "cut.fvecs";
    write_bytes(p, {bytes.begin(), bytes.end() - 3});
    const auto msg = thrown_by<annulus::format_error>([&] { annulus::read_fvecs(p); });
    CHECK_THAT(msg, Contains("cut.fvecs") && Contains("truncated") && Contains("offset 128") &&
                        Contains("157"));
  }
  SECTION("shorter than one dimension field") {
    const fs::path p = dir / "tiny.fvecs";
    write_bytes(p, {bytes.begin(), bytes.begin() + 2});
    const auto msg = thrown_by<annulus::format_error>([&] { annulus::read_fvecs(p); });
    CHECK_THAT(msg, Contains("tiny.fvecs") && Contains("truncated") && Contains("offset 0"));
  }
  SECTION("inconsistent dimension in row 3") {
    const fs::path p = dir / "mixed.fvecs";
    auto b = bytes;
    const std::int32_t eight = 8;
    std::memcpy(b.data() + 3 * 32, &eight, 4);
    write_bytes(p, b);
    const auto msg = thrown_by<annulus::format_error>([&] { annulus::read_fvecs(p); });
    CHECK_THAT(msg, Contains("mixed.fvecs") && Contains("row 3") && Contains("offset 96") &&
                        Contains("dimension 8") && Contains("row 0 has 7"));
    // A range that covers the bad row is checked too; one that does not reads fine.
    thrown_by<annulus::format_error>([&] { annulus::read_fvecs(p, 2, 2); });
    CHECK(equal_rows(annulus::read_fvecs(p, 0, 3), m, 0, 3));
  }
  SECTION("foreign files") {
    const fs::path text = dir / "hello.txt";
    write_bytes(text,
                {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n', 'b', 'y', 'e', '\n'});
    auto msg = thrown_by<annulus::format_error>([&] { annulus::read_fvecs(text); });
    CHECK_THAT(msg, Contains("hello.txt") && Contains("offset 0") && Contains("not a vecs file"));

    const fs::path png = dir / "image.png";
    write_bytes(png,
                {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'});
    msg = thrown_by<annulus::format_error>([&] { annulus::read_bvecs(png); });
    CHECK_THAT(msg, Contains("image.png") && Contains("offset 0") && Contains("not a vecs file"));

    const fs::path negative = dir / "negative.ivecs";
    write_bytes(negative, {'\xff', '\xff', '\xff', '\xff', 0, 0, 0, 0});
    msg = thrown_by<annulus::format_error>([&] { annulus::read_ivecs(negative); });
    CHECK_THAT(msg, Contains("negative.ivecs") && Contains("offset 0") && Contains("is -1"));
  }
  SECTION("empty file") {
    const fs::path p = dir / "empty.fvecs";
    write_bytes(p, {});
    const auto msg = thrown_by<annulus::format_error>([&] { annulus::read_fvecs(p); });
    CHECK_THAT(msg, Contains("empty.fvecs") && Contains("no vectors") && Contains("offset 0"));
  }
  SECTION("missing file and directory: annulus::error, not format_error") {
    auto msg = thrown_by<annulus::error>([&] { annulus::read_fvecs(dir / "missing.fvecs"); });
    CHECK_THAT(msg, Contains("missing.fvecs") && Contains("no such file"));
    msg = thrown_by<annulus::error>([&] { annulus::read_fvecs(dir.path); });
    CHECK_THAT(msg, Contains(dir.path.filename().string()) && Contains("directory"));
  }
  SECTION("row range past the end") {
    auto msg = thrown_by<annulus::invalid_argument>([&] { annulus::read_fvecs(good, 3, 3); });
    CHECK_THAT(msg, Contains("good.fvecs") && Contains("[3, 3 + 3)") && Contains("has 5 rows"));
    msg = thrown_by<annulus::invalid_argument>([&] { annulus::read_fvecs(good, 6, 0); });
    CHECK_THAT(msg, Contains("good.fvecs") && Contains("[6, 6 + 0)") && Contains("has 5 rows"));
    thrown_by<annulus::invalid_argument>([&] { annulus::read_fvecs(good, 1, SIZE_MAX); });
  }
  SECTION("read as the wrong type") {
    // 160 bytes are not a whole number of 11-byte bvecs rows of dimension 7.
    const auto msg = thrown_by<annulus::format_error>([&] { annulus::read_bvecs(good); });
    CHECK_THAT(msg, Contains("good.fvecs") && Contains("truncated") && Contains("offset 154"));
  }
}

TEST_CASE("vecs writers fail cleanly", "[io][vecs]") {
  temp_dir dir;
  const auto m = random_matrix<std::int32_t>(4, 3, 5);

  SECTION("into a missing directory") {
    const fs::path p = dir / "no_such_dir" / "out.ivecs";
    const auto msg = thrown_by<annulus::error>([&] { annulus::write_ivecs(p, m); });
    CHECK_THAT(msg, Contains("out.ivecs"));
    CHECK_FALSE(fs::exists(p));
  }
  SECTION("over a directory: the rename fails, no .part is left behind") {
    const fs::path p = dir / "taken";
    fs::create_directory(p);
    fs::create_directory(p / "child");  // a non-empty directory cannot be renamed over
    const auto msg = thrown_by<annulus::error>([&] { annulus::write_ivecs(p, m); });
    CHECK_THAT(msg, Contains("taken"));
    CHECK_FALSE(fs::exists(p.string() + ".part"));
    CHECK(fs::is_directory(p));
  }
  SECTION("an existing file is replaced whole") {
    const fs::path p = dir / "out.ivecs";
    annulus::write_ivecs(p, random_matrix<std::int32_t>(100, 9, 6));
    annulus::write_ivecs(p, m);
    CHECK(equal_rows(annulus::read_ivecs(p), m, 0, 4));
  }
  SECTION("shapes a vecs file cannot hold") {
    const annulus::matrix<std::int32_t> none(0, 3);
    auto msg =
        thrown_by<annulus::invalid_argument>([&] { annulus::write_ivecs(dir / "a.ivecs", none); });
    CHECK_THAT(msg, Contains("a.ivecs") && Contains("0 x 3"));
    const std::int32_t dummy[1] = {0};
    const annulus::matrix_view<const std::int32_t> flat(dummy, 2, 0);
    msg =
        thrown_by<annulus::invalid_argument>([&] { annulus::write_ivecs(dir / "b.ivecs", flat); });
    CHECK_THAT(msg, Contains("b.ivecs") && Contains("2 x 0"));
    CHECK(fs::is_empty(dir.path));
  }
}

// Issue 15: read_fvecs on a FIFO blocked forever (nothing to check its size
// against); now anything but a regular file is refused at once.
TEST_CASE("vecs readers refuse what is not a regular file", "[io][vecs]") {
  temp_dir dir;
  const fs::path fifo = dir / "pipe.fvecs";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(thrown_by<annulus::error>([&] { annulus::read_fvecs(fifo); }),
             Contains("pipe.fvecs") && Contains("not a regular file"));
  CHECK_THAT(thrown_by<annulus::error>([&] { annulus::inspect_vecs("/dev/zero", 4); }),
             Contains("not a regular file"));
}

// Issue 15: a 3 GB sparse fvecs file (a valid first row, then a hole) cost
// 2.36 GB before the row-1 format_error. The first chunk is checked before
// the output exists: in a child process limited to 512 MB of address space
// the read fails with format_error, not bad_alloc. (Not under the
// sanitizers, whose shadow memory needs terabytes of address space.)
TEST_CASE("vecs readers check rows before allocating for them", "[io][vecs]") {
#if ANNULUS_TEST_SANITIZED
  SUCCEED("skipped under a sanitizer: an address-space limit breaks its shadow memory");
#else
  temp_dir dir;
  const fs::path sparse = dir / "sparse.fvecs";
  {
    annulus::matrix<float> one(1, 255);
    annulus::write_fvecs(sparse, one);  // rows of 1 KB
  }
  fs::resize_file(sparse, std::uintmax_t{3} << 30);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const rlimit limit{512u << 20, 512u << 20};
    ::setrlimit(RLIMIT_AS, &limit);
    int code = 3;
    try {
      annulus::read_fvecs(sparse);
      code = 2;
    } catch (const annulus::format_error&) {
      code = 0;
    } catch (const std::bad_alloc&) {
      code = 1;
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  INFO("child exit code (0 format_error, 1 bad_alloc, 2 no error, 3 other)");
  CHECK(WEXITSTATUS(status) == 0);
#endif
}
