// tconv3d._core: the C++ library as Python sees it. The public Python API
// (tconv3d.Layer, conv3d_transpose, load_model, tconv3d.jax, tconv3d.keras)
// is written in Python over these few objects.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "python/src/bindings.hpp"
#include "tconv3d/error.hpp"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "tconv3d's C++ library (internal; use the tconv3d package)";
  // tconv3d.Error: a ValueError that also carries the argument at fault.
  static nb::object error_type = nb::steal(
      PyErr_NewExceptionWithDoc("tconv3d.Error", "A bad argument, shape, config or model file (tconv3d::Error).",
                                PyExc_ValueError, nullptr));
  m.attr("Error") = error_type;
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const tconv3d::Error& e) {
      nb::object error = error_type(e.what());
      error.attr("argument") = e.argument();
      PyErr_SetObject(error_type.ptr(), error.ptr());
    }
  });
  tconv3d::python::bind_specializer(m);
  tconv3d::python::bind_model(m);
  tconv3d::python::bind_ffi(m);
  tconv3d::python::bind_onnx_op(m);
  tconv3d::python::bind_tf(m);
  tconv3d::python::bind_geometry_layer(m);
}
