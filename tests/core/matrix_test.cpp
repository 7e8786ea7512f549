#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"

#include "annulus/core/eigen.hpp"
#include "annulus/core/matrix.hpp"

using namespace annulus;

TEST_CASE("views over raw pointers, spans and vectors share the data", "[matrix]") {
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  const auto m = view_of(v, 3);
  REQUIRE(m.rows() == 2);
  REQUIRE(m.cols() == 3);
  CHECK(m.data() == v.data());
  CHECK(m(1, 2) == 6);
  const matrix_view<const float> strided(v.data(), 3, 1, 2);  // every other value
  CHECK(strided(2, 0) == 5);
  CHECK(m.rows_slice(1, 1)(0, 0) == 4);
  CHECK_THROWS_AS(view_of(v, 4), dimension_mismatch);
  CHECK_THROWS_AS(view_of(v, 0), invalid_argument);
  CHECK_THROWS_AS(matrix_view<const float>(v.data(), 2, 3, 2), invalid_argument);
  CHECK_THROWS_AS(m.rows_slice(1, 2), invalid_argument);
  CHECK(row_view(std::span<float>(v)).cols() == 6);
}

TEST_CASE("owning matrix is aligned, zeroed and deep-copied", "[matrix]") {
  matrix<float> a(5, 7);
  CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
  CHECK(a(4, 6) == 0.f);
  a(2, 3) = 9;
  matrix<float> b = a;
  b(2, 3) = 1;
  CHECK(a(2, 3) == 9);
  const matrix<float> c(a.view().rows_slice(2, 1));
  CHECK(c.rows() == 1);
  CHECK(c(0, 3) == 9);
}

TEST_CASE("Eigen: row-major without a copy, column-major with one", "[matrix]") {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm(3, 2);
  rm << 1, 2, 3, 4, 5, 6;
  const auto v = view_of(rm);
  CHECK(v.data() == rm.data());
  CHECK(v(2, 1) == 6);
  const auto block = view_of(rm.middleRows(1, 2));  // a block keeps the parent's stride
  CHECK(block(0, 0) == 3);
  Eigen::MatrixXf cm(3, 2);  // column-major by default
  cm << 1, 2, 3, 4, 5, 6;
  const matrix<float> copied = to_row_major(cm);
  CHECK(copied(2, 1) == 6);
  CHECK(copied(0, 1) == 2);
}

// Issue 15: rows x cols was checked for overflow, rows x cols x sizeof(T)
// was not: 2^31 x 2^31 floats became a 0-byte buffer.
TEST_CASE("matrix sizes that overflow bytes are refused before allocating", "[matrix]") {
  CHECK_THROWS_AS(annulus::matrix<float>(std::size_t{1} << 31, std::size_t{1} << 31), annulus::capacity_error);
  CHECK_THROWS_AS(annulus::matrix<double>(std::size_t{1} << 61, 1), annulus::capacity_error);
  CHECK_THROWS_AS(annulus::matrix<float>(std::size_t{1} << 40, std::size_t{1} << 30), annulus::capacity_error);
  CHECK_THROWS_AS(annulus::matrix<float>(std::size_t{1} << 47, 1), annulus::capacity_error);  // > 2^48 bytes
  const annulus::matrix<float> fine(3, 5, annulus::matrix<float>::uninitialized);
  CHECK(fine.size() == 15);
  CHECK(reinterpret_cast<std::uintptr_t>(fine.data()) % 64 == 0);
}

TEST_CASE("sizes: products, allocation limits and file sizes", "[matrix][sizes]") {
  using namespace annulus::sizes;
  CHECK(product(1 << 20, 1 << 20, "x") == std::size_t{1} << 40);
  CHECK_THROWS_WITH(product(std::size_t{1} << 33, std::size_t{1} << 31, "rows"),
                    Catch::Contains("rows") && Catch::Contains("overflows"));
  CHECK(bytes(10, 4, "x") == 40);
  CHECK_THROWS_AS(bytes(max_allocation_bytes / 4 + 1, 4, "x"), annulus::capacity_error);
  CHECK(array_bytes(3, 5, 8, "x") == 120);
  CHECK_NOTHROW(fits_in_file(100, 100, "f"));
  CHECK_THROWS_AS(fits_in_file(101, 100, "f"), annulus::format_error);
}

TEST_CASE("index capacity asked up front is refused as capacity_error, not bad_alloc", "[matrix][sizes]") {
  CHECK_THROWS_AS(annulus::flat_index<annulus::l2>(16, {.initial_capacity = std::size_t{1} << 60}),
                  annulus::capacity_error);
  CHECK_THROWS_AS(annulus::hnsw_index<annulus::l2>(16, {.initial_capacity = std::size_t{1} << 60}),
                  annulus::capacity_error);
}
