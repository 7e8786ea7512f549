// Eigen adapters: hand an Eigen matrix to annulus as a matrix_view.
//
// Ownership: view_of(m) never owns memory (the Eigen object keeps it alive
// while the view is used); to_row_major(m) returns an owning annulus::matrix,
// the one copy, for column-major matrices.
//
// The only header that includes Eigen. The umbrella annulus/annulus.hpp
// includes it; the index, quant, transform, eval and io headers do not, so a
// translation unit that includes one index header does not parse Eigen
// (docs/design.md, "Compile time"; tests/core/no_eigen_test.cpp checks it).
#pragma once

#include <cstddef>
#include <string>

#include <Eigen/Core>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus {

/// A row-major Eigen matrix, Map or block with direct access (no copy).
template <class Derived>
  requires(bool(Derived::IsRowMajor) &&
           (int(Eigen::internal::traits<Derived>::Flags) & Eigen::DirectAccessBit) != 0)
auto view_of(const Eigen::DenseBase<Derived>& m) {
  using scalar = typename Derived::Scalar;
  const auto& d = m.derived();
  if (d.innerStride() != 1)
    throw invalid_argument("view_of: Eigen expression has inner stride " +
                           std::to_string(d.innerStride()) + ", annulus needs 1");
  return matrix_view<const scalar>(d.data(), static_cast<std::size_t>(d.rows()),
                                   static_cast<std::size_t>(d.cols()),
                                   static_cast<std::size_t>(d.outerStride()));
}

/// Any Eigen matrix (column-major included) copied once into a row-major
/// annulus matrix. Use this for Eigen::MatrixXf, whose default layout is
/// column-major: annulus reads vectors as rows.
template <class Derived>
matrix<typename Derived::Scalar> to_row_major(const Eigen::DenseBase<Derived>& m) {
  matrix<typename Derived::Scalar> out(static_cast<std::size_t>(m.rows()),
                                       static_cast<std::size_t>(m.cols()));
  using row_major =
      Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<row_major>(out.data(), m.rows(), m.cols()) = m;
  return out;
}

}  // namespace annulus
