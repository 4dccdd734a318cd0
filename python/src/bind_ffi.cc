// _core.ffi_handler(), _core.ffi_backward_handler(): the XLA FFI handlers as
// capsules for jax.ffi.register_ffi_target, or None when the package was built without
// the XLA FFI headers (then tconv3d.jax says so on import).
#include <nanobind/nanobind.h>

#include "python/src/bindings.hpp"
#ifdef TCONV3D_PY_HAVE_FFI
#include "python/src/ffi_handler.hpp"
#endif

namespace nb = nanobind;

namespace tconv3d::python {

void bind_ffi(nb::module_& m) {
  m.def("ffi_handler", []() -> nb::object {
#ifdef TCONV3D_PY_HAVE_FFI
    return nb::capsule(ffi_forward_handler());
#else
    return nb::none();
#endif
  });
  m.def("ffi_forward_bf16_handler", []() -> nb::object {
#ifdef TCONV3D_PY_HAVE_FFI
    return nb::capsule(ffi_forward_bf16_handler());
#else
    return nb::none();
#endif
  });
  m.def("ffi_backward_bf16_handler", []() -> nb::object {
#ifdef TCONV3D_PY_HAVE_FFI
    return nb::capsule(ffi_backward_bf16_handler());
#else
    return nb::none();
#endif
  });
  m.def("ffi_backward_handler", []() -> nb::object {
#ifdef TCONV3D_PY_HAVE_FFI
    return nb::capsule(ffi_backward_handler());
#else
    return nb::none();
#endif
  });
}

}  // namespace tconv3d::python
