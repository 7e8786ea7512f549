// libFuzzer harness for annulus-bench's ann-benchmarks loader
// (bench/annulus_bench/hdf5_file.cpp and dataset.cpp).
//
// Each input is written to input.hdf5 and read the way annulus-bench reads it:
// the root attribute "distance", each of train, test, neighbors and distances
// through read_float and read_int32, then load_dataset with k = 10, which
// checks the shipped ground truth or computes it (cached in this process's
// directory, emptied after each input). libhdf5 is not instrumented: a crash
// inside it is still reported (the stack names libhdf5), its branches do not
// guide the fuzzer.
//
// Expected: a call returns, or throws usage_error or an annulus::error. A
// finding: any other exception, a crash, a sanitizer report, an allocation over
// -malloc_limit_mb, a hang (-timeout), or a loaded dataset that breaks
// load_dataset's promises (dataset.hpp): base and queries of one dimension,
// at least k true neighbours per query, ids within the base.
#include <annulus_bench/dataset.hpp>
#include <annulus_bench/hdf5_file.hpp>
#include <annulus_bench/params.hpp>
#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include "input_file.hpp"

namespace {

using annulus::fuzz::finding;

template <class F>
void expect_success_or_refusal(F&& call) {
  try {
    call();
  } catch (const annulus::bench::usage_error&) {
  } catch (const annulus::error&) {
  }
}

void check_dataset(const annulus::bench::dataset& ds, std::size_t k) {
  const auto shape = [](const auto& m) {
    return std::to_string(m.rows()) + " x " + std::to_string(m.cols());
  };
  if (ds.base.empty() || ds.queries.empty() || ds.base.cols() != ds.queries.cols())
    finding("load_dataset returned base " + shape(ds.base) + " and queries " + shape(ds.queries));
  if (ds.truth.rows() != ds.queries.rows() || ds.truth.cols() < k ||
      ds.truth_dist.rows() != ds.truth.rows() || ds.truth_dist.cols() != ds.truth.cols())
    finding("load_dataset returned ground truth " + shape(ds.truth) + " and distances " +
            shape(ds.truth_dist) + " for " + shape(ds.queries) + " queries and k = " +
            std::to_string(k));
  for (std::size_t i = 0; i < ds.truth.size(); ++i)
    if (ds.truth.data()[i] >= static_cast<std::int64_t>(ds.base.rows()))
      finding("load_dataset returned neighbour id " + std::to_string(ds.truth.data()[i]) +
              " for a base of " + std::to_string(ds.base.rows()) + " rows");
}

}  // namespace

// libhdf5 zeroes a fresh metadata cache of about a megabyte for every open
// file; past its free lists' default limits that is new pages from the kernel
// each time, two thirds of each run. Unlimited lists reuse the memory.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const annulus::fuzz::input_file file("annulus-hdf5-fuzz", "input.hdf5");
  file.write(data, size);

  expect_success_or_refusal([&] {
    const annulus::bench::hdf5_file h5(file.path());
    expect_success_or_refusal([&] { h5.root_attribute("distance"); });
    for (const char* name : {"train", "test", "neighbors", "distances"}) {
      expect_success_or_refusal([&] { h5.read_float(name); });
      expect_success_or_refusal([&] { h5.read_int32(name); });
    }
  });

  constexpr std::size_t k = 10;
  const auto cache = file.dir() / "ground-truth";
  expect_success_or_refusal([&] {
    check_dataset(annulus::bench::load_dataset(
                      {.path = file.path().string(), .k = k, .out_dir = cache, .threads = 1}),
                  k);
  });
  std::error_code ignored;
  std::filesystem::remove_all(cache, ignored);
  return 0;
}
