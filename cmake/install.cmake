# The installed package: libtconv3d.so and libtconv3d.a, the public headers,
# the CLI, tconv3d_add_kernel(), the CMake package (tconv3dConfig.cmake) and
# the pkg-config modules tconv3d (shared) and tconv3d-static.
#
# The shared library is the default for consumers: its dependencies (OpenMP,
# libzip, libLLVM) are linked into it privately, so a consumer needs
# none of them to build. The static library needs them all on the consumer's
# link line; its package file finds them without LLVM's CMake package, which
# requires the C language (tconv3dStatic.cmake.in).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The public headers are C++17; the library itself is built as C++20.
target_compile_features(tconv3d INTERFACE cxx_std_17)
# What a consumer's code may test: TCONV3D_HAVE_MODELS (tconv3d::Model exists) and the backends.
get_target_property(tconv3d_feature_definitions tconv3d INTERFACE_COMPILE_DEFINITIONS)
if(NOT tconv3d_feature_definitions)
  set(tconv3d_feature_definitions "")
endif()

# libtconv3d.so: the whole static library (no second compile: its objects are
# PIC and built with hidden visibility) and, privately, what that needs.
# Linking the archive rather than naming its objects keeps this true however
# tconv3d is assembled from internal libraries. CMake wants one source file
# for a library; the generated one is empty.
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/tconv3d_shared.cc
     CONTENT "// libtconv3d.so's code is libtconv3d.a, linked whole (cmake/install.cmake).\n")
add_library(tconv3d_shared SHARED ${CMAKE_BINARY_DIR}/tconv3d_shared.cc)
target_link_libraries(tconv3d_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,tconv3d>")
target_include_directories(tconv3d_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_definitions(tconv3d_shared INTERFACE ${tconv3d_feature_definitions})
target_compile_features(tconv3d_shared INTERFACE cxx_std_17)
# SONAME libtconv3d.so.0.1: before 1.0 a minor version may change the ABI.
set_target_properties(tconv3d_shared PROPERTIES
  OUTPUT_NAME tconv3d EXPORT_NAME shared
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/tconv3d.version)
# The version script also keeps the std:: template code the library
# instantiates (default visibility in libstdc++'s headers) out of its exports.
target_link_options(tconv3d_shared PRIVATE "LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/tconv3d.version")
if(NOT TCONV3D_SANITIZE)
  # Every dependency is named at link time (the sanitizer runtimes come from the executable).
  target_link_options(tconv3d_shared PRIVATE "LINKER:--no-undefined")
endif()
if(TCONV3D_BUILD_TESTS)
  add_test(NAME shared_library_exports
           COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/check-exports.sh $<TARGET_FILE:tconv3d_shared>)
endif()

set(tconv3d_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/tconv3d)
set_target_properties(tconv3d_cli PROPERTIES EXPORT_NAME cli)
install(TARGETS tconv3d_shared tconv3d_cli EXPORT tconv3dTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT tconv3dTargets NAMESPACE tconv3d:: DESTINATION ${tconv3d_cmake_dir})
# The archive is described by tconv3dStatic.cmake, written here rather than
# exported: its link interface must name the consumer-side dependencies, not
# this build's internal targets.
install(TARGETS tconv3d ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/tconv3d DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The static library's dependencies, for tconv3dStatic.cmake and the .pc files.
set(TCONV3D_STATIC_LIBZIP_DIR "")
set(TCONV3D_STATIC_LLVM_LIBRARY "")
set(TCONV3D_STATIC_UNAVAILABLE "")  # why the static package cannot be described, if it cannot
set(pc_private_libs "-fopenmp -lpthread")
if(TCONV3D_WITH_MODELS_ENABLED)
  find_library(TCONV3D_LIBZIP_LIBRARY zip HINTS ${LIBZIP_LIBRARY_DIRS} REQUIRED)
  get_filename_component(TCONV3D_STATIC_LIBZIP_DIR ${TCONV3D_LIBZIP_LIBRARY} DIRECTORY)
  # -lzip rather than Requires.private: libzip, which would make pkg-config
  # want libzip.pc even for the shared library, and whose --static list
  # (OpenSSL, bzip2...) is only for a static libzip.
  string(APPEND pc_private_libs " -lzip")
endif()
if(TCONV3D_WITH_LLVM_ENABLED)
  # The one shared libLLVM this build links (Debian: libLLVM-14.so). A build
  # on LLVM's component archives instead still ships libtconv3d.so, which
  # holds them; only the static package is left out.
  if(TARGET LLVM)
    find_library(TCONV3D_LLVM_LIBRARY NAMES LLVM-${LLVM_VERSION_MAJOR} LLVM
                 PATHS ${LLVM_LIBRARY_DIR} NO_DEFAULT_PATH)
  endif()
  if(TCONV3D_LLVM_LIBRARY)
    set(TCONV3D_STATIC_LLVM_LIBRARY ${TCONV3D_LLVM_LIBRARY})
    string(APPEND pc_private_libs " ${TCONV3D_LLVM_LIBRARY}")
  else()
    set(TCONV3D_STATIC_UNAVAILABLE "this tconv3d was built on LLVM's component libraries; use tconv3d::shared")
  endif()
endif()
set(TCONV3D_STATIC_DEFINITIONS "${tconv3d_feature_definitions}")
list(TRANSFORM tconv3d_feature_definitions PREPEND "-D" OUTPUT_VARIABLE pc_definitions)
list(JOIN pc_definitions " " TCONV3D_PC_DEFINITIONS)
set(TCONV3D_PC_PRIVATE_LIBS "${pc_private_libs}")

configure_package_config_file(cmake/tconv3dConfig.cmake.in ${CMAKE_BINARY_DIR}/tconv3dConfig.cmake
                              INSTALL_DESTINATION ${tconv3d_cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/tconv3dConfigVersion.cmake COMPATIBILITY SameMinorVersion)
configure_file(cmake/tconv3dStatic.cmake.in ${CMAKE_BINARY_DIR}/tconv3dStatic.cmake @ONLY)
configure_file(cmake/tconv3d.pc.in ${CMAKE_BINARY_DIR}/tconv3d.pc @ONLY)
configure_file(cmake/tconv3d-static.pc.in ${CMAKE_BINARY_DIR}/tconv3d-static.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/tconv3dConfig.cmake ${CMAKE_BINARY_DIR}/tconv3dConfigVersion.cmake
              ${CMAKE_BINARY_DIR}/tconv3dStatic.cmake cmake/tconv3d_add_kernel.cmake
        DESTINATION ${tconv3d_cmake_dir})
install(FILES ${CMAKE_BINARY_DIR}/tconv3d.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(NOT TCONV3D_STATIC_UNAVAILABLE)
  install(FILES ${CMAKE_BINARY_DIR}/tconv3d-static.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
