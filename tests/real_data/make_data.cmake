# Writes Fashion-MNIST as texmex files into OUT (once) and copies the ground truth beside them.
if(NOT EXISTS "${OUT}/base.fvecs" OR NOT EXISTS "${OUT}/query.fvecs")
  execute_process(COMMAND "${SCRIPT}" "${OUT}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "make-fashion-mnist failed (${rc})")
  endif()
endif()
file(COPY "${TRUTH}/groundtruth.ivecs" "${TRUTH}/groundtruth_dist.fvecs" DESTINATION "${OUT}")
