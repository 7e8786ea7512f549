// The headers nearly every test file includes, compiled once per test binary
// (target_precompile_headers in tests/CMakeLists.txt) instead of once per
// file: about 10 of a test file's compile seconds, in every preset CI builds.
// Files that must see only their own includes (core/no_eigen_test.cpp) or are
// compiled with other flags than their binary skip it.
#pragma once

#include <catch2/catch.hpp>

#include "annulus/annulus.hpp"
#include "index/index_types.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
