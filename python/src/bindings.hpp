// The binding functions, one per file, called from module.cc.
#pragma once

#include <nanobind/nanobind.h>

namespace tconv3d::python {

void bind_specializer(nanobind::module_& m);  // bind_specializer.cc
void bind_model(nanobind::module_& m);        // bind_model.cc
void bind_ffi(nanobind::module_& m);          // bind_ffi.cc
void bind_onnx_op(nanobind::module_& m);      // bind_onnx_op.cc
void bind_tf(nanobind::module_& m);           // bind_tf.cc
void bind_geometry_layer(nanobind::module_& m);  // bind_geometry_layer.cc

}  // namespace tconv3d::python
