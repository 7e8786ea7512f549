// The shared interface tests (index/interface_cases.hpp) over sharded_index.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_SHARDED_TYPES
#include "index/interface_cases.hpp"
