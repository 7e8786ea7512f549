// Four HNSW shards as one index: build with your own ids, search, route an
// add and a remove, save as a directory and open it again. The MPI version
// of the same directory: annulus/dist/mpi.hpp and annulus-mpi (README).
//   cmake --build build/release --target sharded_example && build/release/examples/sharded_example
#include <annulus/annulus.hpp>
#include <annulus/index/sharded.hpp>

#include <cstdio>
#include <filesystem>
#include <vector>

int main() {
  using shards = annulus::sharded_index<annulus::hnsw_index<annulus::l2>>;
  const std::size_t n = 20000, dim = 32;
  const auto data = annulus::gaussian_mixture(dim, {.clusters = 16, .seed = 3}).sample(n, 1);
  std::vector<annulus::label_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = 1'000'000 + 7 * i;  // the service's own item ids

  // label_hash: each id's shard is a hash of the id, so a router knows it.
  auto idx = shards::build_with_labels(data.view(), ids,
                                       {.shards = 4, .partition = annulus::shard_partition::label_hash,
                                        .shard = {.m = 16}});
  const auto query = data.row(123);
  for (const annulus::neighbor& hit : idx.search(query, 5, {.ef = 64}))
    std::printf("id %llu (shard %zu)  squared l2 %.3f\n", static_cast<unsigned long long>(hit.label),
                annulus::label_hash_shard(hit.label, 4), hit.distance);

  idx.remove(ids[123]);                    // to the shard that holds it
  idx.add(query, annulus::label_t(42));    // to the shard 42 hashes to
  const auto dir = std::filesystem::temp_directory_path() / "annulus-sharded-example";
  idx.save(dir);                           // shard-0000N.annulus + manifest.annulus
  const auto served = shards::view(dir);   // read-only, every shard mapped
  std::printf("saved and viewed: %zu vectors in %zu shards; best for the query is now id %llu\n", served.size(),
              served.shard_count(), static_cast<unsigned long long>(served.search(query, 1, {.ef = 64})[0].label));
  std::filesystem::remove_all(dir);
}
