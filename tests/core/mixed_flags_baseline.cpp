// Built for the x86-64 baseline (no AVX: the kernels dispatch at run time)
// whatever the rest of the test binary is built for.
#include "core/mixed_flags.hpp"

namespace mixed_flags {
using namespace annulus;

gemm::packed_matrix pack(matrix_view<const float> b) { return gemm::packed_matrix(b); }
gemm::basic_packed_matrix<gemm::bf16> pack_bf16(matrix_view<const float> b) {
  return gemm::basic_packed_matrix<gemm::bf16>(b);
}
std::vector<float> row(const gemm::packed_matrix& m, std::size_t i) {
  std::vector<float> out(m.cols());
  m.row(i, out.data());
  return out;
}
// kernels:: functions (not gemm:: templates, which both units instantiate
// and the linker merges) so the products really come from this unit's kernels.
std::vector<float> row_products(const float* q, const gemm::basic_packed_matrix<gemm::bf16>& m) {
  std::vector<float, aligned_allocator<float>> out(m.padded_rows());
  kernels::row_products(q, m.cols(), reinterpret_cast<const std::uint16_t*>(m.panels()),
                        m.padded_rows() / gemm::panel_width, out.data());
  return {out.begin(), out.begin() + std::ptrdiff_t(m.rows())};
}
float l2sq(const float* a, const float* b, std::size_t d) { return kernels::l2sq(a, b, d); }
kernels::simd_target_info simd_target() { return kernels::simd_target(); }
}  // namespace mixed_flags
