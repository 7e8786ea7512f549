// annulus-kernels-bench: the distance kernels in isolation (Google Benchmark).
// One-to-one at d = 128 (SIFT), 784 (Fashion-MNIST), 960 (GIST) runs from L1;
// l2sq_many over 10,000 rows of d = 784 (31 MB) runs from memory, as a flat
// search does.
#include <annulus/annulus.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <vector>

namespace {

std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  annulus::random_generator rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.normal());
  return v;
}

template <float (*Kernel)(const float*, const float*, std::size_t)>
void one_to_one(benchmark::State& state) {
  const auto d = static_cast<std::size_t>(state.range(0));
  const auto a = random_floats(d, 1), b = random_floats(d, 2);
  for (auto _ : state) {
    // The inputs are opaque to the optimiser, so each call is really made.
    benchmark::DoNotOptimize(a.data());
    benchmark::DoNotOptimize(b.data());
    benchmark::DoNotOptimize(Kernel(a.data(), b.data(), d));
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(2 * d * sizeof(float)));
  state.SetLabel(annulus::kernels::simd_target().describe());
}
BENCHMARK(one_to_one<annulus::kernels::dot>)->Name("dot")->Arg(128)->Arg(784)->Arg(960);
BENCHMARK(one_to_one<annulus::kernels::l2sq>)->Name("l2sq")->Arg(128)->Arg(784)->Arg(960);

void l2sq_many(benchmark::State& state) {
  constexpr std::size_t rows = 10000, d = 784;
  const auto base = random_floats(rows * d, 3), q = random_floats(d, 4);
  std::vector<float> out(rows);
  for (auto _ : state) {
    annulus::kernels::l2sq_many(q.data(), annulus::view_of(base, d), out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(rows * d * sizeof(float)));
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(rows));
  state.SetLabel(annulus::kernels::simd_target().describe());
}
BENCHMARK(l2sq_many)->Name("l2sq_many/10000x784")->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
