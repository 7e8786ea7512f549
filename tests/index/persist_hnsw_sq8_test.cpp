// The persistence tests (index/interface_persist.hpp) over hnsw_sq8_index.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES ANNULUS_HNSW_SQ8_TYPES
#include "index/interface_persist.hpp"
