# annulus's own tests, benchmarks and examples are compiled for this CPU
# (-march=native) unless ANNULUS_NATIVE is OFF; users choose their own flags.
# Nothing is run at configure time, so cross-compiling configures as usual.
#
# Without -march the kernels still run fast: a baseline x86-64 build picks
# AVX-512, AVX2 + FMA or SSE2 at run time (include/annulus/core/dispatch.hpp).
function(annulus_use_native_flags target)
  if(NOT ANNULUS_NATIVE)
    message(STATUS "annulus: tests, bench and examples use the compiler's default target "
                   "(CMAKE_CXX_FLAGS: '${CMAKE_CXX_FLAGS}'); on x86-64 below AVX2 the kernels dispatch at run time")
    return()
  endif()
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag(-march=native ANNULUS_HAS_MARCH_NATIVE)
  if(ANNULUS_HAS_MARCH_NATIVE)
    target_compile_options(${target} INTERFACE -march=native)
    message(STATUS "annulus: tests, bench and examples compile for this CPU (-march=native)")
  else()
    message(STATUS "annulus: the compiler takes no -march=native; tests, bench and examples use its default target")
  endif()
endfunction()
