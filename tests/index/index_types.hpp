// The one list of index types the interface tests run over. A new index joins
// every interface test by adding its types here, with a test_setup that says how
// to build it for the tests and what recall it must reach.
#pragma once

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"

namespace annulus::testing {

template <class Index>
struct test_setup;

template <class M>
struct test_setup<flat_index<M>> {
  static typename flat_index<M>::build_params build() { return {}; }
  static typename flat_index<M>::search_params search() { return {}; }
  static constexpr double min_recall = 1.0;
};

template <class M>
struct test_setup<hnsw_index<M>> {
  static typename hnsw_index<M>::build_params build() { return {.m = 12, .ef_construction = 100, .seed = 3}; }
  static typename hnsw_index<M>::search_params search() { return {.ef = 64}; }
  static constexpr double min_recall = 0.95;
};

}  // namespace annulus::testing

#define ANNULUS_INDEX_TYPES \
  annulus::flat_index<annulus::l2>, annulus::flat_index<annulus::inner_product>, \
      annulus::flat_index<annulus::cosine>, annulus::hnsw_index<annulus::l2>, \
      annulus::hnsw_index<annulus::inner_product>, annulus::hnsw_index<annulus::cosine>
