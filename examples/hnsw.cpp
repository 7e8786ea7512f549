// An HNSW index as a service keeps one: build it, measure its recall against
// exact search, then change it while it serves (add, remove, update) and
// search with a filter.
//   cmake --build build/release --target hnsw_example && build/release/examples/hnsw_example
#include <annulus/annulus.hpp>

#include <cstdio>
#include <vector>

int main() {
  const std::size_t n = 20000, dim = 64, k = 10;
  // Clustered vectors with uneven norms, like real embeddings.
  const auto data = annulus::gaussian_mixture(dim, {.clusters = 50}).sample(n, 1);
  const auto queries = annulus::gaussian_mixture(dim, {.clusters = 50}).sample(100, 2);

  auto index = annulus::hnsw_index<annulus::l2>::build(data.view(), {.m = 16, .ef_construction = 200});
  const auto exact = annulus::flat_index<annulus::l2>::build(data.view());

  // Recall@10 of the graph against exact search, per beam width.
  const auto truth = annulus::search_batch(exact, queries.view(), k);
  for (std::size_t ef : {16, 64, 256}) {
    const auto got = annulus::search_batch(index, queries.view(), k, {.ef = ef});
    std::printf("ef = %3zu: recall@10 = %.3f\n", ef, annulus::recall_at_k(got, truth, k));
  }

  // Life after build: labels are row numbers unless given.
  index.remove(42);                                  // never returned again
  index.add(data.row(42), 1'000'042);                // reuses the freed slot
  index.update(7, queries.row(0));                   // label 7 now sits at query 0
  const auto top = index.search(queries.row(0), 1);
  std::printf("closest to query 0: label %llu at distance %.1f\n",
              static_cast<unsigned long long>(top[0].label), top[0].distance);

  // Only even labels: rejected nodes still route the search.
  const auto even = index.search(queries.row(1), k, {.ef = 64},
                                 [](annulus::label_t l) { return l % 2 == 0; });
  std::printf("filtered search returned %zu even labels; index holds %zu vectors in %.0f bytes each\n",
              even.size(), index.size(), double(index.memory_bytes()) / double(index.size()));
}
