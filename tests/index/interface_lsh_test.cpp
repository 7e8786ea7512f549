// The shared interface tests (index/interface_cases.hpp) over lsh.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_HASH_TYPES
#include "index/interface_cases.hpp"
