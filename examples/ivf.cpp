// Inverted files: IVF-Flat keeps the vectors and scans the nprobe lists
// nearest the query; IVF-PQ keeps m-byte codes instead and, with
// keep_vectors, re-ranks its best candidates exactly. This shows the knobs a
// service tunes (nprobe, refine_factor) against exact search, and the memory.
//   cmake --build build/release --target ivf_example && build/release/examples/ivf_example
#include <annulus/annulus.hpp>

#include <cstdio>
#include <vector>

int main() {
  const std::size_t n = 50000, dim = 64, k = 10;
  const annulus::gaussian_mixture mixture(dim, {.clusters = 100});
  const auto data = mixture.sample(n, 1);
  const auto queries = mixture.sample(200, 2);
  const auto truth = annulus::search_batch(annulus::flat_index<annulus::l2>::build(data.view()), queries.view(), k);

  // build = train on a sample (k-means, then PQ) + add everything.
  const auto flat = annulus::ivf_flat_index<annulus::l2>::build(data.view(), {.nlist = 256});
  auto pq = annulus::ivf_pq_index<annulus::l2>::build(data.view(), {.nlist = 256, .m = 16, .keep_vectors = true});

  for (std::size_t nprobe : {1, 4, 16}) {
    const auto a = annulus::search_batch(flat, queries.view(), k, {.nprobe = nprobe});
    const auto b = annulus::search_batch(pq, queries.view(), k, {.nprobe = nprobe});
    const auto c = annulus::search_batch(pq, queries.view(), k, {.nprobe = nprobe, .refine_factor = 4});
    std::printf("nprobe %2zu: recall@10 ivf_flat %.3f, ivf_pq codes only %.3f, re-ranked x4 %.3f\n", nprobe,
                annulus::recall_at_k(a, truth, k), annulus::recall_at_k(b, truth, k),
                annulus::recall_at_k(c, truth, k));
  }

  const auto mem = pq.memory();
  std::printf("bytes per vector: ivf_flat %.0f; ivf_pq lists %.1f (16-byte codes, a 4-byte l2 term, a 4-byte slot), "
              "kept vectors %.0f, quantizers %.1f\n",
              double(flat.memory_bytes()) / n, double(mem.lists) / n, double(mem.vectors) / n,
              double(mem.quantizers) / n);

  // Life after build, and a filter applied inside the list scan.
  pq.remove(42);
  const std::vector<annulus::label_t> label{1'000'042};
  pq.add(data.view().rows_slice(42, 1), label);  // reuses 42's slot
  const auto odd = pq.search(queries.row(0), k, {.nprobe = 16, .refine_factor = 4},
                             [](annulus::label_t l) { return l % 2 == 1; });
  std::printf("filtered search: %zu odd labels; closest to itself, row 42 is now label %llu\n", odd.size(),
              static_cast<unsigned long long>(pq.search(data.row(42), 1, {.nprobe = 4, .refine_factor = 4})[0].label));
}
