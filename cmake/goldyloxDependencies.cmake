# goldyloxDependencies.cmake -- finds everything goldylox links and normalises it to stable names.
#
# Used twice, unchanged:
#   * by the project's own CMakeLists.txt (build tree, add_subdirectory, FetchContent), and
#   * by the installed goldyloxConfig.cmake, which ships this file beside itself.
#
# Every package is looked up through its CMake config first and through pkg-config second.
# Whatever cannot be found is collected and reported at configure time with the Debian package
# that provides it:
#   * in the project's own build the report is a FATAL_ERROR (find_dependency() would stay
#     silent there and the gap would surface only as a link error);
#   * inside find_package(goldylox) (goldyloxConfig.cmake sets
#     _goldylox_dependencies_from_package_config before including this file) the report becomes
#     goldylox_NOT_FOUND_MESSAGE and GOLDYLOX_DEPENDENCIES_FOUND is set to FALSE, so
#     find_package(goldylox REQUIRED) stops with that message and find_package(goldylox QUIET)
#     can fall back gracefully.
#
# Targets provided afterwards (all INTERFACE IMPORTED, local to the calling directory like any
# find_package() result):
#   absl::hash absl::status absl::statusor absl::flat_hash_map absl::synchronization
#   absl::strings             -- from abseil's own config
#   Threads::Threads          -- from FindThreads
#   cereal::cereal            -- from cereal's own config
#   goldylox::xsimd           -- xsimd, with an empty `xtl` target defined when xsimd's config
#                                links one that nothing defines (Debian's xsimd 8.1)
#   goldylox::zstd            -- zstd::libzstd | zstd::libzstd_shared | zstd::libzstd_static |
#                                pkg-config libzstd
#   goldylox::lz4             -- LZ4::lz4 | LZ4::lz4_shared | LZ4::lz4_static | lz4::lz4 |
#                                pkg-config liblz4
#   goldylox::brotli          -- encoder + decoder: Brotli/unofficial-brotli configs |
#                                pkg-config libbrotlienc libbrotlidec
#   goldylox::xxhash          -- xxHash::xxhash | pkg-config libxxhash
#
# Running it again in the same directory is a no-op; running it in another directory (a second
# find_package(goldylox) elsewhere) creates the directory-local imported targets there too.

# Policies are scoped to this script so that including it from a consumer's find_package() call
# does not change the consumer's policy settings.
cmake_policy(PUSH)
cmake_policy(VERSION 3.23...3.25)

set(GOLDYLOX_DEPENDENCIES_FOUND TRUE)
set(_goldylox_missing "")

# _goldylox_target_from(<out-var> <candidate-target>...)
# Sets <out-var> to the first candidate that is a target, or to "" when none is.
function(_goldylox_target_from out_var)
  foreach(candidate IN LISTS ARGN)
    if(TARGET "${candidate}")
      set(${out_var} "${candidate}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out_var} "" PARENT_SCOPE)
endfunction()

# _goldylox_normalise(<name> DEBIAN <deb-package>
#                     [CONFIG <config-package>...] [TARGETS <target>...]
#                     [PKGCONFIG <module>...])
# Creates goldylox::<name> linking what was found. CONFIG names are tried in order (CONFIG mode,
# QUIET); the first of TARGETS that exists afterwards is used. All PKGCONFIG modules are needed
# together when the config route fails. On failure, appends a line to _goldylox_missing.
function(_goldylox_normalise name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "DEBIAN" "CONFIG;TARGETS;PKGCONFIG")
  set(normalised "goldylox::${name}")
  if(TARGET "${normalised}")
    return()
  endif()

  set(found "")
  set(how "")
  _goldylox_target_from(found ${arg_TARGETS})
  if(found)
    set(how "already-defined target ${found}")
  else()
    foreach(config_name IN LISTS arg_CONFIG)
      find_package(${config_name} CONFIG QUIET)
      _goldylox_target_from(found ${arg_TARGETS})
      if(found)
        set(how "CMake config ${config_name} (${found})")
        break()
      endif()
    endforeach()
  endif()

  if(NOT found AND arg_PKGCONFIG)
    if(NOT PKG_CONFIG_FOUND)
      find_package(PkgConfig QUIET)
    endif()
    if(PKG_CONFIG_FOUND)
      set(prefix "_goldylox_pc_${name}")
      pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${arg_PKGCONFIG})
      if(${prefix}_FOUND AND TARGET "PkgConfig::${prefix}")
        set(found "PkgConfig::${prefix}")
        set(how "pkg-config ${arg_PKGCONFIG}")
      endif()
    else()
      set(arg_DEBIAN "${arg_DEBIAN} pkg-config")
    endif()
  endif()

  if(NOT found)
    set(tried "")
    if(arg_CONFIG)
      list(JOIN arg_CONFIG ", " configs)
      string(APPEND tried "CMake config ${configs}")
    endif()
    if(arg_PKGCONFIG)
      list(JOIN arg_PKGCONFIG " " modules)
      if(tried)
        string(APPEND tried ", ")
      endif()
      string(APPEND tried "pkg-config ${modules}")
    endif()
    set(_goldylox_missing
        "${_goldylox_missing}\n  ${normalised}: not found (tried ${tried}) -- apt-get install ${arg_DEBIAN}"
        PARENT_SCOPE)
    return()
  endif()

  add_library(${normalised} INTERFACE IMPORTED)
  set_target_properties(${normalised} PROPERTIES INTERFACE_LINK_LIBRARIES "${found}")
  if(NOT goldylox_FIND_QUIETLY)
    message(VERBOSE "goldylox: ${normalised} <- ${how}")
  endif()
endfunction()

# --- Threads ---------------------------------------------------------------------------------
if(NOT TARGET Threads::Threads)
  # Prefer -pthread, without changing the caller's own setting.
  set(_goldylox_saved_prefer_pthread "${THREADS_PREFER_PTHREAD_FLAG}")
  set(THREADS_PREFER_PTHREAD_FLAG ON)
  find_package(Threads QUIET)
  set(THREADS_PREFER_PTHREAD_FLAG "${_goldylox_saved_prefer_pthread}")
  unset(_goldylox_saved_prefer_pthread)
endif()
if(NOT TARGET Threads::Threads)
  string(APPEND _goldylox_missing
         "\n  Threads::Threads: no usable threads library -- apt-get install libc6-dev")
endif()

# --- abseil ----------------------------------------------------------------------------------
set(_goldylox_absl_targets
    absl::hash absl::status absl::statusor absl::flat_hash_map absl::synchronization
    absl::strings)
if(NOT TARGET absl::statusor)
  find_package(absl CONFIG QUIET)
endif()
foreach(_goldylox_t IN LISTS _goldylox_absl_targets)
  if(NOT TARGET ${_goldylox_t})
    string(APPEND _goldylox_missing
           "\n  ${_goldylox_t}: not found (tried CMake config absl) -- apt-get install libabsl-dev")
  endif()
endforeach()
unset(_goldylox_t)
unset(_goldylox_absl_targets)

# --- xsimd -----------------------------------------------------------------------------------
if(NOT TARGET goldylox::xsimd)
  if(NOT TARGET xsimd)
    find_package(xsimd CONFIG QUIET)
  endif()
  if(TARGET xsimd)
    # Debian's xsimd 8.1 exports `xsimd` with INTERFACE_LINK_LIBRARIES "xtl" but never defines
    # that target, so every consumer would get `-lxtl` and fail to link. xsimd needs xtl only for
    # its optional xtl-complex support, which goldylox does not use: define an empty target.
    # It is GLOBAL because `xsimd` may have been imported by a parent directory (the consumer
    # found xsimd itself, then added goldylox), and CMake resolves xsimd's link items from that
    # directory, where a target local to this one would not be visible.
    get_target_property(_goldylox_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
    if(_goldylox_xsimd_links AND "xtl" IN_LIST _goldylox_xsimd_links AND NOT TARGET xtl)
      add_library(xtl INTERFACE IMPORTED GLOBAL)
    endif()
    unset(_goldylox_xsimd_links)
    add_library(goldylox::xsimd INTERFACE IMPORTED)
    set_target_properties(goldylox::xsimd PROPERTIES INTERFACE_LINK_LIBRARIES xsimd)
  else()
    _goldylox_normalise(xsimd DEBIAN libxsimd-dev TARGETS xsimd::xsimd PKGCONFIG xsimd)
  endif()
endif()

# --- cereal ----------------------------------------------------------------------------------
if(NOT TARGET cereal::cereal)
  find_package(cereal CONFIG QUIET)
endif()
if(NOT TARGET cereal::cereal AND TARGET cereal)
  # cereal < 1.3.1 exported a target without namespace.
  add_library(cereal::cereal INTERFACE IMPORTED)
  set_target_properties(cereal::cereal PROPERTIES INTERFACE_LINK_LIBRARIES cereal)
endif()
if(NOT TARGET cereal::cereal)
  string(APPEND _goldylox_missing
         "\n  cereal::cereal: not found (tried CMake config cereal) -- apt-get install libcereal-dev")
endif()

# --- codecs and checksum ---------------------------------------------------------------------
_goldylox_normalise(zstd DEBIAN libzstd-dev
  CONFIG zstd
  TARGETS zstd::libzstd zstd::libzstd_shared zstd::libzstd_static
  PKGCONFIG libzstd)

_goldylox_normalise(lz4 DEBIAN liblz4-dev
  CONFIG lz4
  TARGETS LZ4::lz4 LZ4::lz4_shared LZ4::lz4_static lz4::lz4
  PKGCONFIG liblz4)

if(NOT TARGET goldylox::brotli)
  set(_goldylox_brotli_config "")
  foreach(_goldylox_pair IN ITEMS
          "Brotli::brotlienc|Brotli::brotlidec"
          "brotli::brotlienc|brotli::brotlidec"
          "unofficial::brotli::brotlienc|unofficial::brotli::brotlidec")
    string(REPLACE "|" ";" _goldylox_pair "${_goldylox_pair}")
    list(GET _goldylox_pair 0 _goldylox_enc)
    list(GET _goldylox_pair 1 _goldylox_dec)
    if(NOT TARGET ${_goldylox_enc} OR NOT TARGET ${_goldylox_dec})
      if(_goldylox_enc MATCHES "^unofficial")
        find_package(unofficial-brotli CONFIG QUIET)
      else()
        find_package(Brotli CONFIG QUIET)
      endif()
    endif()
    if(TARGET ${_goldylox_enc} AND TARGET ${_goldylox_dec})
      set(_goldylox_brotli_config "${_goldylox_enc};${_goldylox_dec}")
      break()
    endif()
  endforeach()
  if(_goldylox_brotli_config)
    add_library(goldylox::brotli INTERFACE IMPORTED)
    set_target_properties(goldylox::brotli PROPERTIES
                          INTERFACE_LINK_LIBRARIES "${_goldylox_brotli_config}")
  else()
    # The configs were tried above; this records them in the report if pkg-config fails too.
    _goldylox_normalise(brotli DEBIAN libbrotli-dev
      CONFIG Brotli unofficial-brotli
      PKGCONFIG libbrotlienc libbrotlidec)
  endif()
  unset(_goldylox_brotli_config)
  unset(_goldylox_pair)
  unset(_goldylox_enc)
  unset(_goldylox_dec)
endif()

_goldylox_normalise(xxhash DEBIAN libxxhash-dev
  CONFIG xxHash
  TARGETS xxHash::xxhash
  PKGCONFIG libxxhash)

# --- report ----------------------------------------------------------------------------------
if(_goldylox_missing)
  set(GOLDYLOX_DEPENDENCIES_FOUND FALSE)
  set(_goldylox_report
      "goldylox: required dependencies are missing:${_goldylox_missing}\nOn Debian/Ubuntu: apt-get install libabsl-dev libxsimd-dev libzstd-dev liblz4-dev libbrotli-dev libcereal-dev libxxhash-dev pkg-config")
  if(_goldylox_dependencies_from_package_config)
    # Loaded from the installed goldyloxConfig.cmake: let find_package() report it.
    set(goldylox_NOT_FOUND_MESSAGE "${_goldylox_report}")
  else()
    message(FATAL_ERROR "${_goldylox_report}")
  endif()
  unset(_goldylox_report)
endif()
unset(_goldylox_missing)

cmake_policy(POP)
