// The peer libraries' indexes, registered next to annulus's. Each list is
// empty when its library was not found at configure time (ANNULUS_HAVE_FAISS,
// ANNULUS_HAVE_HNSWLIB), so callers need no #ifdef.
#pragma once

#include <vector>

#include "bench_index.hpp"

namespace annulus::bench {

/// faiss-flat, faiss-ivf-flat, faiss-ivf-pq, faiss-hnsw.
std::vector<index_entry> faiss_entries();
/// hnswlib (HierarchicalNSW).
std::vector<index_entry> hnswlib_entries();

}  // namespace annulus::bench
