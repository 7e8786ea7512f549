// The shared interface tests (index/interface_cases.hpp) over flat and hnsw.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_FLAT_HNSW_TYPES
#include "index/interface_cases.hpp"
