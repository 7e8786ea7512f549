// The shared interface tests (index/interface_cases.hpp) over ivf_pq_fs_index.
#include "index/index_types.hpp"

#define ANNULUS_INTERFACE_TYPES ANNULUS_IVF_PQ_FS_TYPES
#include "index/interface_cases.hpp"
