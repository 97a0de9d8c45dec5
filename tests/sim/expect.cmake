# Runs goldylox-sim and checks its exit code and output (ctest alone can check one or the other).
#   -DSIM=<path> -DARGS=<;-list> -DEXIT=<code> -DMATCH=<regex> [-DFILE=<path> -DFILE_MATCH=<regex>]
#   [-DTWICE=1: a second run, in a new process, must print the same]
execute_process(COMMAND "${SIM}" ${ARGS}
  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT code STREQUAL EXIT)
  message(FATAL_ERROR "goldylox-sim exited ${code}, expected ${EXIT}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT "${out}${err}" MATCHES "${MATCH}")
  message(FATAL_ERROR "output does not match '${MATCH}'\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED FILE)
  file(READ "${FILE}" content)
  if(NOT content MATCHES "${FILE_MATCH}")
    message(FATAL_ERROR "${FILE} does not match '${FILE_MATCH}'")
  endif()
endif()
if(TWICE)
  execute_process(COMMAND "${SIM}" ${ARGS} RESULT_VARIABLE code2 OUTPUT_VARIABLE out2)
  if(NOT out2 STREQUAL out)
    message(FATAL_ERROR "a second run printed something else\nfirst:\n${out}\nsecond:\n${out2}")
  endif()
endif()
