# The compile-and-test matrix: one representative test binary per target
# (kernels, GEMM, quantizers, and a saved index of every kind and metric
# loaded and searched: persist_compat_test.cpp), run
# where the host can run it. The "matrix-*" presets select a target with
# ANNULUS_MATRIX_TARGET and its compile flags; .ci/run runs them all.
#
#   x86-64, x86-64-v2, x86-64-v3, x86-64-v4  -march=<target>; run natively when
#       /proc/cpuinfo has the level's features, else under qemu-x86_64 (a CPU
#       model up to Haswell: QEMU emulates no AVX-512), else compiled only and
#       the test log says "<target>: compiled, not run: host lacks <feature>";
#   aarch64   cross-compiled (cmake/toolchains/aarch64-linux-gnu.cmake), run
#       under the toolchain's emulator (qemu-aarch64).
# The baseline x86-64 build dispatches at run time; it is run once more under
# qemu's Nehalem model (no AVX: SSE2 kernels) and once under Haswell (AVX2).

# The /proc/cpuinfo features each x86-64 level needs, and the QEMU model
# that has them.
set(_annulus_level_x86-64 "")
set(_annulus_level_x86-64-v2 "cx16;lahf_lm;popcnt;sse4_1;sse4_2;ssse3")
set(_annulus_level_x86-64-v3 "avx;avx2;bmi1;bmi2;f16c;fma;abm;movbe;xsave")
set(_annulus_level_x86-64-v4 "avx512f;avx512bw;avx512cd;avx512dq;avx512vl")
set(_annulus_qemu_x86-64-v2 Nehalem)
set(_annulus_qemu_x86-64-v3 Haswell)

# The first feature of `level` (and the levels below it) this host lacks, or "".
function(_annulus_missing_feature level out)
  set(${out} "" PARENT_SCOPE)
  if(level STREQUAL "x86-64")
    return()
  endif()
  if(NOT EXISTS /proc/cpuinfo)
    set(${out} "/proc/cpuinfo" PARENT_SCOPE)
    return()
  endif()
  file(STRINGS /proc/cpuinfo _flags REGEX "^flags" LIMIT_COUNT 1)
  string(REGEX REPLACE "^flags[ \t]*:[ \t]*" "" _flags "${_flags}")
  string(REPLACE " " ";" _flags "${_flags}")
  set(_need "")
  foreach(_l x86-64-v2 x86-64-v3 x86-64-v4)
    list(APPEND _need ${_annulus_level_${_l}})
    if(_l STREQUAL level)
      break()
    endif()
  endforeach()
  foreach(_f IN LISTS _need)
    if(NOT _f IN_LIST _flags)
      set(${out} ${_f} PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

# A test that only reports why the binary was not run (CTest: "Skipped").
function(_annulus_not_run name reason)
  message(STATUS "annulus: ${reason}")
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -E echo "${reason}")
  set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION "not run" LABELS "matrix;${ANNULUS_MATRIX_TARGET}")
endfunction()

# The binary under `runner` (a command list, empty = natively): the unit
# tests (those matching the Catch test spec in ARGN, if any), and
# simd_target() matched against `expect`. `cap` is ANNULUS_SIMD_MAX for both
# ("" = unset, whatever the calling environment has).
function(_annulus_matrix_run name runner expect cap)
  add_test(NAME ${name}.unit COMMAND ${runner} $<TARGET_FILE:annulus_matrix_tests> ${ARGN})
  add_test(NAME ${name}.simd_target COMMAND ${runner} $<TARGET_FILE:annulus_simd_report>)
  set_tests_properties(${name}.simd_target PROPERTIES PASS_REGULAR_EXPRESSION "${expect}")
  if(cap STREQUAL "")
    set(_env "ANNULUS_SIMD_MAX=unset:")
  else()
    set(_env "ANNULUS_SIMD_MAX=set:${cap}")
  endif()
  set_tests_properties(${name}.unit ${name}.simd_target PROPERTIES
    LABELS "matrix;${ANNULUS_MATRIX_TARGET}" ENVIRONMENT_MODIFICATION "${_env}")
endfunction()

# QEMU emulates AVX, AVX2 and FMA from version 7.2 (Debian 12's) on.
function(_annulus_qemu_x86_64 out)
  find_program(ANNULUS_QEMU_X86_64 NAMES qemu-x86_64 qemu-x86_64-static)
  set(${out} "" PARENT_SCOPE)
  if(NOT ANNULUS_QEMU_X86_64)
    return()
  endif()
  execute_process(COMMAND ${ANNULUS_QEMU_X86_64} --version OUTPUT_VARIABLE _v ERROR_QUIET)
  string(REGEX MATCH "version ([0-9]+\\.[0-9]+)" _m "${_v}")
  if(CMAKE_MATCH_1 AND CMAKE_MATCH_1 VERSION_GREATER_EQUAL 7.2)
    set(${out} ${ANNULUS_QEMU_X86_64} PARENT_SCOPE)
  else()
    message(STATUS "annulus: ${ANNULUS_QEMU_X86_64} is older than 7.2 (no AVX2): not used")
  endif()
endfunction()

function(annulus_add_matrix_tests)
  set(target "${ANNULUS_MATRIX_TARGET}")
  if(target STREQUAL "")
    message(FATAL_ERROR "ANNULUS_MATRIX_ONLY needs ANNULUS_MATRIX_TARGET (x86-64, x86-64-v2, x86-64-v3, x86-64-v4, aarch64)")
  endif()
  add_executable(annulus_matrix_tests ${ARGN})
  target_include_directories(annulus_matrix_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(annulus_matrix_tests PRIVATE annulus_dev annulus_catch_main)
  add_executable(annulus_simd_report simd_report.cpp)
  target_link_libraries(annulus_simd_report PRIVATE annulus_dev)

  # What simd_target() must say: the x86 baselines dispatch unless the flags
  # say otherwise; the others use their own set.
  if(target STREQUAL "x86-64" OR target STREQUAL "x86-64-v2")
    set(expect "chosen at run time")
  elseif(target STREQUAL "x86-64-v3")
    set(expect "avx2\\+fma \\(compiled in")
  elseif(target STREQUAL "x86-64-v4")
    set(expect "avx512 \\(compiled in")
  elseif(target STREQUAL "aarch64")
    set(expect "arm64\\+neon \\(compiled in")
  else()
    message(FATAL_ERROR "ANNULUS_MATRIX_TARGET: unknown target '${target}'")
  endif()
  if(CMAKE_CXX_FLAGS MATCHES "ANNULUS_SIMD_DISPATCH=0")
    set(expect "\\(compiled in")
  endif()

  if(CMAKE_CROSSCOMPILING)
    if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
      _annulus_not_run(matrix.${target}.not_run "${target}: compiled, not run: no emulator (CMAKE_CROSSCOMPILING_EMULATOR)")
      return()
    endif()
    _annulus_matrix_run(matrix.${target} "${CMAKE_CROSSCOMPILING_EMULATOR}" "${expect}" "")
    return()
  endif()

  _annulus_qemu_x86_64(qemu)
  _annulus_missing_feature(${target} missing)
  if(missing STREQUAL "")
    _annulus_matrix_run(matrix.${target} "" "${expect}" "")
  elseif(DEFINED _annulus_qemu_${target} AND qemu)
    message(STATUS "annulus: ${target}: host lacks ${missing}; tests run under qemu-x86_64 -cpu ${_annulus_qemu_${target}}")
    _annulus_matrix_run(matrix.${target} "${qemu};-cpu;${_annulus_qemu_${target}}" "${expect}" "")
  else()
    _annulus_not_run(matrix.${target}.not_run "${target}: compiled, not run: host lacks ${missing}")
  endif()

  if(NOT target STREQUAL "x86-64" OR CMAKE_CXX_FLAGS MATCHES "ANNULUS_SIMD_DISPATCH=0")
    return()
  endif()
  # The dispatching baseline with each lower set the host has, natively
  # (ANNULUS_SIMD_MAX), then on CPUs without and with AVX2 under QEMU.
  _annulus_missing_feature(x86-64-v3 no_avx2)
  if(no_avx2 STREQUAL "")
    _annulus_matrix_run(matrix.x86-64.cap_baseline "" "sse2 \\(chosen at run time.*capped" baseline)
  endif()
  _annulus_missing_feature(x86-64-v4 no_avx512)
  if(no_avx512 STREQUAL "")
    _annulus_matrix_run(matrix.x86-64.cap_avx2 "" "avx2\\+fma \\(chosen at run time.*capped" avx2)
  endif()
  if(NOT qemu)
    _annulus_not_run(matrix.x86-64.qemu.not_run "x86-64: dispatch under QEMU not run: no qemu-x86_64 7.2 or later (apt-get install qemu-user)")
    return()
  endif()
  _annulus_matrix_run(matrix.x86-64.nehalem "${qemu};-cpu;Nehalem" "sse2 \\(chosen at run time" "")
  # QEMU emulates AVX2 slowly: under Haswell the kernel, GEMM and quantizer
  # tests only (the runs above cover the saved indexes on the host's own sets).
  _annulus_matrix_run(matrix.x86-64.haswell "${qemu};-cpu;Haswell" "avx2\\+fma \\(chosen at run time" ""
                      "[kernels],[gemm],[centroids],[kmeans],[pq],[sq8],[fast_scan]")
endfunction()
