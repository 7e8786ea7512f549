#include <catch2/catch.hpp>

#include "annulus_bench/params.hpp"

using annulus::bench::params;
using annulus::bench::usage_error;

TEST_CASE("bench params parse key=value lists", "[bench]") {
  const params p = params::parse("m=32,ef_construction=400,name=x", "hnsw");
  CHECK(p.get_size("m", 16) == 32);
  CHECK(p.get_size("ef_construction", 200) == 400);
  CHECK(p.get_size("absent", 7) == 7);
  CHECK(p.get_string("name", "") == "x");
  CHECK(p.str() == "ef_construction=400,m=32,name=x");
  CHECK_NOTHROW(p.require_all_used("hnsw"));
  CHECK(params::parse("", "x").empty());
}

TEST_CASE("bench params reject typos and malformed values", "[bench]") {
  CHECK_THROWS_AS(params::parse("m", "hnsw"), usage_error);
  CHECK_THROWS_AS(params::parse("=3", "hnsw"), usage_error);
  CHECK_THROWS_WITH(params::parse("m=1,m=2", "hnsw"), Catch::Contains("'m' is given twice"));
  const params p = params::parse("m=x,ef=-3,r=0.5", "hnsw");
  CHECK_THROWS_WITH(p.get_size("m", 1), Catch::Contains("m=x"));
  CHECK_THROWS_AS(p.get_size("ef", 1), usage_error);
  CHECK(p.get_double("r", 0) == 0.5);
  const params typo = params::parse("m=16,ef_constrution=100", "hnsw");
  typo.get_size("m", 16);
  CHECK_THROWS_WITH(typo.require_all_used("hnsw build parameters"),
                    Catch::Contains("unknown parameter ef_constrution"));
}

TEST_CASE("bench params merge defaults with user values", "[bench]") {
  const params d = params::parse("m=16,ef_construction=200", "defaults");
  const params m = d.merged(params::parse("m=32", "user"));
  CHECK(m.str() == "ef_construction=200,m=32");
}
