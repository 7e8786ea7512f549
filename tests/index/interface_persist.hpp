// The persistence tests every index type takes (save, load, view; issue 17):
// a loaded index answers bit for bit as the saved one and stays mutable;
// a view answers the same, refuses changes and verifies on request;
// another kind or metric, every single-bit flip and truncations are refused
// with format_error, never a crash.
//
// Included by a test file after defining ANNULUS_PERSIST_TYPES.
#ifndef ANNULUS_PERSIST_TYPES
#error "define ANNULUS_PERSIST_TYPES (a list of index types) before including this file"
#endif

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "annulus/index/concepts.hpp"
#include "index/index_types.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/reseal.hpp"
#include "support/temp_dir.hpp"

namespace annulus::testing {

// Every answer an index gives to `queries` that a file must preserve: top-k
// (labels and distances, bit for bit), a filtered top-k, and the stored
// labels. Searches run on one thread, in order.
template <class Index>
struct answers {
  std::vector<std::vector<neighbor>> plain, filtered;
  std::vector<label_t> labels;
  bool operator==(const answers&) const = default;
};
template <class Index>
answers<Index> answers_of(const Index& idx, const matrix<float>& queries, std::size_t k) {
  answers<Index> a;
  const auto params = test_setup<Index>::search();
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    a.plain.push_back(idx.search(queries.row(i), k, params));
    a.filtered.push_back(idx.search(queries.row(i), k, params, [](label_t l) { return l % 3 != 0; }));
  }
  a.labels = idx.labels();
  std::sort(a.labels.begin(), a.labels.end());
  return a;
}

inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// An index that has lived: built, then labels of its own added, some removed,
// one updated, so every section (labels, free slots, tombstones) holds something.
template <class Index>
Index lived_index(const matrix<float>& base, std::size_t extra) {
  Index idx = Index::build(base.view().rows_slice(0, base.rows() - extra), test_setup<Index>::build(), 1);
  std::vector<label_t> labels(extra);
  for (std::size_t i = 0; i < extra; ++i) labels[i] = 1'000'000 + 7 * i;
  idx.add(base.view().rows_slice(base.rows() - extra, extra), labels, 1);
  for (label_t l = 0; l < base.rows() - extra; l += 11) idx.remove(l);
  idx.remove(labels[1]);
  idx.update(labels[0], base.row(5));
  return idx;
}

// The same index kind over another metric.
template <class Index, class M2>
struct with_metric;
template <metric M, class M2>
struct with_metric<flat_index<M>, M2> { using type = flat_index<M2>; };
template <metric M, class Walk, class M2>
struct with_metric<hnsw_index<M, Walk>, M2> { using type = hnsw_index<M2, Walk>; };
template <metric M, class M2>
struct with_metric<ivf_flat_index<M>, M2> { using type = ivf_flat_index<M2>; };
template <metric M, class M2>
struct with_metric<ivf_pq_index<M>, M2> { using type = ivf_pq_index<M2>; };
template <metric M, class M2>
struct with_metric<kd_tree_index<M>, M2> { using type = kd_tree_index<M2>; };
template <metric M, class M2>
struct with_metric<rp_forest_index<M>, M2> { using type = rp_forest_index<M2>; };
template <metric M, class M2>
struct with_metric<lsh_index<M>, M2> { using type = lsh_index<M2>; };

// Rows for the bit-flip test: as few as the index builds from.
template <class Index>
constexpr std::size_t small_rows() {
  if constexpr (requires { test_setup<Index>::small_rows; })
    return test_setup<Index>::small_rows;
  else
    return 40;
}

}  // namespace annulus::testing

TEMPLATE_TEST_CASE("persist: a loaded index answers bit for bit as the saved one, and stays mutable",
                   "[persist]", ANNULUS_PERSIST_TYPES) {
  using namespace annulus::testing;
  const auto base = with_duplicates(clustered(1200, 16, 8, 31), 0.02);
  const auto queries = clustered(25, 16, 8, 32);
  temp_dir dir;
  TestType idx = lived_index<TestType>(base, 100);
  idx.set_k_policy(annulus::k_policy::at_most);
  const auto before = answers_of(idx, queries, 10);

  idx.save(dir / "index.annulus");
  std::stringstream stream;
  idx.save(stream);
  CHECK(stream.str() == file_bytes(dir / "index.annulus"));  // one format, wherever it goes

  TestType from_file = TestType::load(dir / "index.annulus");
  TestType from_stream = TestType::load(stream);
  for (const TestType* loaded : {&from_file, &from_stream}) {
    CHECK(loaded->dim() == idx.dim());
    CHECK(loaded->size() == idx.size());
    CHECK(loaded->get_k_policy() == annulus::k_policy::at_most);
    CHECK(answers_of(*loaded, queries, 10) == before);
    CHECK(loaded->get(1'000'000) == idx.get(1'000'000));
    CHECK(!loaded->read_only());
  }
  // The same changes to the saved and the loaded index: the same answers.
  for (TestType* t : {&idx, &from_file}) {
    t->add(queries.view().rows_slice(0, 10), std::vector<annulus::label_t>{2'000'000, 2'000'001, 2'000'002, 2'000'003,
                                                                             2'000'004, 2'000'005, 2'000'006, 2'000'007,
                                                                             2'000'008, 2'000'009}, 1);
    t->remove(1'000'000 + 7 * 50);
    t->update(2, queries.row(20));
  }
  CHECK(answers_of(from_file, queries, 10) == answers_of(idx, queries, 10));
  // Saving what was loaded gives the same bytes as saving the original.
  std::stringstream a, b;
  idx.save(a);
  from_file.save(b);
  CHECK(a.str() == b.str());
}

TEMPLATE_TEST_CASE("persist: another kind or metric is refused by name", "[persist]", ANNULUS_PERSIST_TYPES) {
  using namespace annulus;
  using namespace annulus::testing;
  using M = typename TestType::metric_type;
  const auto base = clustered(300, 16, 4, 33);
  std::stringstream other_kind, other_metric;
  if constexpr (std::is_same_v<TestType, flat_index<M>>) {
    hnsw_index<l2>::build(base.view()).save(other_kind);
  } else {
    flat_index<M>::build(base.view()).save(other_kind);
  }
  CHECK_THROWS_MATCHES(TestType::load(other_kind), format_error,
                       message_has(std::string("expected '") + std::string(TestType::file_kind) + "'"));
  if constexpr (requires { typename with_metric<TestType, l2>::type; }) {
    using other = typename with_metric<TestType, std::conditional_t<M::kind == metric_kind::l2, cosine, l2>>::type;
    other::build(base.view(), test_setup<other>::build()).save(other_metric);
    CHECK_THROWS_MATCHES(TestType::load(other_metric), format_error,
                         message_has(M::kind == metric_kind::l2 ? "over cosine, expected l2" : "over l2, expected"));
  }
}

TEMPLATE_TEST_CASE("persist: a view answers as the loaded index, refuses changes, verifies on request",
                   "[persist][view]", ANNULUS_PERSIST_TYPES) {
  using namespace annulus::testing;
  if constexpr (requires { requires TestType::viewable; }) {
    const auto base = clustered(1200, 16, 8, 34);
    const auto queries = clustered(25, 16, 8, 35);
    temp_dir dir;
    const TestType idx = lived_index<TestType>(base, 100);
    idx.save(dir / "index.annulus");
    const TestType view = TestType::view(dir / "index.annulus");
    CHECK(view.read_only());
    CHECK(answers_of(view, queries, 10) == answers_of(idx, queries, 10));
    CHECK_NOTHROW(view.verify());
    TestType changing = TestType::view(dir / "index.annulus");
    CHECK_THROWS_MATCHES(changing.add(queries.view().rows_slice(0, 1), std::vector<annulus::label_t>{5}), annulus::read_only_error,
                         message_has("read-only view of"));
    CHECK_THROWS_AS(changing.remove(1'000'000), annulus::read_only_error);
    CHECK_THROWS_AS(changing.update(1'000'000, queries.row(0)), annulus::read_only_error);
    CHECK(answers_of(changing, queries, 10) == answers_of(idx, queries, 10));

    // A damaged byte in the middle of the file (the bulk sections): load
    // refuses it at once, a view opens and verify() finds it.
    std::string bytes = file_bytes(dir / "index.annulus");
    bytes[bytes.size() / 2] ^= 1;
    write_bytes(dir / "damaged.annulus", bytes);
    CHECK_THROWS_AS(TestType::load(dir / "damaged.annulus"), annulus::format_error);
    bool refused = false;
    try {
      TestType::view(dir / "damaged.annulus").verify();
    } catch (const annulus::format_error& e) {
      refused = true;
      CHECK_THAT(std::string(e.what()), Catch::Contains("damaged.annulus"));
    }
    CHECK(refused);
  } else {
    SUCCEED("no view for this index kind");
  }
}

TEMPLATE_TEST_CASE("persist: every single-bit flip and every truncation is refused", "[persist][corrupt]",
                   ANNULUS_PERSIST_TYPES) {
  using namespace annulus::testing;
  // A small index, so that every bit is tried.
  const auto base = clustered(small_rows<TestType>(), 8, 2, 36);
  const auto idx = lived_index<TestType>(base, 6);
  std::stringstream saved;
  idx.save(saved);
  const std::string good = saved.str();
  {
    std::istringstream in(good);
    REQUIRE_NOTHROW(TestType::load(in));
  }
  std::size_t refused = 0;
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string bad = good;
    bad[bit / 8] ^= char(1 << (bit % 8));
    std::istringstream in(bad);
    try {
      TestType::load(in);
      FAIL_CHECK("a flip of bit " << bit << " (byte " << bit / 8 << " of " << good.size() << ") was accepted");
    } catch (const annulus::format_error&) {
      ++refused;
    }
  }
  CHECK(refused == good.size() * 8);
  for (std::size_t n = 0; n < good.size(); n += 8) {
    std::istringstream in(good.substr(0, n));
    INFO("the first " << n << " of " << good.size() << " bytes");
    CHECK_THROWS_AS(TestType::load(in), annulus::format_error);
  }
}

TEMPLATE_TEST_CASE("persist: damage behind valid checksums is refused or harmless", "[persist][corrupt]",
                   ANNULUS_PERSIST_TYPES) {
  // Bytes changed and every checksum recomputed (support/reseal.hpp), so the
  // change reaches the loader's own checks of counts, ids, offsets and trees.
  // Each result must be a format_error, or an index that searches, saves and
  // changes without fault (under the sanitizers in CI: no out-of-bounds read).
  using namespace annulus::testing;
  STATIC_REQUIRE(annulus::persistent_index<TestType>);
  const auto base = clustered(small_rows<TestType>(), 8, 2, 37);
  const auto idx = lived_index<TestType>(base, 6);
  std::stringstream saved;
  idx.save(saved);
  const std::string good = saved.str();
  const std::size_t stride = std::max<std::size_t>(1, good.size() / 500);
  std::size_t refused = 0, loaded = 0;
  for (std::size_t at = 0; at < good.size(); at += stride)
    for (const unsigned char value : {0x00, 0xff}) {
      std::string bad = good;
      if (static_cast<unsigned char>(bad[at]) == value) continue;
      bad[at] = static_cast<char>(value);
      reseal(bad);
      std::istringstream in(bad);
      try {
        TestType t = TestType::load(in);
        ++loaded;
        t.set_k_policy(annulus::k_policy::at_most);
        t.search(base.row(0), 3, test_setup<TestType>::search());
        t.search(base.row(1), 3, test_setup<TestType>::search(), [](annulus::label_t l) { return l % 2 == 0; });
        std::ostringstream again;
        t.save(again);
        t.add(base.row(2), 9'000'000);
      } catch (const annulus::error&) {
        ++refused;  // format_error at load; an add may refuse what a damaged value implies (a norm above M)
      }
    }
  INFO(refused << " refused, " << loaded << " loaded");
  CHECK(refused > 0);
}
