// Product quantization: reconstruction error falls as m grows, ADC equals
// the distance to the decoded vector, codes round-trip, and bad input is refused.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/quant/pq.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {
double reconstruction_error(const product_quantizer& pq, const matrix<float>& data) {
  std::vector<std::uint8_t> codes(data.rows() * pq.code_size());
  pq.encode(data.view(), codes.data());
  std::vector<float> decoded(data.cols());
  double err = 0, total = 0;
  for (std::size_t i = 0; i < data.rows(); ++i) {
    pq.decode(codes.data() + i * pq.code_size(), decoded.data());
    err += kernels::scalar::l2sq(data.row_ptr(i), decoded.data(), data.cols());
    total += kernels::scalar::norm_sq(data.row_ptr(i), data.cols());
  }
  return err / total;
}
}  // namespace

TEST_CASE("pq: reconstruction error falls as m grows", "[pq]") {
  const auto train = annulus::testing::clustered(3000, 24, 30, 1);
  const auto test = annulus::testing::clustered(500, 24, 30, 2);
  double previous = 1e300;
  for (std::size_t m : {1u, 2u, 4u, 8u, 12u, 24u}) {
    product_quantizer pq(24, m, 6);
    pq.train(train.view(), {.iterations = 15});
    const double err = reconstruction_error(pq, test);
    INFO("m = " << m << ", relative error " << err);
    CHECK(err < previous);
    previous = err;
  }
  CHECK(previous < 0.02);
}

TEST_CASE("pq: the ADC inner product equals the inner product with the decoded vector", "[pq]") {
  for (std::size_t nbits : {8u, 4u, 3u}) {
    const std::size_t dim = 30, m = 10;  // dsub = 3: an odd sub-space size
    const auto train = annulus::testing::clustered(2000, dim, 10, 3);
    const auto queries = annulus::testing::clustered(20, dim, 10, 4);
    product_quantizer pq(dim, m, nbits);
    pq.train(train.view(), {.iterations = 5});
    REQUIRE(pq.ksub() == (std::size_t{1} << nbits));
    std::vector<std::uint8_t> codes(train.rows() * m);
    pq.encode(train.view(), codes.data());
    std::vector<float, aligned_allocator<float>> table(pq.table_size());
    std::vector<float> decoded(dim);
    for (std::size_t q = 0; q < queries.rows(); ++q) {
      pq.inner_product_table(queries.row_ptr(q), table.data());
      for (std::size_t i = 0; i < 200; ++i) {
        const std::uint8_t* code = codes.data() + i * m;
        for (std::size_t j = 0; j < m; ++j) REQUIRE(code[j] < pq.ksub());
        pq.decode(code, decoded.data());
        const double exact = kernels::scalar::dot(queries.row_ptr(q), decoded.data(), dim);
        double mag = 0;
        for (std::size_t j = 0; j < dim; ++j) mag += std::abs(double(queries(q, j)) * decoded[j]);
        INFO("nbits " << nbits << ", query " << q << ", code " << i);
        REQUIRE(std::abs(pq.lookup_add(table.data(), code) - exact) <= 1e-5 * mag + 1e-6);
      }
    }
  }
}

TEST_CASE("pq: a decoded code encodes back to the same vector", "[pq]") {
  const auto train = annulus::testing::clustered(1000, 16, 5, 5);
  product_quantizer pq(16, 4, 5);
  pq.train(train.view(), {.iterations = 4});
  std::vector<std::uint8_t> code(4), again(4);
  std::vector<float> decoded(16), redecoded(16);
  for (std::uint8_t c : {0, 7, 31}) {
    std::fill(code.begin(), code.end(), c);
    pq.decode(code.data(), decoded.data());
    pq.encode(matrix_view<const float>(decoded.data(), 1, 16), again.data(), 1);
    pq.decode(again.data(), redecoded.data());  // the same code, or an equal centroid
    for (std::size_t j = 0; j < 16; ++j) CHECK(redecoded[j] == Approx(decoded[j]).margin(1e-4));
  }
}

TEST_CASE("pq: bad parameters and untrained use are clear errors", "[pq]") {
  CHECK_THROWS_MATCHES(product_quantizer(30, 4), invalid_argument, message_has("m = 4 sub-vectors must divide the dimension 30"));
  CHECK_THROWS_AS(product_quantizer(30, 0), invalid_argument);
  CHECK_THROWS_MATCHES(product_quantizer(30, 5, 9), invalid_argument, message_has("nbits must be 1..8, got 9"));
  CHECK_THROWS_AS(product_quantizer(30, 5, 0), invalid_argument);
  product_quantizer pq(8, 2, 8);
  const auto few = annulus::testing::clustered(255, 8, 3, 6);
  CHECK_THROWS_MATCHES(pq.train(few.view()), invalid_argument, message_has("255 training vectors for 256 centroids"));
  std::vector<std::uint8_t> codes(2);
  CHECK_THROWS_MATCHES(pq.encode(few.view().rows_slice(0, 1), codes.data()), invalid_argument,
                       message_has("before train"));
  CHECK_THROWS_AS(pq.train(annulus::testing::clustered(300, 9, 3, 6).view()), dimension_mismatch);
  CHECK(default_pq_m(784) == 56);
  CHECK(default_pq_m(128) == 16);
  CHECK(default_pq_m(7) == 1);
}
