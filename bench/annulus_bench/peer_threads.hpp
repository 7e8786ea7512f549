// Thread counts of the peer libraries' own pools. FAISS parallelises with
// OpenMP and multiplies matrices with BLAS; both keep their own thread pools,
// so a fair comparison sets both to the count annulus is given.
#pragma once

#include <cstddef>
#include <string>

namespace annulus::bench {

/// Sets OpenMP's thread count (of the calling thread: call from the bench's
/// main thread) and OpenBLAS's, when OpenBLAS is the BLAS loaded. 0 = all
/// cores. Remembers the last count, so calling it before every query is free.
/// A no-op without FAISS.
void pin_peer_threads(std::size_t threads);

/// OpenBLAS's own thread count after pin_peer_threads (-1: not OpenBLAS).
int peer_blas_threads();

/// Unless OMP_WAIT_POLICY is set, sets it to passive and restarts the program
/// (libgomp reads it when loaded, before main): OpenMP threads that spin after
/// each parallel call steal a core from the next timed run on a small machine.
/// Call first thing in main. Returns only when no restart happened.
void use_passive_openmp(char** argv);

/// OpenBLAS's build description ("OpenBLAS 0.3.21 DYNAMIC_ARCH ..."), or
/// "unknown" when the BLAS loaded is not OpenBLAS (or without FAISS).
std::string blas_description();

}  // namespace annulus::bench
