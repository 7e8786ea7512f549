// The shared interface tests (index/interface_cases.hpp) over hnsw_sq8_index.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_HNSW_SQ8_TYPES
#include "index/interface_cases.hpp"
