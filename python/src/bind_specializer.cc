// _core.Specializer: one Keras Conv3DTranspose config and its specialized
// layers (a SpecializationCache), as the NumPy API and tconv3d.jax use it.
// A Specializer computes in one dtype, float32 or bf16 (Keras's
// mixed_bfloat16: bf16 activations, float32 weights that the layer rounds to
// bf16); calling the other dtype's method is an error naming it.
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"
#include "python/src/describe.hpp"
#include "python/src/registry.hpp"
#include "python/src/specialization_cache.hpp"
#include "core/cpu_features.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"

namespace nb = nanobind;

namespace tconv3d::python {
namespace {

using AxisTuple = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

class Specializer {
 public:
  // linear: drop the activation (tconv3d.jax's differentiable path applies
  // it in JAX, where autodiff can see it).
  Specializer(const std::string& config_json, const std::optional<std::string>& flavor, const std::string& backend,
              const std::string& isa, int threads, bool linear, const std::string& dtype) {
    std::optional<Flavor> forced;
    if (flavor) forced = parse_flavor(*flavor);
    LayerConfig config = parse_layer_config(config_json, forced, &warnings_);
    if (linear) config.activation = Activation{};
    if (threads < 0) throw Error("threads", "must be >= 0, got " + std::to_string(threads));
    LayerOptions options;
    options.backend = parse_backend(backend);
    options.isa = parse_isa(isa);
    options.threads = threads;
    options.dtype = parse_data_type(dtype);
    if (options.dtype == DataType::kBfloat16 && !config.activation.is_elementwise()) {
      // Layer::create would say so at the first call; saying it here lets
      // callers (tconv3d.keras) fall back before anything runs.
      throw Error("activation", "bf16 layers take elementwise activations only, got " + config.activation.name);
    }
    cache_ = std::make_shared<SpecializationCache>(std::move(config), options);
  }

  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const {
    const ConvGeometry g = resolve_geometry(cache_->config(), input_shape);
    const Shape5 s = activated_output_shape(g, cache_->config().activation);
    return {s.begin(), s.end()};
  }

  // Per axis D, H, W: (in, kernel, stride, dilation, crop_begin, out).
  std::vector<AxisTuple> geometry(const std::vector<int64_t>& input_shape) const {
    const ConvGeometry g = resolve_geometry(cache_->config(), input_shape);
    std::vector<AxisTuple> axes;
    for (const AxisGeometry& a : g.axes) axes.emplace_back(a.in, a.kernel, a.stride, a.dilation, a.crop_begin, a.out);
    return axes;
  }

  void check_weights(const std::vector<int64_t>& kernel_shape,
                     const std::optional<std::vector<int64_t>>& bias_shape) const {
    check_weight_shapes(cache_->config(), kernel_shape, bias_shape ? &*bias_shape : nullptr);
  }

  OutArray forward(const InArray& x, const InArray& kernel, const std::optional<InArray>& bias,
                   bool compare_weights) {
    require_dtype(DataType::kFloat32, "forward");
    const std::vector<int64_t> input_shape = shape_of(x);
    const ConstTensor k{kernel.data(), shape_of(kernel)};
    const ConstTensor b = bias ? ConstTensor{bias->data(), shape_of(*bias)} : ConstTensor{};
    std::shared_ptr<const Layer> layer;
    {
      // Specializing (planning, maybe compiling, packing) and computing both
      // run without the GIL; the arrays stay alive through the references.
      nb::gil_scoped_release release;
      layer = cache_->get(input_shape, k, b, compare_weights);
    }
    const Shape5 out = layer->output_shape();
    OutArray y = new_array({out.begin(), out.end()});
    {
      nb::gil_scoped_release release;
      layer->forward(x.data(), y.data());
    }
    return y;
  }

  // The bf16 forward: x and the result are bf16 bits (uint16), the weights
  // float32 (Keras's variables; the layer rounds the kernel to bf16 once).
  OutBits forward_bf16(const InBits& x, const InArray& kernel, const std::optional<InArray>& bias,
                       bool compare_weights) {
    require_dtype(DataType::kBfloat16, "forward_bf16");
    const std::vector<int64_t> input_shape = shape_of(x);
    const ConstTensor k{kernel.data(), shape_of(kernel)};
    const ConstTensor b = bias ? ConstTensor{bias->data(), shape_of(*bias)} : ConstTensor{};
    std::shared_ptr<const Layer> layer;
    {
      nb::gil_scoped_release release;
      layer = cache_->get(input_shape, k, b, compare_weights);
    }
    const Shape5 out = layer->output_shape();
    OutBits y = new_array<uint16_t>({out.begin(), out.end()});
    {
      nb::gil_scoped_release release;
      layer->forward_bf16(x.data(), y.data());
    }
    return y;
  }

  // The gradients (dx, dkernel, dbias) for the output gradient dy; y is the
  // forward output (needed unless the activation is linear). Only the
  // requested ones are computed; the others come back as None.
  std::tuple<std::optional<OutArray>, std::optional<OutArray>, std::optional<OutArray>> backward(
      const InArray& x, const InArray& kernel, const std::optional<InArray>& bias, const std::optional<InArray>& y,
      const InArray& dy, bool want_dx, bool want_dkernel, bool want_dbias) {
    require_dtype(DataType::kFloat32, "backward");
    return gradients<float, OutArray>(x, kernel, bias, y, dy, want_dx, want_dkernel, want_dbias);
  }

  // The bf16 layer's gradients: x, y and dy bf16 bits (y as for backward),
  // dx bf16 bits, dkernel and dbias float32 (the variables' gradients).
  std::tuple<std::optional<OutBits>, std::optional<OutArray>, std::optional<OutArray>> backward_bf16(
      const InBits& x, const InArray& kernel, const std::optional<InArray>& bias, const std::optional<InBits>& y,
      const InBits& dy, bool want_dx, bool want_dkernel, bool want_dbias) {
    require_dtype(DataType::kBfloat16, "backward_bf16");
    return gradients<uint16_t, OutBits>(x, kernel, bias, y, dy, want_dx, want_dkernel, want_dbias);
  }

  // (kernel_name, backend, isa, threads) of the most recent specialization.
  std::optional<std::tuple<std::string, std::string, std::string, int>> latest() const {
    auto layer = cache_->latest();
    if (!layer) return std::nullopt;
    const Description d = describe(*layer);
    return std::make_tuple(d.kernel_name, d.backend, d.isa, layer->threads());
  }

  int64_t register_for_ffi() const { return register_cache(cache_); }
  int64_t builds() const { return cache_->builds(); }

  const std::vector<std::string>& warnings() const { return warnings_; }
  const LayerConfig& config() const { return cache_->config(); }
  std::string dtype() const { return cache_->options().dtype == DataType::kBfloat16 ? "bfloat16" : "float32"; }

 private:
  // backward and backward_bf16: x, y, dy and dx of element type T (float, or
  // bf16 bits), the kernel's and bias's gradients float32.
  template <typename T, typename OutValues, typename InValues>
  std::tuple<std::optional<OutValues>, std::optional<OutArray>, std::optional<OutArray>> gradients(
      const InValues& x, const InArray& kernel, const std::optional<InArray>& bias, const std::optional<InValues>& y,
      const InValues& dy, bool want_dx, bool want_dkernel, bool want_dbias) {
    const std::vector<int64_t> input_shape = shape_of(x);
    const ConstTensor k{kernel.data(), shape_of(kernel)};
    const ConstTensor b = bias ? ConstTensor{bias->data(), shape_of(*bias)} : ConstTensor{};
    std::shared_ptr<const Layer> layer;
    {
      nb::gil_scoped_release release;
      layer = cache_->get(input_shape, k, b, /*compare_weights=*/true);
    }
    const Shape5 out = layer->output_shape();
    const std::vector<int64_t> out_shape(out.begin(), out.end());
    if (shape_of(dy) != out_shape) {
      throw Error("dy", "expected the output's shape " + shape_to_string(out_shape) + ", got " +
                            shape_to_string(shape_of(dy)));
    }
    if (y && shape_of(*y) != out_shape) {
      throw Error("y", "expected the output's shape " + shape_to_string(out_shape) + ", got " +
                           shape_to_string(shape_of(*y)));
    }
    std::optional<OutValues> dx;
    std::optional<OutArray> dk, db;
    if (want_dx) dx = new_array<T>(input_shape);
    if (want_dkernel) dk = new_array(k.shape);
    if (want_dbias && bias) db = new_array(b.shape);
    {
      nb::gil_scoped_release release;
      const T* y_data = y ? y->data() : nullptr;
      T* dx_data = dx ? dx->data() : nullptr;
      float* dk_data = dk ? dk->data() : nullptr;
      float* db_data = db ? db->data() : nullptr;
      if constexpr (std::is_same_v<T, float>)
        layer->backward(x.data(), y_data, dy.data(), dx_data, dk_data, db_data);
      else
        layer->backward_bf16(x.data(), y_data, dy.data(), dx_data, dk_data, db_data);
    }
    return {std::move(dx), std::move(dk), std::move(db)};
  }

  // Checked before any layer is built, so the message names the call, not a kernel.
  void require_dtype(DataType wanted, const char* call) const {
    if (cache_->options().dtype == wanted) return;
    throw Error("dtype", std::string(call) + " on a " + dtype() + " specializer: it computes " + dtype() +
                             (wanted == DataType::kFloat32 ? " (use forward_bf16)" : " (use forward)"));
  }

  std::shared_ptr<SpecializationCache> cache_;
  std::vector<std::string> warnings_;
};

}  // namespace

void bind_specializer(nb::module_& m) {
  nb::class_<Specializer>(m, "Specializer")
      .def(nb::init<const std::string&, const std::optional<std::string>&, const std::string&, const std::string&,
                    int, bool, const std::string&>(),
           nb::arg("config_json"), nb::arg("flavor").none(), nb::arg("backend"), nb::arg("isa"), nb::arg("threads"),
           nb::arg("linear"), nb::arg("dtype") = "float32")
      .def("output_shape", &Specializer::output_shape)
      .def("geometry", &Specializer::geometry)
      .def("check_weights", &Specializer::check_weights, nb::arg("kernel_shape"), nb::arg("bias_shape").none())
      .def("forward", &Specializer::forward, nb::arg("x").noconvert(), nb::arg("kernel").noconvert(),
           nb::arg("bias").noconvert().none(), nb::arg("compare_weights"))
      .def("forward_bf16", &Specializer::forward_bf16, nb::arg("x").noconvert(), nb::arg("kernel").noconvert(),
           nb::arg("bias").noconvert().none(), nb::arg("compare_weights"))
      .def("backward", &Specializer::backward, nb::arg("x").noconvert(), nb::arg("kernel").noconvert(),
           nb::arg("bias").noconvert().none(), nb::arg("y").noconvert().none(), nb::arg("dy").noconvert(),
           nb::arg("want_dx"), nb::arg("want_dkernel"), nb::arg("want_dbias"))
      .def("backward_bf16", &Specializer::backward_bf16, nb::arg("x").noconvert(), nb::arg("kernel").noconvert(),
           nb::arg("bias").noconvert().none(), nb::arg("y").noconvert().none(), nb::arg("dy").noconvert(),
           nb::arg("want_dx"), nb::arg("want_dkernel"), nb::arg("want_dbias"))
      .def("latest", &Specializer::latest)
      .def("register_for_ffi", &Specializer::register_for_ffi)
      .def_prop_ro("warnings", &Specializer::warnings)
      .def_prop_ro("builds", &Specializer::builds)
      .def_prop_ro("filters", [](const Specializer& s) { return s.config().filters; })
      .def_prop_ro("use_bias", [](const Specializer& s) { return s.config().use_bias; })
      .def_prop_ro("data_format", [](const Specializer& s) { return to_string(s.config().data_format); })
      .def_prop_ro("activation", [](const Specializer& s) { return s.config().activation.name; })
      .def_prop_ro("flavor", [](const Specializer& s) { return to_string(s.config().flavor); })
      .def_prop_ro("dtype", &Specializer::dtype);
  m.def("release_ffi", &release_cache, nb::arg("cache_id"));
  // None where bf16 layers run (AVX512_BF16, as TCONV3D_CPU_MASK leaves the
  // CPU's features), else why not: tconv3d.keras falls back on it before any
  // call, where a failing first call inside a compiled XLA program could not.
  m.def("bf16_unavailable", []() -> std::optional<std::string> {
    const CpuFeatures cpu = cpu_features();
    if (cpu.avx512_bf16) return std::nullopt;
    return std::string("bf16 needs avx512_bf16 (vdpbf16ps), which this CPU") + (cpu.avx512 ? "" : " (or OS)") +
           " lacks or TCONV3D_CPU_MASK hides";
  });
}

}  // namespace tconv3d::python
