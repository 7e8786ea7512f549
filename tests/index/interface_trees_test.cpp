// The shared interface tests (index/interface_cases.hpp) over kd_tree and rp_forest.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_TREE_TYPES
#include "index/interface_cases.hpp"
