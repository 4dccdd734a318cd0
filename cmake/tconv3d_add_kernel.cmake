# tconv3d_add_kernel(TARGET t NAME up1 LAYER up1.json INPUT_SHAPE 1,16,16,16,256
#                    [KERNEL k.npy [BIAS b.npy]] [BACKEND llvm|xbyak] [ISA avx2|avx512] [TRIPLE triple])
#
# Generates NAME.o and NAME.h with `tconv3d aot` at build time (re-run when the
# layer, the weights or the tool change), links the object into target t and
# puts the header on its include path. The generated C function NAME needs no
# tconv3d library at run time. The tool is TCONV3D_AOT_TOOL (a path or a
# target); it defaults to tconv3d::cli (installed package) or tconv3d_cli
# (inside the tconv3d build).
function(tconv3d_add_kernel)
  cmake_parse_arguments(arg "" "TARGET;NAME;LAYER;INPUT_SHAPE;KERNEL;BIAS;BACKEND;ISA;TRIPLE" "" ${ARGN})
  foreach(required TARGET NAME LAYER INPUT_SHAPE)
    if(NOT arg_${required})
      message(FATAL_ERROR "tconv3d_add_kernel: ${required} is required")
    endif()
  endforeach()
  if(arg_BIAS AND NOT arg_KERNEL)
    message(FATAL_ERROR "tconv3d_add_kernel: BIAS needs KERNEL")
  endif()
  if(DEFINED TCONV3D_AOT_TOOL)
    set(tool ${TCONV3D_AOT_TOOL})
  elseif(TARGET tconv3d::cli)
    set(tool tconv3d::cli)
  elseif(TARGET tconv3d_cli)
    set(tool tconv3d_cli)
  else()
    message(FATAL_ERROR "tconv3d_add_kernel: no tconv3d tool (set TCONV3D_AOT_TOOL)")
  endif()
  if(TARGET ${tool})
    set(tool_command $<TARGET_FILE:${tool}>)
    set(tool_depends ${tool})
  else()
    set(tool_command ${tool})
    set(tool_depends ${tool})
  endif()

  set(dir ${CMAKE_CURRENT_BINARY_DIR}/tconv3d_kernels)
  set(object ${dir}/${arg_NAME}.o)
  set(header ${dir}/${arg_NAME}.h)
  get_filename_component(layer ${arg_LAYER} ABSOLUTE)
  set(flags --layer ${layer} --input-shape ${arg_INPUT_SHAPE} --symbol ${arg_NAME} -o ${object} --header ${header})
  set(depends ${layer} ${tool_depends})
  if(arg_KERNEL)
    get_filename_component(kernel ${arg_KERNEL} ABSOLUTE)
    list(APPEND flags --kernel ${kernel})
    list(APPEND depends ${kernel})
  endif()
  if(arg_BIAS)
    get_filename_component(bias ${arg_BIAS} ABSOLUTE)
    list(APPEND flags --bias ${bias})
    list(APPEND depends ${bias})
  endif()
  if(arg_BACKEND)
    list(APPEND flags --backend ${arg_BACKEND})
  endif()
  if(arg_ISA)
    list(APPEND flags --isa ${arg_ISA})
  endif()
  if(arg_TRIPLE)
    list(APPEND flags --target ${arg_TRIPLE})
  endif()
  add_custom_command(
    OUTPUT ${object} ${header}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${tool_command} aot ${flags}
    DEPENDS ${depends}
    COMMENT "tconv3d aot: ${arg_NAME}"
    VERBATIM)
  set_source_files_properties(${object} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  set_source_files_properties(${header} PROPERTIES GENERATED TRUE)
  target_sources(${arg_TARGET} PRIVATE ${object} ${header})
  target_include_directories(${arg_TARGET} PRIVATE ${dir})
endfunction()
