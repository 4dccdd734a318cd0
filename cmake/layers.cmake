# The library's layers, lowest first: core -> plan -> emitters -> runtime.
# Each layer is an OBJECT library that links only the layers below it, and
# each sees headers only through an include root of its own in the build
# tree, holding links to its own folders (and its part of the public API).
# A header of a higher layer is therefore not on a lower layer's include
# path: including one fails to compile. The layers' objects are combined
# into the one library users link (tconv3d, -ltconv3d).
#
# tconv3d_layer(NAME
#               FOLDERS folder...           # linked into the include root
#               SOURCES source...
#               PUBLIC_HEADERS header...    # names under include/tconv3d/
#               LAYERS lower-layer...)      # tconv3d_<layer> targets below this one
function(tconv3d_layer name)
  cmake_parse_arguments(arg "" "" "FOLDERS;SOURCES;PUBLIC_HEADERS;LAYERS" ${ARGN})
  set(root ${CMAKE_BINARY_DIR}/layer-include/${name})
  file(REMOVE_RECURSE ${root})
  foreach(folder ${arg_FOLDERS})
    get_filename_component(parent ${root}/${folder} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${folder} ${root}/${folder} SYMBOLIC)
  endforeach()
  file(MAKE_DIRECTORY ${root}/tconv3d)
  foreach(header ${arg_PUBLIC_HEADERS})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/include/tconv3d/${header} ${root}/tconv3d/${header} SYMBOLIC)
  endforeach()

  set(target tconv3d_${name})
  add_library(${target} OBJECT ${arg_SOURCES})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${root}>)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  foreach(lower ${arg_LAYERS})
    target_link_libraries(${target} PUBLIC tconv3d_${lower})
  endforeach()
  set_property(GLOBAL APPEND PROPERTY TCONV3D_LAYERS ${target})
endfunction()
