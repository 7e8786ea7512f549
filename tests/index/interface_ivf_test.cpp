// The shared interface tests (index/interface_cases.hpp) over ivf_flat and ivf_pq.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_IVF_TYPES
#include "index/interface_cases.hpp"
