# goldyloxTargetOptions.cmake -- build options for the project's own executables (tests,
# benchmarks, examples). Never applied to the goldylox INTERFACE target: consumers choose their
# own flags.
#
#   goldylox_configure_target(<target>)
#     Adds warnings and, when GOLDYLOX_SANITIZE is set, the sanitizer flags to <target>.
#   goldylox_target_sanitize(<target>)
#     Adds only the sanitizer flags.
#
# GOLDYLOX_SANITIZE takes a comma- or semicolon-separated list of address, undefined, leak and
# thread ("address,undefined", "address;undefined", "thread"); empty means none.

include_guard(GLOBAL)

set(_goldylox_sanitizers "${GOLDYLOX_SANITIZE}")
string(REPLACE "," ";" _goldylox_sanitizers "${_goldylox_sanitizers}")
string(REPLACE " " "" _goldylox_sanitizers "${_goldylox_sanitizers}")
string(TOLOWER "${_goldylox_sanitizers}" _goldylox_sanitizers)
list(REMOVE_ITEM _goldylox_sanitizers "")
list(REMOVE_DUPLICATES _goldylox_sanitizers)
foreach(_goldylox_s IN LISTS _goldylox_sanitizers)
  if(NOT _goldylox_s MATCHES "^(address|undefined|leak|thread)$")
    message(FATAL_ERROR
      "GOLDYLOX_SANITIZE: unknown sanitizer '${_goldylox_s}' "
      "(expected a comma-separated list of address, undefined, leak, thread)")
  endif()
endforeach()
if("thread" IN_LIST _goldylox_sanitizers AND
   ("address" IN_LIST _goldylox_sanitizers OR "leak" IN_LIST _goldylox_sanitizers))
  message(FATAL_ERROR "GOLDYLOX_SANITIZE: 'thread' cannot be combined with 'address' or 'leak'")
endif()
if(_goldylox_sanitizers AND NOT CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang)$")
  message(FATAL_ERROR
    "GOLDYLOX_SANITIZE needs GCC or Clang (compiler is ${CMAKE_CXX_COMPILER_ID})")
endif()

# Normalised list, visible in this directory and all subdirectories added after this point.
set(GOLDYLOX_SANITIZER_LIST "${_goldylox_sanitizers}")
unset(_goldylox_s)
unset(_goldylox_sanitizers)

if(GOLDYLOX_SANITIZER_LIST)
  list(JOIN GOLDYLOX_SANITIZER_LIST "," _goldylox_joined)
  message(STATUS "goldylox: sanitizers for tests/benchmarks/examples: ${_goldylox_joined}")
  unset(_goldylox_joined)
endif()

function(goldylox_target_sanitize target)
  if(NOT GOLDYLOX_SANITIZER_LIST)
    return()
  endif()
  list(JOIN GOLDYLOX_SANITIZER_LIST "," joined)
  set(compile_flags "-fsanitize=${joined}" -fno-omit-frame-pointer)
  if("undefined" IN_LIST GOLDYLOX_SANITIZER_LIST)
    # Make UBSan findings fail the test instead of printing and continuing.
    list(APPEND compile_flags -fno-sanitize-recover=undefined)
  endif()
  target_compile_options(${target} PRIVATE ${compile_flags})
  target_link_options(${target} PRIVATE "-fsanitize=${joined}")
endfunction()

function(goldylox_configure_target target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang)$")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W4 /permissive-)
  endif()
  goldylox_target_sanitize(${target})
endfunction()
