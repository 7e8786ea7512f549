// The persistence tests (index/interface_persist.hpp) over mips_index over flat and hnsw: one
// translation unit per family, as the interface tests, so they build side by side.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES ANNULUS_MIPS_TYPES
#include "index/interface_persist.hpp"
