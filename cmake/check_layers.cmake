# Checks that includes point down the layer map of ../shared/DESIGN.md ("Layers"):
#   cmake -DROOT=<source dir> -P cmake/check_layers.cmake
# Every #include of our own (quoted or angled) is resolved to a file of the tree, the way the compiler would
# find it (next to the including file, then the include roots below); the folder it lies in is its layer. A
# file may include its own layer and the layers it is allowed below; anything else is reported with the line
# and the check fails. Headers that resolve to nothing of ours (the C++ library, CAF, Cap'n Proto...) are
# not ours and are ignored, except the generated Cap'n Proto schemas, which belong to runtime/proto.
#
# Allowed includes (each layer also includes itself):
#   core        nothing
#   scheduler   core                      gpu        core
#   worker      core scheduler gpu        runtime    core scheduler gpu worker
#   sdk-public  core   (sdk/include: what users include)
#   sdk         core scheduler gpu worker runtime sdk-public (sdk/src: the SDK over the runtime)
#   libs/X      core sdk-public gpu and the libraries below X (data < nn < train < infer, tune)
#   bench       everything but cli        cli        everything
# tests/ and examples/ are not layers: they may include anything.
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source dir> -P check_layers.cmake")
endif()

set(LIBS data nn train infer tune)
set(allowed_core "")
set(allowed_scheduler core)
set(allowed_gpu core)
set(allowed_worker core scheduler gpu)
set(allowed_runtime core scheduler gpu worker)
set(allowed_sdk-public core)
set(allowed_sdk core scheduler gpu worker runtime sdk-public)
set(allowed_libs/data core sdk-public gpu)
set(allowed_libs/nn core sdk-public gpu libs/data)
set(allowed_libs/train core sdk-public gpu libs/data libs/nn)
set(allowed_libs/infer core sdk-public gpu libs/data libs/nn libs/train)
set(allowed_libs/tune core sdk-public gpu libs/data libs/nn libs/train)
set(allowed_bench core scheduler gpu worker runtime sdk-public sdk libs/data libs/nn libs/train libs/infer libs/tune)
set(allowed_cli ${allowed_bench} bench)

set(roots ${ROOT} ${ROOT}/core/include ${ROOT}/sdk/include)
foreach(l ${LIBS})
  list(APPEND roots ${ROOT}/libs/${l}/include)
endforeach()

# The layer of a path inside the tree ("" when it is in none).
function(layer_of path out)
  file(RELATIVE_PATH rel ${ROOT} ${path})
  set(layer "")
  if(rel MATCHES "^(core|scheduler|gpu|worker|runtime|bench|cli)/")
    set(layer ${CMAKE_MATCH_1})
  elseif(rel MATCHES "^sdk/include/")
    set(layer sdk-public)
  elseif(rel MATCHES "^sdk/")
    set(layer sdk)
  elseif(rel MATCHES "^libs/([a-z]+)/")
    set(layer libs/${CMAKE_MATCH_1})
  endif()
  set(${out} ${layer} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE sources LIST_DIRECTORIES false
     ${ROOT}/core/* ${ROOT}/scheduler/* ${ROOT}/gpu/* ${ROOT}/worker/* ${ROOT}/runtime/* ${ROOT}/sdk/*
     ${ROOT}/libs/* ${ROOT}/bench/* ${ROOT}/cli/*)
list(FILTER sources INCLUDE REGEX "\\.(hpp|h|cpp|cc|cu|cuh|in)$")

set(violations "")
set(checked 0)
foreach(src ${sources})
  layer_of(${src} from)
  if(from STREQUAL "")
    continue()
  endif()
  get_filename_component(src_dir ${src} DIRECTORY)
  file(STRINGS ${src} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(line ${lines})
    if(NOT line MATCHES "#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"]")
      continue()
    endif()
    set(inc ${CMAKE_MATCH_1})
    set(target "")
    if(line MATCHES "\"")
      set(candidates ${src_dir} ${roots})
    else()
      set(candidates ${roots})
    endif()
    foreach(dir ${candidates})
      if(EXISTS ${dir}/${inc} AND NOT IS_DIRECTORY ${dir}/${inc})
        get_filename_component(target ${dir}/${inc} REALPATH)
        break()
      endif()
    endforeach()
    if(target STREQUAL "")
      if(inc MATCHES "\\.capnp\\.h$")  # generated from runtime/proto/*.capnp
        set(to runtime)
      else()
        continue()  # not ours
      endif()
    else()
      layer_of(${target} to)
      if(to STREQUAL "")
        continue()
      endif()
    endif()
    math(EXPR checked "${checked} + 1")
    if(to STREQUAL from OR to IN_LIST allowed_${from})
      continue()
    endif()
    file(RELATIVE_PATH rel ${ROOT} ${src})
    string(APPEND violations "  ${rel}: #include <${inc}> reaches ${to}/, which ${from}/ may not include\n")
  endforeach()
endforeach()

list(LENGTH sources n)
if(violations)
  message(FATAL_ERROR "layer check: includes that point up or sideways (see cmake/check_layers.cmake for the map):\n${violations}")
endif()
message(STATUS "layer check: ${checked} includes of our own in ${n} files point down the map")
