# goldyloxCheckLayers.cmake -- checks that the library's headers depend on each other one way.
#
#   cmake -DROOT=<include-root> -P cmake/goldyloxCheckLayers.cmake
#
# <include-root> contains goldylox/ (the project's own is include/). Every goldylox/**/*.hpp is
# placed in a layer by the table below, and every `#include "goldylox/..."` or
# `#include <goldylox/...>` it makes must point down the layers.
#
# The rule: dependencies run one way,
#
#   facade -> engine -> tiers -> policies/codecs -> contracts -> common
#
# A header may include headers of its own component and of any lower layer. It may not include
# a higher layer, nor another component of its own layer: a tier reaches another tier only
# through the engine, and a policy never includes a codec (nor a codec a policy).
#
# Reported as violations:
#   * an include of a higher layer;
#   * an include of the same layer but another component (hot / warm / cold, policy / codec);
#   * an include of the project's non-library code (sim/, inspect/, bench/, common/ -- bench's
#     helpers --, tools/, tests/, test_support): tools' and tests' code must never leak into
#     the installed headers;
#   * a header that no row of the table places (a new folder goes into a layer on purpose);
#   * an include of a goldylox/ path that does not exist under <include-root>.
# Each violation is printed on its own line, then the script fails with their count.
#
# A quoted include relative to the including header ("../cold/store.hpp") is resolved the way
# the compiler does and checked like the goldylox/ path it names, so it cannot bypass the rule.
# Includes are read line by line from the preprocessor lines themselves; conditional
# compilation is ignored (an include under #if is checked like any other).

cmake_minimum_required(VERSION 3.25)

# --- the layer table -------------------------------------------------------------------------
# <path> | <rank> | <layer> | <component>
# <path> is relative to <include-root>; "dir/*" is anything at any depth below dir/. The first
# row that matches wins, so a folder's specific rows come before its general ones.
set(GOLDYLOX_LAYERS
  "goldylox/version.hpp               | 0 | common          | common"
  "goldylox/stats.hpp                 | 0 | common          | common"
  "goldylox/metrics.hpp               | 0 | common          | common"
  "goldylox/weight.hpp                | 0 | common          | common"
  "goldylox/removal.hpp               | 0 | common          | common"
  "goldylox/detail/common/*           | 0 | common          | common"
  "goldylox/background_pool.hpp       | 0 | common          | common"
  "goldylox/detail/background/*       | 0 | common          | common"
  "goldylox/concepts.hpp              | 1 | contracts       | concepts"
  "goldylox/policies.hpp              | 2 | policies/codecs | policy"
  "goldylox/detail/warm/policy/*      | 2 | policies/codecs | policy"
  "goldylox/detail/codec/*            | 2 | policies/codecs | codec"
  "goldylox/detail/hot/*              | 3 | tiers           | hot"
  "goldylox/detail/warm/*             | 3 | tiers           | warm"
  "goldylox/detail/cold/*             | 3 | tiers           | cold"
  "goldylox/detail/engine/*           | 4 | engine          | engine"
  "goldylox/config.hpp                | 4 | engine          | engine"
  "goldylox/detail/facade/*           | 5 | facade          | facade"
  "goldylox/cache.hpp                 | 5 | facade          | facade"
  "goldylox/typed_cache.hpp           | 5 | facade          | facade"
  "goldylox/goldylox.hpp              | 5 | facade          | facade")

# Includes that name the project's own non-library code (after any leading ./ and ../).
set(GOLDYLOX_NON_LIBRARY_INCLUDE "^(sim|inspect|bench|common|tools|tests)/|(^|/)test_support")

# --- arguments -------------------------------------------------------------------------------
if(NOT DEFINED ROOT OR ROOT STREQUAL "")
  message(FATAL_ERROR
    "goldylox layering: usage: cmake -DROOT=<include-root> -P goldyloxCheckLayers.cmake")
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)
if(NOT IS_DIRECTORY "${ROOT}/goldylox")
  message(FATAL_ERROR "goldylox layering: ${ROOT}/goldylox is not a directory")
endif()

# --- the table, parsed into parallel lists ---------------------------------------------------
set(_patterns "")
set(_ranks "")
set(_layers "")
set(_components "")
foreach(_row IN LISTS GOLDYLOX_LAYERS)
  string(REPLACE "|" ";" _fields "${_row}")
  list(LENGTH _fields _n)
  if(NOT _n EQUAL 4)
    message(FATAL_ERROR "goldylox layering: bad row in the layer table: '${_row}'")
  endif()
  set(_i 0)
  foreach(_out IN ITEMS _patterns _ranks _layers _components)
    list(GET _fields ${_i} _field)
    string(STRIP "${_field}" _field)
    list(APPEND ${_out} "${_field}")
    math(EXPR _i "${_i} + 1")
  endforeach()
endforeach()
list(LENGTH _patterns _rows)
math(EXPR _last_row "${_rows} - 1")

# _goldylox_classify(<path> <out-prefix>)
# Sets <out-prefix>_rank, _layer and _component from the first row matching <path> (relative to
# ROOT); all three are "" when no row matches.
function(_goldylox_classify path out)
  foreach(_r RANGE ${_last_row})
    list(GET _patterns ${_r} _pattern)
    set(_match FALSE)
    if(_pattern MATCHES "^(.*/)\\*$")
      string(LENGTH "${CMAKE_MATCH_1}" _len)
      string(SUBSTRING "${path}" 0 ${_len} _head)
      if(_head STREQUAL CMAKE_MATCH_1)
        set(_match TRUE)
      endif()
    elseif(path STREQUAL _pattern)
      set(_match TRUE)
    endif()
    if(_match)
      list(GET _ranks ${_r} _rank)
      list(GET _layers ${_r} _layer)
      list(GET _components ${_r} _component)
      set(${out}_rank "${_rank}" PARENT_SCOPE)
      set(${out}_layer "${_layer}" PARENT_SCOPE)
      set(${out}_component "${_component}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out}_rank "" PARENT_SCOPE)
  set(${out}_layer "" PARENT_SCOPE)
  set(${out}_component "" PARENT_SCOPE)
endfunction()

# --- every header, every include -------------------------------------------------------------
file(GLOB_RECURSE _headers LIST_DIRECTORIES false "${ROOT}/goldylox/*.hpp")
list(SORT _headers)
list(LENGTH _headers _header_count)
if(_header_count EQUAL 0)
  message(FATAL_ERROR "goldylox layering: no headers under ${ROOT}/goldylox")
endif()

set(_violations 0)
set(_include_count 0)
foreach(_header IN LISTS _headers)
  file(RELATIVE_PATH _file "${ROOT}" "${_header}")
  get_filename_component(_dir "${_header}" DIRECTORY)
  _goldylox_classify("${_file}" _from)
  if(_from_rank STREQUAL "")
    message("goldylox layering: ${_file}: in no layer -- add its folder to the layer table in "
            "goldyloxCheckLayers.cmake")
    math(EXPR _violations "${_violations} + 1")
    set(_from_desc "unplaced header")
  else()
    set(_from_desc "${_from_component} (layer ${_from_rank} ${_from_layer})")
  endif()

  # One list element per line. Backslashes (line continuations), square brackets and semicolons
  # would make CMake join or split elements, so they are replaced first; no include path that
  # matters here contains them.
  file(READ "${_header}" _content)
  string(REPLACE "\\" "/" _content "${_content}")
  string(REPLACE "[" "(" _content "${_content}")
  string(REPLACE "]" ")" _content "${_content}")
  string(REPLACE ";" "," _content "${_content}")
  string(REPLACE "\n" ";" _lines "${_content}")

  set(_line_number 0)
  foreach(_line IN LISTS _lines)
    math(EXPR _line_number "${_line_number} + 1")
    if(NOT _line MATCHES "^[ \t]*#[ \t]*include[ \t]*([<\"])([^>\"]*)[>\"]")
      continue()
    endif()
    set(_quote "${CMAKE_MATCH_1}")
    set(_included "${CMAKE_MATCH_2}")
    set(_where "goldylox layering: ${_file}:${_line_number}: ${_from_desc} includes")

    # A quoted include is looked up beside the including header first.
    set(_library FALSE)
    if(_included MATCHES "^goldylox/")
      set(_library TRUE)
    elseif(_quote STREQUAL "\"" AND EXISTS "${_dir}/${_included}"
           AND NOT IS_DIRECTORY "${_dir}/${_included}")
      cmake_path(SET _resolved NORMALIZE "${_dir}/${_included}")
      cmake_path(IS_PREFIX ROOT "${_resolved}" NORMALIZE _inside_root)
      if(_inside_root)
        file(RELATIVE_PATH _relative "${ROOT}" "${_resolved}")
        if(_relative MATCHES "^goldylox/")
          set(_library TRUE)
          set(_included "${_relative}")
        endif()
      endif()
    endif()

    if(NOT _library)
      string(REGEX REPLACE "^((\\./)|(\\.\\./))+" "" _stripped "${_included}")
      if(_stripped MATCHES "${GOLDYLOX_NON_LIBRARY_INCLUDE}")
        message("${_where} ${_included} -- not a library header: tools' and tests' code must "
                "never reach the installed headers")
        math(EXPR _violations "${_violations} + 1")
      endif()
      continue()
    endif()

    math(EXPR _include_count "${_include_count} + 1")
    cmake_path(SET _included NORMALIZE "${_included}")
    if(NOT EXISTS "${ROOT}/${_included}" OR IS_DIRECTORY "${ROOT}/${_included}")
      message("${_where} ${_included} -- no such header under ${ROOT}")
      math(EXPR _violations "${_violations} + 1")
      continue()
    endif()
    if(_from_rank STREQUAL "")
      continue()
    endif()
    _goldylox_classify("${_included}" _to)
    if(_to_rank STREQUAL "")
      # The included header is reported as unplaced on its own line.
      continue()
    endif()
    if(_to_component STREQUAL _from_component)
      continue()
    endif()
    if(_to_rank GREATER_EQUAL _from_rank)
      message("${_where} ${_included} (${_to_component} layer ${_to_rank} ${_to_layer})")
      math(EXPR _violations "${_violations} + 1")
    endif()
  endforeach()
endforeach()

if(_violations GREATER 0)
  message(FATAL_ERROR
    "goldylox layering: ${_violations} violation(s) in ${_header_count} headers under ${ROOT}. "
    "Dependencies run one way: facade -> engine -> tiers -> policies/codecs -> contracts -> "
    "common; a tier reaches another tier only through the engine. The layer table is at the "
    "top of cmake/goldyloxCheckLayers.cmake.")
endif()
message(STATUS "goldylox layering: ${_header_count} headers, ${_include_count} includes, "
               "no violations")
