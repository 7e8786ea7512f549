#include "peer_threads.hpp"

#include <cstdlib>

#include <unistd.h>

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

int peer_blas_threads() {
  const auto get = blas_symbol<int()>("openblas_get_num_threads");
  return get ? get() : -1;
}

std::string blas_description() {
  const auto config = blas_symbol<const char*()>("openblas_get_config");
  return config ? config() : "unknown";
}
#else
void pin_peer_threads(std::size_t) {}
int peer_blas_threads() { return -1; }
std::string blas_description() { return "unknown"; }
#endif

void use_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
}

}  // namespace annulus::bench
