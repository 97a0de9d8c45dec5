# Runs a command-line tool (goldylox-sim, goldylox-inspect) and checks its exit code and output
# (ctest alone can check one or the other).
#   -DPROGRAM=<path> -DARGS=<;-list> -DEXIT=<code> -DMATCH=<regex>
#   [-DFILE=<path> -DFILE_MATCH=<regex>: a file it wrote must match]
#   [-DLINE=<regex> -DLINES=<n>: exactly n lines of stdout match LINE]
#   [-DTWICE=1: a second run, in a new process, must print the same]
get_filename_component(name "${PROGRAM}" NAME)
execute_process(COMMAND "${PROGRAM}" ${ARGS}
  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT code STREQUAL EXIT)
  message(FATAL_ERROR "${name} exited ${code}, expected ${EXIT}\nstdout:\n${out}\nstderr:\n${err}")
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
if(DEFINED LINE)
  # A list of lines; semicolons in the output would split lines, so they are escaped first.
  string(REPLACE ";" "\\;" lines "${out}")
  string(REPLACE "\n" ";" lines "${lines}")
  set(matching 0)
  foreach(line IN LISTS lines)
    if(line MATCHES "${LINE}")
      math(EXPR matching "${matching} + 1")
    endif()
  endforeach()
  if(NOT matching EQUAL LINES)
    message(FATAL_ERROR "${matching} lines match '${LINE}', expected ${LINES}\nstdout:\n${out}")
  endif()
endif()
if(TWICE)
  execute_process(COMMAND "${PROGRAM}" ${ARGS} RESULT_VARIABLE code2 OUTPUT_VARIABLE out2)
  if(NOT out2 STREQUAL out)
    message(FATAL_ERROR "a second run printed something else\nfirst:\n${out}\nsecond:\n${out2}")
  endif()
endif()
