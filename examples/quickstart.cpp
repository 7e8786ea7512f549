// Build an exact index over random vectors and query it.
//   cmake --build build/release --target quickstart && build/release/examples/quickstart
#include <annulus/annulus.hpp>

#include <cstdio>
#include <vector>

int main() {
  const std::size_t n = 10000, dim = 64;
  annulus::random_generator rng(7);
  std::vector<float> data(n * dim);
  for (float& x : data) x = static_cast<float>(rng.normal());

  // Any row-major float buffer works; view_of wraps it without a copy.
  auto index = annulus::flat_index<annulus::cosine>::build(annulus::view_of(data, dim));

  std::vector<float> query(data.begin() + 42 * dim, data.begin() + 43 * dim);
  for (const annulus::neighbor& hit : index.search(query, 5))
    std::printf("label %llu  cosine %.3f\n", static_cast<unsigned long long>(hit.label),
                annulus::similarity<annulus::cosine>(hit.distance));
  std::printf("SIMD target: %s, %zu bytes per vector\n", annulus::kernels::simd_target().describe().c_str(),
              index.memory_bytes() / index.size());
}
