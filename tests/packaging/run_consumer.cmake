# run_consumer.cmake -- configure, build and run tests/packaging/consumer against goldylox.
#
#   cmake -DMODE=find_package|add_subdirectory|fetchcontent
#         -DGOLDYLOX_SOURCE_DIR=<goldylox source tree>
#         -DGOLDYLOX_BUILD_DIR=<configured goldylox build tree>   (find_package mode)
#         -DCONSUMER_SOURCE_DIR=<tests/packaging/consumer>
#         -DWORK_DIR=<scratch directory, wiped first>
#         -DGENERATOR=<generator> [-DGENERATOR_PLATFORM=...] [-DGENERATOR_TOOLSET=...]
#         [-DMAKE_PROGRAM=...] [-DCXX_COMPILER=...] [-DCXX_COMPILER_LAUNCHER=...]
#         [-DCONFIG=<build type>]
#         -P run_consumer.cmake
#
# find_package mode installs the build tree into WORK_DIR/stage, checks that no installed CMake
# file mentions that path (or the source/build trees), moves the tree to WORK_DIR/prefix and
# consumes it from there: the package must be relocatable.

cmake_minimum_required(VERSION 3.25)

foreach(required IN ITEMS MODE GOLDYLOX_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${required}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory|fetchcontent)$")
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()
if(NOT DEFINED CONFIG OR CONFIG STREQUAL "")
  set(CONFIG Release)
endif()

# run(<description> <command>...): echo, run with inherited output, stop on failure.
function(run description)
  message(STATUS "[${MODE}] ${description}")
  execute_process(COMMAND ${ARGN}
    COMMAND_ECHO STDOUT
    RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "[${MODE}] ${description} failed: ${result}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(consumer_build_dir "${WORK_DIR}/build")
set(configure_args
  -S "${CONSUMER_SOURCE_DIR}"
  -B "${consumer_build_dir}"
  -G "${GENERATOR}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  "-DGOLDYLOX_CONSUME_MODE=${MODE}"
  "-DGOLDYLOX_SOURCE_DIR=${GOLDYLOX_SOURCE_DIR}"
  # Only the prefix given here may satisfy find_package(goldylox).
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(GENERATOR_PLATFORM)
  list(APPEND configure_args -A "${GENERATOR_PLATFORM}")
endif()
if(GENERATOR_TOOLSET)
  list(APPEND configure_args -T "${GENERATOR_TOOLSET}")
endif()
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(CXX_COMPILER_LAUNCHER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER}")
endif()

if(MODE STREQUAL "find_package")
  if(NOT DEFINED GOLDYLOX_BUILD_DIR OR NOT EXISTS "${GOLDYLOX_BUILD_DIR}/cmake_install.cmake")
    message(FATAL_ERROR
      "run_consumer.cmake: -DGOLDYLOX_BUILD_DIR must be a configured goldylox build tree")
  endif()
  set(stage "${WORK_DIR}/stage")
  set(prefix "${WORK_DIR}/prefix")
  run("install goldylox into ${stage}"
    "${CMAKE_COMMAND}" --install "${GOLDYLOX_BUILD_DIR}" --prefix "${stage}" --config "${CONFIG}"
    --component goldylox_Development)

  file(GLOB_RECURSE config_files "${stage}/*.cmake")
  if(NOT config_files)
    message(FATAL_ERROR "[${MODE}] the install put no CMake package files under ${stage}")
  endif()
  foreach(config_file IN LISTS config_files)
    file(READ "${config_file}" text)
    foreach(forbidden IN ITEMS "${stage}" "${GOLDYLOX_SOURCE_DIR}" "${GOLDYLOX_BUILD_DIR}")
      string(FIND "${text}" "${forbidden}" position)
      if(NOT position EQUAL -1)
        message(FATAL_ERROR
          "[${MODE}] ${config_file} hard-codes ${forbidden}: the package is not relocatable")
      endif()
    endforeach()
  endforeach()
  if(NOT EXISTS "${stage}/include/goldylox/goldylox.hpp")
    message(FATAL_ERROR "[${MODE}] goldylox/goldylox.hpp was not installed under ${stage}")
  endif()

  file(RENAME "${stage}" "${prefix}")
  list(APPEND configure_args
    "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DGOLDYLOX_EXPECTED_PREFIX=${prefix}")
endif()

run("configure the consumer" "${CMAKE_COMMAND}" ${configure_args})
run("build the consumer" "${CMAKE_COMMAND}" --build "${consumer_build_dir}" --config "${CONFIG}")

set(consumer_exe "${consumer_build_dir}/bin/goldylox_consumer")
if(CMAKE_HOST_WIN32)
  set(consumer_exe "${consumer_build_dir}/bin/goldylox_consumer.exe")
endif()
run("run the consumer" "${consumer_exe}")
message(STATUS "[${MODE}] the consumer configured, built and ran")
