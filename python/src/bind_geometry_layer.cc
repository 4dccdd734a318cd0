// _core.GeometryLayer: a Layer made from an explicit geometry (PyTorch's
// symmetric padding and output_padding as per-axis crops), for tconv3d.torch.
// Tensors cross as raw addresses (torch's data_ptr()): the Python caller
// checks dtype, device and layout and keeps the tensors alive through the
// call, so no DLPack or NumPy wrapping is paid per call.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <nanobind/stl/array.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "python/src/bindings.hpp"
#include "python/src/describe.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/layer.hpp"

namespace nb = nanobind;

namespace tconv3d::python {
namespace {

using Triple = std::array<int64_t, 3>;

DataFormat data_format_of(const std::string& name) {
  if (name == "channels_last") return DataFormat::kChannelsLast;
  if (name == "channels_first") return DataFormat::kChannelsFirst;
  throw Error("data_format", "expected channels_last or channels_first, got '" + name + "'");
}

const float* float_ptr(uintptr_t address) { return reinterpret_cast<const float*>(address); }

class GeometryLayer {
 public:
  // input_shape in the data format's order; kernel at kernel_address in
  // Keras layout (kd, kh, kw, filters, in_channels), C-contiguous float32;
  // bias_address 0 for none. Per axis D, H, W: PyTorch's padding crops the
  // start and the end, output_padding gives back samples at the end.
  GeometryLayer(const std::vector<int64_t>& input_shape, const std::string& data_format, int64_t filters,
                const Triple& kernel, const Triple& stride, const Triple& dilation, const Triple& padding,
                const Triple& output_padding, uintptr_t kernel_address, uintptr_t bias_address, int threads,
                const std::string& backend, const std::string& isa) {
    if (input_shape.size() != 5)
      throw Error("input", "expected 5 dimensions, got " + shape_to_string(input_shape));
    if (threads < 0) throw Error("threads", "must be >= 0, got " + std::to_string(threads));
    ConvGeometry g;
    g.data_format = data_format_of(data_format);
    const bool last = g.data_format == DataFormat::kChannelsLast;
    g.batch = input_shape[0];
    g.in_channels = input_shape[last ? 4 : 1];
    g.out_channels = filters;
    for (size_t a = 0; a < 3; ++a) {
      AxisGeometry& ax = g.axes[a];
      ax.in = input_shape[last ? 1 + a : 2 + a];
      ax.kernel = kernel[a];
      ax.stride = stride[a];
      ax.dilation = dilation[a];
      ax.crop_begin = padding[a];
      // PyTorch: (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1.
      ax.out = ax.full_out() - 2 * padding[a] + output_padding[a];
    }
    LayerOptions options;
    options.backend = parse_backend(backend);
    options.isa = parse_isa(isa);
    options.threads = threads;
    const ConstTensor k{float_ptr(kernel_address), {kernel[0], kernel[1], kernel[2], filters, g.in_channels}};
    const ConstTensor b = bias_address ? ConstTensor{float_ptr(bias_address), {filters}} : ConstTensor{};
    nb::gil_scoped_release release;  // planning, packing, maybe compiling
    layer_ = std::make_shared<const Layer>(Layer::create_from_geometry(g, Activation{}, k, b, options));
  }

  // The same layer for another input shape (same channels): shares the packing.
  GeometryLayer reshape(const std::vector<int64_t>& input_shape) const {
    nb::gil_scoped_release release;
    return GeometryLayer(std::make_shared<const Layer>(layer_->reshape(input_shape)));
  }

  // Both buffers hold float32 in the layer's data format: input_shape() and
  // output_shape() elements. The caller keeps them alive.
  void forward(uintptr_t input_address, uintptr_t output_address) const {
    nb::gil_scoped_release release;
    layer_->forward(float_ptr(input_address), reinterpret_cast<float*>(output_address));
  }

  std::vector<int64_t> input_shape() const {
    const Shape5 s = layer_->input_shape();
    return {s.begin(), s.end()};
  }
  std::vector<int64_t> output_shape() const {
    const Shape5 s = layer_->output_shape();
    return {s.begin(), s.end()};
  }
  // Per axis D, H, W: (in, kernel, stride, dilation, crop_begin, out).
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>> geometry() const {
    std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>> axes;
    for (const AxisGeometry& a : layer_->geometry().axes)
      axes.emplace_back(a.in, a.kernel, a.stride, a.dilation, a.crop_begin, a.out);
    return axes;
  }
  const Layer& layer() const { return *layer_; }

 private:
  explicit GeometryLayer(std::shared_ptr<const Layer> layer) : layer_(std::move(layer)) {}
  std::shared_ptr<const Layer> layer_;
};

}  // namespace

void bind_geometry_layer(nb::module_& m) {
  nb::class_<GeometryLayer>(m, "GeometryLayer")
      .def(nb::init<const std::vector<int64_t>&, const std::string&, int64_t, const Triple&, const Triple&,
                    const Triple&, const Triple&, const Triple&, uintptr_t, uintptr_t, int, const std::string&,
                    const std::string&>(),
           nb::arg("input_shape"), nb::arg("data_format"), nb::arg("filters"), nb::arg("kernel_size"),
           nb::arg("stride"), nb::arg("dilation"), nb::arg("padding"), nb::arg("output_padding"),
           nb::arg("kernel_address"), nb::arg("bias_address"), nb::arg("threads"), nb::arg("backend") = "auto",
           nb::arg("isa") = "auto")
      .def("reshape", &GeometryLayer::reshape, nb::arg("input_shape"))
      .def("forward", &GeometryLayer::forward, nb::arg("input_address"), nb::arg("output_address"))
      .def_prop_ro("input_shape", &GeometryLayer::input_shape)
      .def_prop_ro("output_shape", &GeometryLayer::output_shape)
      .def_prop_ro("geometry", &GeometryLayer::geometry)
      .def_prop_ro("data_format", [](const GeometryLayer& l) { return to_string(l.layer().config().data_format); })
      .def_prop_ro("kernel_name", [](const GeometryLayer& l) { return describe(l.layer()).kernel_name; })
      .def_prop_ro("backend", [](const GeometryLayer& l) { return describe(l.layer()).backend; })
      .def_prop_ro("isa", [](const GeometryLayer& l) { return describe(l.layer()).isa; })
      .def_prop_ro("threads", [](const GeometryLayer& l) { return l.layer().threads(); })
      .def_prop_ro("weight_packs", [](const GeometryLayer& l) { return l.layer().weight_packs(); });
}

}  // namespace tconv3d::python
