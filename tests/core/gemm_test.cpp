#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/core/gemm.hpp"
#include "annulus/core/random.hpp"
#include "core/kernel_sets.hpp"

using namespace annulus;

TEST_CASE("gemm::inner_products equals the scalar dot at every edge shape", "[gemm]") {
  random_generator rng(8);
  gemm::workspace ws;  // reused across shapes, as callers do
  for (std::size_t d : {1u, 7u, 16u, 33u, 784u}) {
    for (std::size_t na : {1u, 5u, 6u, 13u}) {
      for (std::size_t nb : {1u, 15u, 16u, 17u, 40u}) {
        // Strided, unaligned views: a's rows padded by 3, b offset by one float.
        std::vector<float> a_buf(na * (d + 3) + 1), b_buf(nb * d + 1);
        for (float& x : a_buf) x = float(rng.normal());
        for (float& x : b_buf) x = float(rng.normal());
        const matrix_view<const float> a(a_buf.data() + 1, na, d, d + 3), b(b_buf.data() + 1, nb, d);
        const std::size_t stride = nb + 2;
        std::vector<float> out(na * stride, -7.f);
        gemm::inner_products(a, b, out.data(), stride, ws);
        for (std::size_t i = 0; i < na; ++i) {
          for (std::size_t j = 0; j < nb; ++j) {
            double mag = 0;
            for (std::size_t k = 0; k < d; ++k) mag += std::abs(double(a(i, k)) * b(j, k));
            INFO("d " << d << ", " << na << " x " << nb << ", at " << i << ", " << j);
            REQUIRE(std::abs(out[i * stride + j] - kernels::scalar::dot(a.row_ptr(i), b.row_ptr(j), d)) <=
                    1e-5 * mag + 1e-6);
          }
          for (std::size_t j = nb; j < stride; ++j) REQUIRE(out[i * stride + j] == -7.f);  // untouched
        }
      }
    }
  }
}

TEST_CASE("gemm: packed, batch and one-row products agree bit for bit", "[gemm]") {
  random_generator rng(9);
  gemm::workspace ws;
  for (std::size_t d : {3u, 14u, 257u, 600u}) {
    for (std::size_t nb : {5u, 16u, 70u}) {
      matrix<float> a(13, d), b(nb, d);
      for (std::size_t i = 0; i < a.size(); ++i) a.view().data()[i] = float(rng.normal());
      for (std::size_t i = 0; i < b.size(); ++i) b.view().data()[i] = float(rng.normal());
      const gemm::packed_matrix packed(b.view());
      REQUIRE(packed.rows() == nb);
      REQUIRE(packed.padded_rows() % gemm::panel_width == 0);
      std::vector<float> row(d);
      packed.row(nb - 1, row.data());
      REQUIRE(std::vector<float>(b.row(nb - 1).begin(), b.row(nb - 1).end()) == row);

      std::vector<float> direct(13 * nb), pre(13 * nb);
      gemm::inner_products(a.view(), b.view(), direct.data(), nb, ws);
      gemm::inner_products(a.view(), packed, pre.data(), nb);
      REQUIRE(direct == pre);
      std::vector<float, aligned_allocator<float>> one(packed.padded_rows());
      for (std::size_t i = 0; i < 13; ++i) {
        gemm::one_row_products(a.row_ptr(i), packed, one.data());
        for (std::size_t j = 0; j < nb; ++j) {
          INFO("d " << d << ", nb " << nb << ", row " << i << ", col " << j);
          REQUIRE(one[j] == pre[i * nb + j]);
        }
        for (std::size_t j = nb; j < packed.padded_rows(); ++j) REQUIRE(one[j] == 0.f);
      }
    }
  }
}

TEST_CASE("gemm: bfloat16 panels hold rounded values and multiply like their unpacked floats", "[gemm]") {
  CHECK(gemm::to_float(gemm::to_bf16(1.f)) == 1.f);
  CHECK(gemm::to_float(gemm::to_bf16(-3.5f)) == -3.5f);
  CHECK(gemm::to_float(gemm::to_bf16(1.f + 1.f / 512)) == 1.f);                 // ties go to even
  CHECK(gemm::to_float(gemm::to_bf16(1.f + 3.f / 512)) == 1.f + 1.f / 128);
  random_generator rng(10);
  gemm::workspace ws;
  for (std::size_t d : {5u, 300u}) {
    for (std::size_t nb : {7u, 33u}) {
      matrix<float> a(9, d), b(nb, d);
      for (std::size_t i = 0; i < a.size(); ++i) a.view().data()[i] = float(rng.normal());
      for (std::size_t i = 0; i < b.size(); ++i) b.view().data()[i] = float(rng.normal()) * 100.f;
      const gemm::basic_packed_matrix<gemm::bf16> half(b.view());
      const gemm::packed_matrix full = half.unpacked();
      std::vector<float> row(d);
      for (std::size_t i = 0; i < nb; ++i) {
        half.row(i, row.data());
        for (std::size_t k = 0; k < d; ++k) {
          REQUIRE(row[k] == gemm::to_float(gemm::to_bf16(b(i, k))));
          REQUIRE(full.at(i, k) == row[k]);
        }
      }
      std::vector<float> batch(9 * nb);
      gemm::inner_products(a.view(), full, batch.data(), nb);
      std::vector<float, aligned_allocator<float>> one(half.padded_rows());
      for (std::size_t i = 0; i < 9; ++i) {
        gemm::one_row_products(a.row_ptr(i), half, one.data());
        for (std::size_t j = 0; j < nb; ++j) REQUIRE(one[j] == batch[i * nb + j]);
      }
    }
  }
}

// Each kernel set on its own (the compiled-in or dispatched one above is
// only one of them): packed products against the scalar dot, and one row
// equal bit for bit to the same row of a batch, float and bfloat16 panels.
TEST_CASE("gemm: every kernel set multiplies packed panels right", "[gemm]") {
  random_generator rng(11);
  for (const kernels::kernel_set* set : kernel_sets_to_check()) {
    for (std::size_t d : {1u, 9u, 64u, 300u}) {
      for (std::size_t na : {1u, 7u, 13u, 25u}) {
        for (std::size_t nb : {3u, 16u, 50u}) {
          matrix<float> a(na, d), b(nb, d);
          for (std::size_t i = 0; i < a.size(); ++i) a.view().data()[i] = float(rng.normal());
          for (std::size_t i = 0; i < b.size(); ++i) b.view().data()[i] = float(rng.normal());
          const gemm::packed_matrix packed(b.view());
          const gemm::basic_packed_matrix<gemm::bf16> half(b.view());
          const gemm::packed_matrix rounded = half.unpacked();
          const std::size_t n_panels = packed.padded_rows() / gemm::panel_width;
          std::vector<float> batch(na * nb), batch_rounded(na * nb);
          set->panel_products(a.view(), packed.panels(), nb, batch.data(), nb);
          set->panel_products(a.view(), rounded.panels(), nb, batch_rounded.data(), nb);
          std::vector<float, aligned_allocator<float>> one(packed.padded_rows()), one_half(packed.padded_rows());
          for (std::size_t i = 0; i < na; ++i) {
            set->row_products(a.row_ptr(i), d, packed.panels(), n_panels, one.data());
            set->row_products_bf16(a.row_ptr(i), d, reinterpret_cast<const std::uint16_t*>(half.panels()),
                                   n_panels, one_half.data());
            for (std::size_t j = 0; j < nb; ++j) {
              double mag = 0;
              for (std::size_t k = 0; k < d; ++k) mag += std::abs(double(a(i, k)) * b(j, k));
              INFO("set " << set->name << ", d " << d << ", " << na << " x " << nb << ", at " << i << ", " << j);
              REQUIRE(std::abs(batch[i * nb + j] - kernels::scalar::dot(a.row_ptr(i), b.row_ptr(j), d)) <=
                      1e-5 * mag + 1e-6);
              REQUIRE(one[j] == batch[i * nb + j]);
              REQUIRE(one_half[j] == batch_rounded[i * nb + j]);
            }
            for (std::size_t j = nb; j < packed.padded_rows(); ++j) REQUIRE(one[j] == 0.f);
          }
        }
      }
    }
  }
}
