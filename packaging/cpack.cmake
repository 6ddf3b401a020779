# `cpack -G DEB` in a release build: one Debian package, iogrid_<version>_<arch>.deb, with the tool, the
# libraries, headers, CMake and pkg-config files, the CUDA plugins when built, and the operator's services:
# systemd units iogrid-head / iogrid-node (configuration in /etc/iogrid/*.conf, restart on failure, a system
# user iogrid, state under /var/lib/iogrid). Dependencies are worked out by dpkg-shlibdeps from the binaries.
set(CPACK_PACKAGE_NAME iogrid)
set(CPACK_PACKAGE_VENDOR "iogrid")
set(CPACK_PACKAGE_CONTACT "iogrid maintainers <maintainers@iogrid.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "actor runtime that pools heterogeneous GPUs into clusters")
set(CPACK_PACKAGE_DESCRIPTION "iogrid runs task graphs and stateful actors from a C++ SDK on an embedded cluster or on
 a head with GPU nodes (data-centre cards, mining rigs, gaming PCs), with GPU verification, prices and
 reputation in placement, gangs across providers, training, sweeps and batch inference libraries.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)  # /etc/iogrid is absolute: staged under DESTDIR
# Every component (service is left out of a plain `cmake --install`), in one package.
set(CPACK_COMPONENTS_ALL runtime dev service)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The CUDA plugins link NVIDIA's libraries, which come with the driver or CUDA, not from Debian's archive.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR}/lib)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "python3-torch")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/debian/postinst ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
