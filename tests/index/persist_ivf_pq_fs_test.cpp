// The persistence tests (index/interface_persist.hpp) over ivf_pq_fs_index.
#include "index/index_types.hpp"

#define ANNULUS_PERSIST_TYPES ANNULUS_IVF_PQ_FS_TYPES
#include "index/interface_persist.hpp"
