# What `cmake --install` puts in place, and what `cpack -G DEB` packs (see packaging/ and README "Install").
#
# In this tree every layer is a static library and programs link them directly. What users link is built
# from the same objects (nothing is compiled twice):
#   libiogrid.so / libiogrid.a          the SDK with everything under it (core, scheduler, gpu, worker, runtime)
#   libiogrid_<lib>.so / .a             one per library in libs/ (data, nn, train, tune, infer), on libiogrid
#   bin/iogrid                          the command-line tool (head, node, status, jobs, bench, ...)
#   lib/libiogrid_cuda.so, _nccl.so     the CUDA plugins, when this build has CUDA
#   include/iogrid/...                  the public headers (and core's, which the SDK's templates use)
#   lib/cmake/iogrid/                   find_package(iogrid CONFIG): iogrid::iogrid, iogrid::train, ... (shared),
#                                       iogrid::iogrid_static, iogrid::train_static, ... (static)
#   lib/pkgconfig/iogrid*.pc            pkg-config --cflags --libs iogrid (iogrid-train, ...)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(IOGRID_INTERNAL_LIBS iogrid_core iogrid_scheduler iogrid_gpu iogrid_worker iogrid_proto iogrid_runtime iogrid)
# Everything the internal libraries link outside this tree (shared builds take them as they are; the static
# archive names them for its users).
set(IOGRID_EXTERNAL_TARGETS CAF::core CAF::io CapnProto::capnp CapnProto::kj OpenSSL::SSL OpenSSL::Crypto
    SQLite::SQLite3 ZLIB::ZLIB spdlog::spdlog gloo ${BLAS_LIBRARIES} Threads::Threads ${CMAKE_DL_LIBS})
set(IOGRID_EXTERNAL_NAMES caf_io caf_core capnp kj ssl crypto sqlite3 z spdlog fmt gloo openblas dl)
if(IOGRID_HAVE_CUDA)
  list(APPEND IOGRID_EXTERNAL_TARGETS CUDA::cudart_static)
endif()

set(objects "")
foreach(t ${IOGRID_INTERNAL_LIBS})
  list(APPEND objects $<TARGET_OBJECTS:${t}>)
endforeach()

# libiogrid.so: one copy of the runtime per process, whichever libraries a program links.
add_library(iogrid_shared SHARED ${objects})
add_library(iogrid_static STATIC ${objects})
foreach(t iogrid_shared iogrid_static)
  set_target_properties(${t} PROPERTIES OUTPUT_NAME iogrid LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/dist
                        ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/dist)
  target_include_directories(${t} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${t} INTERFACE cxx_std_20)
endforeach()
set_target_properties(iogrid_shared PROPERTIES EXPORT_NAME iogrid VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                      INSTALL_RPATH "$ORIGIN")  # the CUDA plugins are looked up next to it
target_link_libraries(iogrid_shared PRIVATE ${IOGRID_EXTERNAL_TARGETS})
# Every symbol resolved at link time (a sanitizer build leaves its runtime's to the executable).
if(NOT IOGRID_SANITIZE)
  target_link_options(iogrid_shared PRIVATE -Wl,--no-undefined)
endif()
set_target_properties(iogrid_static PROPERTIES EXPORT_NAME iogrid_static)
target_link_libraries(iogrid_static INTERFACE Threads::Threads ${IOGRID_EXTERNAL_NAMES})
if(IOGRID_HAVE_CUDA)
  target_link_libraries(iogrid_static INTERFACE CUDA::cudart_static)
endif()

# One shared and one static library per folder of libs/, on libiogrid and the libraries it builds on.
set(IOGRID_LIB_DEPS_data "")
set(IOGRID_LIB_DEPS_nn data)
set(IOGRID_LIB_DEPS_train nn data)
set(IOGRID_LIB_DEPS_infer train nn data)
set(IOGRID_LIB_DEPS_tune train nn data)
set(IOGRID_DIST_TARGETS iogrid_shared iogrid_static)
foreach(lib data nn train infer tune)
  add_library(iogrid_${lib}_shared SHARED $<TARGET_OBJECTS:iogrid_${lib}>)
  add_library(iogrid_${lib}_static STATIC $<TARGET_OBJECTS:iogrid_${lib}>)
  set(shared_deps iogrid_shared)
  set(static_deps iogrid_static)
  foreach(dep ${IOGRID_LIB_DEPS_${lib}})
    list(PREPEND shared_deps iogrid_${dep}_shared)
    list(PREPEND static_deps iogrid_${dep}_static)
  endforeach()
  target_link_libraries(iogrid_${lib}_shared PUBLIC ${shared_deps} PRIVATE ZLIB::ZLIB)
  target_link_libraries(iogrid_${lib}_static INTERFACE ${static_deps} z)
  if(NOT IOGRID_SANITIZE)
    target_link_options(iogrid_${lib}_shared PRIVATE -Wl,--no-undefined)
  endif()
  set_target_properties(iogrid_${lib}_shared PROPERTIES OUTPUT_NAME iogrid_${lib} EXPORT_NAME ${lib}
                        VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR} INSTALL_RPATH "$ORIGIN"
                        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/dist)
  set_target_properties(iogrid_${lib}_static PROPERTIES OUTPUT_NAME iogrid_${lib} EXPORT_NAME ${lib}_static
                        ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/dist)
  list(APPEND IOGRID_DIST_TARGETS iogrid_${lib}_shared iogrid_${lib}_static)
endforeach()

install(TARGETS ${IOGRID_DIST_TARGETS} EXPORT iogridTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(TARGETS iogrid_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
if(IOGRID_HAVE_CUDA)
  install(TARGETS iogrid_cuda iogrid_nccl LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime)
endif()

# Headers: the SDK's, core's (its templates use them) and each library's.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/ ${PROJECT_SOURCE_DIR}/sdk/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev FILES_MATCHING PATTERN "*.hpp")
foreach(lib data nn train infer tune)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/libs/${lib}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
          FILES_MATCHING PATTERN "*.hpp")
endforeach()

# CMake package.
set(IOGRID_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/iogrid)
install(EXPORT iogridTargets NAMESPACE iogrid:: DESTINATION ${IOGRID_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/iogridConfig.cmake.in ${CMAKE_BINARY_DIR}/dist/iogridConfig.cmake
                              INSTALL_DESTINATION ${IOGRID_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/dist/iogridConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/dist/iogridConfig.cmake ${CMAKE_BINARY_DIR}/dist/iogridConfigVersion.cmake
        DESTINATION ${IOGRID_CMAKE_DIR} COMPONENT dev)

# pkg-config: iogrid, and iogrid-<lib> for each library.
set(IOGRID_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
file(RELATIVE_PATH IOGRID_PC_PREFIX_REL /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)  # e.g. ../..
set(IOGRID_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
configure_file(${PROJECT_SOURCE_DIR}/packaging/pkgconfig/iogrid.pc.in ${CMAKE_BINARY_DIR}/dist/iogrid.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/dist/iogrid.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
foreach(lib data nn train infer tune)
  set(IOGRID_PC_LIB ${lib})
  set(IOGRID_PC_REQUIRES iogrid)
  foreach(dep ${IOGRID_LIB_DEPS_${lib}})
    string(APPEND IOGRID_PC_REQUIRES " iogrid-${dep}")
  endforeach()
  configure_file(${PROJECT_SOURCE_DIR}/packaging/pkgconfig/iogrid-lib.pc.in ${CMAKE_BINARY_DIR}/dist/iogrid-${lib}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/dist/iogrid-${lib}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endforeach()

# The operator's side of the Debian package: systemd units, configuration, the system user's state.
# They install only as part of the package (component service), never by a plain `cmake --install`.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/iogrid-head.service ${PROJECT_SOURCE_DIR}/packaging/systemd/iogrid-node.service
        DESTINATION lib/systemd/system COMPONENT service EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/etc/head.conf ${PROJECT_SOURCE_DIR}/packaging/etc/node.conf
        DESTINATION /etc/iogrid COMPONENT service EXCLUDE_FROM_ALL)

include(${PROJECT_SOURCE_DIR}/packaging/cpack.cmake)
