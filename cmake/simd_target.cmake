# annulus's kernels follow the instruction set of the translation unit that
# includes them. Our own tests, benchmarks and examples use the host's
# (-march=native) unless ANNULUS_NATIVE is OFF; users choose their own flags.
# Configure says which SIMD target a build gets, and warns on the SSE2 baseline.
include(CheckCXXSourceRuns)

function(annulus_report_simd_target target)
  set(_flags "")
  if(ANNULUS_NATIVE)
    include(CheckCXXCompilerFlag)
    check_cxx_compiler_flag(-march=native ANNULUS_HAS_MARCH_NATIVE)
    if(ANNULUS_HAS_MARCH_NATIVE)
      set(_flags -march=native)
      target_compile_options(${target} INTERFACE -march=native)
    endif()
  endif()
  # Ask the compiler which xsimd architecture these flags select.
  set(_probe ${CMAKE_BINARY_DIR}/annulus_simd_probe.cpp)
  file(WRITE ${_probe} "#include <xsimd/xsimd.hpp>\n#include <cstdio>\nint main(){std::puts(xsimd::default_arch::name());}\n")
  get_target_property(_xsimd_inc xsimd INTERFACE_INCLUDE_DIRECTORIES)
  try_run(_run _compiled ${CMAKE_BINARY_DIR}/annulus_simd_probe ${_probe}
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${_xsimd_inc}"
    COMPILE_DEFINITIONS ${_flags} -std=c++20
    RUN_OUTPUT_VARIABLE _arch)
  string(STRIP "${_arch}" _arch)
  if(NOT _compiled OR NOT _run EQUAL 0)
    message(WARNING "annulus: could not determine the SIMD target")
  elseif(_arch MATCHES "^sse2$|^sse3$|^ssse3$")
    message(WARNING "annulus: kernels compile for the ${_arch} baseline only and will run slowly; "
                    "pass -march=native (or -mavx2 -mfma) or turn ANNULUS_NATIVE on")
  else()
    message(STATUS "annulus: SIMD target for tests, bench and examples: ${_arch}")
  endif()
  set(ANNULUS_SIMD_TARGET "${_arch}" PARENT_SCOPE)
endfunction()
