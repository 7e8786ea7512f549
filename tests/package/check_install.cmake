# Installs annulus from BUILD into a fresh prefix under WORK, then configures
# and builds tests/package (examples/quickstart.cpp via find_package) against
# that prefix alone, and runs it.
file(REMOVE_RECURSE "${WORK}")
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGV}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD}" --prefix "${WORK}/prefix")
run(${CMAKE_COMMAND} -S "${SOURCE}/tests/package" -B "${WORK}/build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${WORK}/prefix -DANNULUS_EXAMPLE=${SOURCE}/examples/quickstart.cpp)
run(${CMAKE_COMMAND} --build "${WORK}/build")
run("${WORK}/build/quickstart")
