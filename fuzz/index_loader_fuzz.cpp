// libFuzzer harness for the index loaders (index/base.hpp load and view,
// core/serialize.hpp), over every index kind and metric.
//
// The input is a file. Its header names the kind and the metric; the
// matching loader reads it (a file no loader claims goes to flat_index<l2>,
// which must refuse it). Input byte 0 picks how:
//   bit 0 = 0: as it is. A mutation almost always breaks a checksum, so this
//              tests the container's own checks;
//   bit 0 = 1: resealed first: every section checksum and the footer's are
//              recomputed over the mutated bytes, so the mutation reaches the
//              loaders' own checks of counts, ids, offsets and trees;
//   bit 1 = 1: viewed (view() over a file) instead of loaded from a stream,
//              so payload sections are served unchecked: searches on the view
//              must stay in bounds whatever those sections hold.
// (Byte 0 is the first magic byte in a valid file: the harness restores
// 'A' after reading the mode.)
//
// Expected: the load throws an annulus::error, or it succeeds and a search,
// a save and (for a loaded index) an add run without fault. A finding: any
// other exception, a crash, a sanitizer report, an allocation over
// -malloc_limit_mb, a hang.
#include <annulus/annulus.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "input_file.hpp"
#include "support/reseal.hpp"

namespace {

using namespace annulus;

// What a caller does with an index it opened: search it, save it, and
// change it where it is not a view.
template <class Index>
void exercise(Index& idx) {
  std::vector<float> q(idx.dim(), 0.5f);
  idx.set_k_policy(k_policy::at_most);
  idx.search(q, 3);
  idx.search(q, 3, {}, [](label_t l) { return l % 2 == 0; });
  std::ostringstream out;
  idx.save(out);
  if (!idx.read_only()) {
    idx.add(q, 1u << 30);
    idx.search(q, 3);
  }
}

template <class Index>
void open_and_use(const std::string& bytes, bool viewed) {
  if (viewed) {
    static const annulus::fuzz::input_file file("annulus-index-loader-fuzz", "input.annulus");
    file.write(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    Index idx = Index::view(file.path());
    exercise(idx);
    idx.verify();
    return;
  }
  std::istringstream in(bytes);
  Index idx = Index::load(in);
  exercise(idx);
}

// The loader of the file's metric among a kind's three (L2, IP, Cos; a kind
// without inner product repeats another, whose loader refuses the metric).
template <class L2, class IP, class Cos>
void by_metric(std::uint32_t metric, const std::string& bytes, bool viewed) {
  if (metric == std::uint32_t(metric_kind::inner_product)) return open_and_use<IP>(bytes, viewed);
  if (metric == std::uint32_t(metric_kind::cosine)) return open_and_use<Cos>(bytes, viewed);
  open_and_use<L2>(bytes, viewed);
}
#define ANNULUS_KIND(K) K<l2>, K<inner_product>, K<cosine>

void dispatch(const std::string& bytes, bool viewed) {
  std::string kind;
  std::uint32_t metric = 0;
  if (bytes.size() >= 64) {
    kind.assign(bytes.data() + 16, strnlen(bytes.data() + 16, 16));
    std::memcpy(&metric, bytes.data() + 32, 4);
  }
  if (kind == "hnsw") return by_metric<ANNULUS_KIND(hnsw_index)>(metric, bytes, viewed);
  if (kind == "hnsw_sq8") return by_metric<ANNULUS_KIND(hnsw_sq8_index)>(metric, bytes, viewed);
  if (kind == "ivf_flat") return by_metric<ANNULUS_KIND(ivf_flat_index)>(metric, bytes, viewed);
  if (kind == "ivf_pq") return by_metric<ANNULUS_KIND(ivf_pq_index)>(metric, bytes, viewed);
  if (kind == "ivf_pq_fs") return by_metric<ANNULUS_KIND(ivf_pq_fs_index)>(metric, bytes, viewed);
  if (kind == "kd_tree") return by_metric<kd_tree_index<l2>, kd_tree_index<l2>, kd_tree_index<cosine>>(metric, bytes, viewed);
  if (kind == "rp_forest") return by_metric<ANNULUS_KIND(rp_forest_index)>(metric, bytes, viewed);
  if (kind == "lsh") return by_metric<ANNULUS_KIND(lsh_index)>(metric, bytes, viewed);
  if (kind == "mips") {
    // The inner index's kind is inside; try the wrappers the fixtures hold.
    try {
      return open_and_use<mips_index<hnsw_index<l2>>>(bytes, viewed);
    } catch (const format_error&) {
    }
    return open_and_use<mips_index<flat_index<l2>>>(bytes, viewed);
  }
  if (kind == "banded_mips") return open_and_use<banded_mips_index<>>(bytes, viewed);
  by_metric<ANNULUS_KIND(flat_index)>(metric, bytes, viewed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  std::string bytes(reinterpret_cast<const char*>(data), size);
  bytes[0] = 'A';
  if (mode & 1) annulus::testing::reseal(bytes);
  try {
    dispatch(bytes, (mode & 2) != 0);
  } catch (const annulus::error&) {
  } catch (const std::bad_alloc&) {
    annulus::fuzz::finding("std::bad_alloc: a size was trusted before it was checked");
  } catch (const std::exception& e) {
    annulus::fuzz::finding(std::string("an exception that is not an annulus::error: ") + e.what());
  }
  return 0;
}
