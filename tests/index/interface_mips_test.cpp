// The shared interface tests (index/interface_cases.hpp) over mips_index (flat and hnsw inside).
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_MIPS_TYPES
#include "index/interface_cases.hpp"
