// The persistence tests (index/interface_persist.hpp) over kd_tree, rp_forest
// and lsh: one translation unit per family, as the interface tests, so they
// build side by side.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES ANNULUS_TREE_TYPES, ANNULUS_HASH_TYPES
#include "index/interface_persist.hpp"
