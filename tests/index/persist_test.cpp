// The persistence tests (index/interface_persist.hpp) over the index kinds
// that save, load and view so far.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES \
  annulus::flat_index<annulus::l2>, annulus::flat_index<annulus::inner_product>, annulus::flat_index<annulus::cosine>, \
      annulus::hnsw_index<annulus::l2>, annulus::hnsw_index<annulus::inner_product>, annulus::hnsw_index<annulus::cosine>, \
      annulus::kd_tree_index<annulus::l2>, annulus::kd_tree_index<annulus::cosine>, \
      annulus::rp_forest_index<annulus::l2>, annulus::rp_forest_index<annulus::inner_product>, \
      annulus::rp_forest_index<annulus::cosine>, annulus::lsh_index<annulus::l2>, \
      annulus::lsh_index<annulus::inner_product>, annulus::lsh_index<annulus::cosine>
#include "index/interface_persist.hpp"
