// Calls into tests/core/mixed_flags_baseline.cpp, a translation unit built
// for the x86-64 baseline (tests/CMakeLists.txt) inside binaries built for
// other targets.
#pragma once

#include <cstddef>
#include <vector>

#include "annulus/core/gemm.hpp"
#include "annulus/core/kernels.hpp"

namespace mixed_flags {
annulus::gemm::packed_matrix pack(annulus::matrix_view<const float> b);
annulus::gemm::basic_packed_matrix<annulus::gemm::bf16> pack_bf16(annulus::matrix_view<const float> b);
std::vector<float> row(const annulus::gemm::packed_matrix& m, std::size_t i);
std::vector<float> row_products(const float* q, const annulus::gemm::basic_packed_matrix<annulus::gemm::bf16>& m);
float l2sq(const float* a, const float* b, std::size_t d);
annulus::kernels::simd_target_info simd_target();
}  // namespace mixed_flags
