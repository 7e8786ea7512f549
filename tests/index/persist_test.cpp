// The persistence tests (index/interface_persist.hpp) over the index kinds
// that save, load and view so far.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES \
  annulus::flat_index<annulus::l2>, annulus::flat_index<annulus::inner_product>, annulus::flat_index<annulus::cosine>, \
      annulus::hnsw_index<annulus::l2>, annulus::hnsw_index<annulus::inner_product>, annulus::hnsw_index<annulus::cosine>, \
      annulus::ivf_flat_index<annulus::l2>, annulus::ivf_flat_index<annulus::inner_product>,                           \
      annulus::ivf_flat_index<annulus::cosine>, annulus::ivf_pq_index<annulus::l2>,                                    \
      annulus::ivf_pq_index<annulus::inner_product>, annulus::ivf_pq_index<annulus::cosine>
#include "index/interface_persist.hpp"
