// _core's side of the TensorFlow op (tf_bridge.hpp): the forward function the
// op library calls, and _core._bind_tf_op, which hands it to a loaded library.
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <nanobind/stl/string.h>

#include "python/src/bindings.hpp"
#include "python/src/registry.hpp"
#include "python/src/tf_bridge.hpp"
#include "tconv3d/error.hpp"

namespace nb = nanobind;

namespace tconv3d::python {
namespace {

void set_error(char* error, size_t size, const std::string& message) {
  if (size == 0) return;
  const size_t n = std::min(size - 1, message.size());
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

std::vector<int64_t> shape_of(const Tconv3dTfTensor& t) { return std::vector<int64_t>(t.shape, t.shape + t.rank); }

const char* dtype_name(DataType dtype) { return dtype == DataType::kBfloat16 ? "bfloat16" : "float32"; }

int forward(int64_t cache_id, int dtype, Tconv3dTfTensor x, Tconv3dTfTensor kernel, Tconv3dTfTensor bias,
            Tconv3dTfAllocate allocate, void* context, char* error, size_t error_size) {
  // No exception may cross into TensorFlow: each becomes a code and a message.
  try {
    if (dtype != TCONV3D_TF_FLOAT32 && dtype != TCONV3D_TF_BFLOAT16) {
      throw Error("dtype", "expected TCONV3D_TF_FLOAT32 or TCONV3D_TF_BFLOAT16, got " + std::to_string(dtype));
    }
    SpecializationCache& cache = *lookup_cache(cache_id);
    const DataType given = dtype == TCONV3D_TF_BFLOAT16 ? DataType::kBfloat16 : DataType::kFloat32;
    if (given != cache.options().dtype) {
      // Checked before anything is built: the op's T attr and the registered layer disagree.
      throw Error("x", std::string("expected ") + dtype_name(cache.options().dtype) + ", got " + dtype_name(given) +
                           " (cache_id names a " + dtype_name(cache.options().dtype) + " layer)");
    }
    const ConstTensor k{static_cast<const float*>(kernel.data), shape_of(kernel)};
    const ConstTensor b =
        cache.config().use_bias ? ConstTensor{static_cast<const float*>(bias.data), shape_of(bias)} : ConstTensor{};
    auto layer = cache.get(shape_of(x), k, b, /*compare_weights=*/true);
    const Shape5 out = layer->output_shape();
    void* y = allocate(context, out.data(), static_cast<int>(out.size()));
    if (y == nullptr) {
      set_error(error, error_size, "tconv3d: the output allocation failed");
      return TCONV3D_TF_INTERNAL;
    }
    if (given == DataType::kBfloat16) {
      layer->forward_bf16(static_cast<const uint16_t*>(x.data), static_cast<uint16_t*>(y));
    } else {
      layer->forward(static_cast<const float*>(x.data), static_cast<float*>(y));
    }
    return TCONV3D_TF_OK;
  } catch (const Error& e) {
    set_error(error, error_size, std::string("tconv3d: ") + e.what());
    return TCONV3D_TF_INVALID_ARGUMENT;
  } catch (const std::exception& e) {
    set_error(error, error_size, std::string("tconv3d: ") + e.what());
    return TCONV3D_TF_INTERNAL;
  }
}

const Tconv3dTfBridge kBridge{TCONV3D_TF_BRIDGE_VERSION, &forward};

// `path` must already be loaded (tf.load_op_library): RTLD_NOLOAD only finds it.
void bind_tf_op(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (handle == nullptr) throw Error("path", path + " is not loaded (load it with tf.load_op_library first)");
  auto bind = reinterpret_cast<Tconv3dTfBind>(dlsym(handle, "tconv3d_tf_bind"));
  const int rc = bind ? bind(&kBridge) : -2;
  dlclose(handle);  // only drops the reference RTLD_NOLOAD added; TensorFlow keeps its own
  if (bind == nullptr) throw Error("path", path + " has no tconv3d_tf_bind: not tconv3d's op library");
  if (rc != 0) throw Error("path", path + " was built from another tconv3d revision (bridge version mismatch)");
}

}  // namespace

void bind_tf(nb::module_& m) {
  m.def("_bind_tf_op", &bind_tf_op, nb::arg("path"),
        "Hands the loaded TensorFlow op library at `path` the table it calls tconv3d through.");
}

}  // namespace tconv3d::python
