// Built with -DANNULUS_SIMD_DISPATCH=1 on top of the binary's own flags
// (tests/CMakeLists.txt): forced run-time dispatch must compile and agree
// with the rest of the binary whatever target that is (an AVX-512 unit
// included: its AVX2 region once failed to compile under GCC).
// core/forced_dispatch_test.cpp calls it.
#include <cstddef>

#include "annulus/core/kernels.hpp"

namespace forced_dispatch {
using namespace annulus;
float l2sq(const float* a, const float* b, std::size_t d) { return kernels::l2sq(a, b, d); }
float dot(const float* a, const float* b, std::size_t d) { return kernels::dot(a, b, d); }
kernels::simd_target_info simd_target() { return kernels::simd_target(); }
}  // namespace forced_dispatch
