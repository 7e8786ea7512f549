#include "peer_threads.hpp"

#ifdef ANNULUS_HAVE_FAISS
#include <dlfcn.h>
#include <omp.h>

#include <annulus/core/parallel.hpp>
#endif

namespace annulus::bench {

#ifdef ANNULUS_HAVE_FAISS
namespace {
// OpenBLAS's controls, looked up at run time: Debian links -lblas against the
// reference BLAS's libblas.so (no such symbols), and the alternatives system
// may load OpenBLAS's libblas.so.3 in its place. Null when it does not.
template <class F>
F* blas_symbol(const char* name) {
  return reinterpret_cast<F*>(dlsym(RTLD_DEFAULT, name));
}
}  // namespace

void pin_peer_threads(std::size_t threads) {
  static std::size_t pinned = 0;  // 0: never set
  threads = resolve_threads(threads);
  if (threads == pinned) return;
  omp_set_num_threads(int(threads));
  if (auto set = blas_symbol<void(int)>("openblas_set_num_threads")) set(int(threads));
  pinned = threads;
}

std::string blas_description() {
  const auto config = blas_symbol<const char*()>("openblas_get_config");
  return config ? config() : "unknown";
}
#else
void pin_peer_threads(std::size_t) {}
std::string blas_description() { return "unknown"; }
#endif

}  // namespace annulus::bench
