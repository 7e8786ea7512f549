# The dependencies of annulus::annulus, found the same way by our own build and
# by the installed annulusConfig.cmake.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(Eigen3 3.4 NO_MODULE)
find_dependency(xsimd 8)
# Debian's xsimd 8.1 target links a target named `xtl` without finding it (xtl is
# only needed for xtl's complex types, which annulus does not use). Without
# libxtl-dev the bare name reaches the linker as -lxtl and fails, so stand in an
# empty target for it.
if(NOT TARGET xtl)
  find_package(xtl QUIET CONFIG)
endif()
if(NOT TARGET xtl)
  add_library(xtl INTERFACE IMPORTED)
endif()
# xxHash (libxxhash-dev) checksums saved indexes (core/checksum.hpp). annulus
# compiles it into the including program (XXH_INLINE_ALL): only the header is
# needed, never the library.
if(NOT TARGET annulus_xxhash)
  find_path(ANNULUS_XXHASH_INCLUDE_DIR xxhash.h)
  if(NOT ANNULUS_XXHASH_INCLUDE_DIR)
    message(FATAL_ERROR "annulus: xxhash.h not found (Debian: apt-get install libxxhash-dev)")
  endif()
  add_library(annulus_xxhash INTERFACE IMPORTED)
  set_target_properties(annulus_xxhash PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${ANNULUS_XXHASH_INCLUDE_DIR}")
endif()
