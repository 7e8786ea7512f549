// The compatibility promise (README, "Saved files"): every file an earlier
// format version wrote keeps loading and answering as it did. The files are
// committed under tests/data/format-v<N>/, one small index per kind and
// metric, each beside the queries and answers it gave when it was written
// (NAME.answers: query vectors, then labels and distances as hex floats).
//
// Writing the files of the current version (once per format version, then
// committed; never rewrite an older version's; a kind added later adds its
// own file to the current version's directory, the others left as they are):
//   ANNULUS_WRITE_FIXTURES=tests/data/format-v1 build/release/tests/annulus_tests "[.write-fixtures]"
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "index/index_types.hpp"
#include "support/data.hpp"

#ifndef ANNULUS_FIXTURE_DIR
#error "tests/CMakeLists.txt defines ANNULUS_FIXTURE_DIR (tests/data)"
#endif

using namespace annulus;

namespace {

constexpr std::size_t fixture_rows = 60, fixture_dim = 8, fixture_queries = 5, fixture_k = 5;

// One line per query: its vector, then k (label, distance) pairs, floats in
// hex so they round-trip exactly.
std::string answers_text(const matrix<float>& queries, const std::vector<std::vector<neighbor>>& answers) {
  std::ostringstream out;
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    for (const float v : queries.row(i)) out << std::hexfloat << v << ' ';
    out << "|";
    for (const neighbor& n : answers[i]) out << ' ' << n.label << ' ' << std::hexfloat << n.distance;
    out << '\n';
  }
  return out.str();
}

struct expected {
  matrix<float> queries;
  std::vector<std::vector<neighbor>> answers;
};

expected read_answers(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE(in);
  expected e;
  std::vector<std::vector<float>> rows;
  std::string line;
  while (std::getline(in, line)) {
    const auto bar = line.find('|');
    REQUIRE(bar != std::string::npos);
    std::istringstream vec(line.substr(0, bar)), res(line.substr(bar + 1));
    std::vector<float> row;
    for (std::string t; vec >> t;) row.push_back(std::strtof(t.c_str(), nullptr));
    rows.push_back(row);
    std::vector<neighbor> hits;
    label_t l;
    for (std::string d; res >> l >> d;) hits.push_back({l, std::strtof(d.c_str(), nullptr)});
    e.answers.push_back(hits);
  }
  e.queries = from_rows(rows);
  return e;
}

// Each fixture: a kind over a metric, built from the same small data, then
// changed (labelled adds, removes, an update) so every section holds something.
template <class Index>
Index fixture_index() {
  // ivf_pq's test setup trains a 7-bit PQ: more rows than the others need.
  std::size_t rows = fixture_rows;
  if constexpr (requires { annulus::testing::test_setup<Index>::small_rows; })
    rows = std::max(rows, annulus::testing::test_setup<Index>::small_rows + 10);
  const auto base = annulus::testing::clustered(rows, fixture_dim, 3, 41);
  Index idx = Index::build(base.view().rows_slice(0, rows - 10), annulus::testing::test_setup<Index>::build(), 1);
  std::vector<label_t> labels(10);
  for (std::size_t i = 0; i < 10; ++i) labels[i] = 5000 + 3 * i;
  idx.add(base.view().rows_slice(rows - 10, 10), labels, 1);
  idx.remove(7);
  idx.remove(5003);
  idx.update(5000, base.row(2));
  return idx;
}

template <class Index>
std::vector<std::vector<neighbor>> answers_of(const Index& idx, const matrix<float>& queries) {
  std::vector<std::vector<neighbor>> out;
  for (std::size_t i = 0; i < queries.rows(); ++i)
    out.push_back(idx.search(queries.row(i), fixture_k, annulus::testing::test_setup<Index>::search()));
  return out;
}

template <class Index>
void write_fixture(const std::filesystem::path& dir, const std::string& name) {
  const Index idx = fixture_index<Index>();
  const auto queries = annulus::testing::clustered(fixture_queries, fixture_dim, 3, 42);
  idx.save(dir / (name + ".annulus"));
  std::ofstream(dir / (name + ".answers")) << answers_text(queries, answers_of(idx, queries));
}

// How far another build's distances may lie from the writing build's: the
// summation order of another instruction set's kernels, or another
// optimisation level's contractions (the matrix builds load files an
// AVX-512 release build wrote). mips_index recovers a dot from an l2
// distance near |q|^2 + M^2, so it inherits that sum's rounding
// (index/mips.hpp): 4 units in its last place.
template <class Index>
double margin_for(const Index& idx, std::span<const float> q) {
  if constexpr (requires { idx.max_norm(); }) {
    double sum = idx.max_norm() * idx.max_norm();
    for (const float x : q) sum += double(x) * x;
    return 4 * sum * std::numeric_limits<float>::epsilon();
  } else {
    return 1e-5;
  }
}

// The same labels; distances within margin_for of the written ones.
template <class Index>
void same_answers(const Index& idx, const matrix<float>& queries, const std::vector<std::vector<neighbor>>& want) {
  const auto got = answers_of(idx, queries);
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("query " << i);
    REQUIRE(got[i].size() == want[i].size());
    const double margin = margin_for(idx, queries.row(i));
    for (std::size_t r = 0; r < got[i].size(); ++r) {
      CHECK(got[i][r].label == want[i][r].label);
      CHECK(got[i][r].distance == Approx(want[i][r].distance).epsilon(1e-5).margin(margin));
    }
  }
}

template <class Index>
void check_fixture(const std::filesystem::path& dir, const std::string& name) {
  INFO(dir.filename().string() << "/" << name);
  const auto file = dir / (name + ".annulus");
  REQUIRE(std::filesystem::exists(file));
  const expected e = read_answers(dir / (name + ".answers"));
  const Index loaded = Index::load(file);
  same_answers(loaded, e.queries, e.answers);
  if constexpr (requires { requires Index::viewable; }) {
    const Index viewed = Index::view(file);
    same_answers(viewed, e.queries, e.answers);
    CHECK_NOTHROW(viewed.verify());
  }
}

// Every kind and metric with a fixture: (type, file name).
template <class Visit>
void each_fixture(Visit&& visit) {
  visit.template operator()<flat_index<l2>>("flat-l2");
  visit.template operator()<flat_index<inner_product>>("flat-ip");
  visit.template operator()<flat_index<cosine>>("flat-cosine");
  visit.template operator()<hnsw_index<l2>>("hnsw-l2");
  visit.template operator()<hnsw_index<inner_product>>("hnsw-ip");
  visit.template operator()<hnsw_index<cosine>>("hnsw-cosine");
  visit.template operator()<ivf_flat_index<l2>>("ivf_flat-l2");
  visit.template operator()<ivf_flat_index<inner_product>>("ivf_flat-ip");
  visit.template operator()<ivf_flat_index<cosine>>("ivf_flat-cosine");
  visit.template operator()<ivf_pq_index<l2>>("ivf_pq-l2");
  visit.template operator()<ivf_pq_index<inner_product>>("ivf_pq-ip");
  visit.template operator()<ivf_pq_index<cosine>>("ivf_pq-cosine");
  visit.template operator()<kd_tree_index<l2>>("kd_tree-l2");
  visit.template operator()<kd_tree_index<cosine>>("kd_tree-cosine");
  visit.template operator()<rp_forest_index<l2>>("rp_forest-l2");
  visit.template operator()<rp_forest_index<inner_product>>("rp_forest-ip");
  visit.template operator()<rp_forest_index<cosine>>("rp_forest-cosine");
  visit.template operator()<lsh_index<l2>>("lsh-l2");
  visit.template operator()<lsh_index<inner_product>>("lsh-ip");
  visit.template operator()<lsh_index<cosine>>("lsh-cosine");
  visit.template operator()<mips_index<flat_index<l2>>>("mips-flat");
  visit.template operator()<mips_index<hnsw_index<l2>>>("mips-hnsw");
  visit.template operator()<banded_mips_index<>>("banded_mips-hnsw");  // added with the kind (issue 20)
  visit.template operator()<hnsw_sq8_index<l2>>("hnsw_sq8-l2");        // added with the kind (issue 20)
  visit.template operator()<hnsw_sq8_index<inner_product>>("hnsw_sq8-ip");
  visit.template operator()<hnsw_sq8_index<cosine>>("hnsw_sq8-cosine");
  visit.template operator()<ivf_pq_fs_index<l2>>("ivf_pq_fs-l2");            // added with the kind (issue 20)
  visit.template operator()<ivf_pq_fs_index<inner_product>>("ivf_pq_fs-ip");
  visit.template operator()<ivf_pq_fs_index<cosine>>("ivf_pq_fs-cosine");
}

}  // namespace

TEST_CASE("persist: files of format version 1 load and answer as when they were written", "[persist][compat]") {
  const std::filesystem::path dir = std::filesystem::path(ANNULUS_FIXTURE_DIR) / "format-v1";
  std::size_t checked = 0;
  each_fixture([&]<class Index>(const std::string& name) {
    check_fixture<Index>(dir, name);
    ++checked;
  });
  CHECK(checked == 29);
}

TEST_CASE("persist: write the fixtures of the current format version", "[.write-fixtures]") {
  const char* dir = std::getenv("ANNULUS_WRITE_FIXTURES");
  if (!dir) FAIL("set ANNULUS_WRITE_FIXTURES to the directory to write (tests/data/format-v<N>)");
  std::filesystem::create_directories(dir);
  each_fixture([&]<class Index>(const std::string& name) { write_fixture<Index>(dir, name); });
}
