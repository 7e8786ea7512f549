// Issue 16, item 4: a translation unit that includes an index header does not
// parse Eigen (2-3 s of g++ front end; docs/design.md, "Compile time"). Only
// core/eigen.hpp (the Eigen adapters) and the umbrella annulus.hpp include it.
//
// The generated header includes every header under include/annulus/ except
// those two and core/simd/ (kernel bodies included by dispatch.hpp):
// tests/CMakeLists.txt writes it from a glob, so a new index header is checked
// without editing this file. This file is its first include: nothing else
// (Catch2 included) can bring Eigen in first.
#include "annulus_headers_without_eigen.hpp"

#if defined(EIGEN_WORLD_VERSION) || defined(EIGEN_CORE_H)
#error "an annulus header other than core/eigen.hpp and annulus.hpp includes Eigen: move the Eigen use into core/eigen.hpp"
#endif

#include <catch2/catch.hpp>

TEST_CASE("index, quant, transform, eval and io headers do not include Eigen", "[headers]") {
  // The check is the #error above, at compile time; this case names it in the test list.
  CHECK(ANNULUS_TEST_HEADERS_WITHOUT_EIGEN > 0);
}
