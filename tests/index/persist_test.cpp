// The persistence tests (index/interface_persist.hpp) over the index kinds
// that save, load and view so far.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES \
  annulus::flat_index<annulus::l2>, annulus::flat_index<annulus::inner_product>, annulus::flat_index<annulus::cosine>, \
      annulus::hnsw_index<annulus::l2>, annulus::hnsw_index<annulus::inner_product>, annulus::hnsw_index<annulus::cosine>, \
      annulus::mips_index<annulus::flat_index<annulus::l2>>, annulus::mips_index<annulus::hnsw_index<annulus::l2>>
#include "index/interface_persist.hpp"
