// _core.OnnxConvTranspose: one ONNX ConvTranspose node (its attributes and
// constant weights) as tconv3d.onnx's ONNX Runtime custom op runs it. The
// attributes go through the model loader's own reader and geometry
// (runtime/model/onnx_conv_transpose), so a node means here exactly what it
// means to `tconv3d.load_model` and the CLI. One packed layer per input
// shape, built once; forward() afterwards only computes.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"
#include "python/src/describe.hpp"
#include "runtime/model/onnx_conv_transpose.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"

namespace nb = nanobind;

namespace tconv3d::python {
namespace {

// (name, AttributeProto type, i, s, ints): what read_conv_transpose reads.
using AttributeIn = std::tuple<std::string, int, int64_t, std::string, std::vector<int64_t>>;
using OutInto = nb::ndarray<float, nb::c_contig, nb::device::cpu>;

class OnnxConvTransposeOp {
 public:
  OnnxConvTransposeOp(const std::vector<AttributeIn>& attributes, const InArray& weight,
                      const std::optional<InArray>& bias, int threads) {
    model::OnnxNode node;
    node.op_type = "ConvTranspose";
    for (const auto& [name, type, i, s, ints] : attributes) {
      model::OnnxAttribute a;
      a.name = name;
      a.type = type;
      a.i = i;
      a.s = s;
      a.ints = ints;
      node.attributes.push_back(std::move(a));
    }
    const std::vector<int64_t> w = shape_of(weight);
    op_ = model::read_conv_transpose(node, w);
    if (threads < 0) throw Error("threads", "must be >= 0, got " + std::to_string(threads));
    options_.threads = threads;
    // ONNX (Cin, Cout, kd, kh, kw) -> the library's Keras layout (kd, kh, kw, Cout, Cin).
    const int64_t cin = w[0], cout = w[1], spatial = w[2] * w[3] * w[4];
    kernel_.resize(static_cast<size_t>(cin * cout * spatial));
    const float* src = weight.data();
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t f = 0; f < cout; ++f)
        for (int64_t s = 0; s < spatial; ++s) kernel_[(s * cout + f) * cin + c] = src[(c * cout + f) * spatial + s];
    kernel_shape_ = {w[2], w[3], w[4], cout, cin};
    if (bias) {
      if (shape_of(*bias) != std::vector<int64_t>{cout})
        throw Error("B", "shape " + shape_to_string(shape_of(*bias)) + " does not match the weight's " +
                             std::to_string(cout) + " output channels");
      bias_.assign(bias->data(), bias->data() + cout);
      has_bias_ = true;
    }
  }

  // The output shape for an NCDHW input shape; throws tconv3d.Error for one
  // the node cannot take (rank, channels, an output size below 1).
  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const {
    const Shape5 s = model::onnx_geometry(op_, input_shape).output_shape();
    return {s.begin(), s.end()};
  }

  // Builds (plans, compiles, packs) the layer for this input shape unless
  // it exists; throws tconv3d.Error when tconv3d cannot run it.
  std::vector<int64_t> prepare(const std::vector<int64_t>& input_shape) {
    nb::gil_scoped_release release;
    const Shape5 s = layer_for(input_shape)->output_shape();
    return {s.begin(), s.end()};
  }

  OutArray forward(const InArray& x) {
    const std::vector<int64_t> shape = shape_of(x);
    std::shared_ptr<const Layer> layer;
    {
      nb::gil_scoped_release release;
      layer = layer_for(shape);
    }
    const Shape5 out = layer->output_shape();
    OutArray y = new_array({out.begin(), out.end()});
    nb::gil_scoped_release release;
    layer->forward(x.data(), y.data());
    return y;
  }

  // Into a caller's array of the output shape: tconv3d.onnx reuses one per
  // shape and thread, since a new output every call costs its page faults.
  void forward_into(const InArray& x, OutInto& y) {
    const std::vector<int64_t> shape = shape_of(x);
    std::shared_ptr<const Layer> layer;
    {
      nb::gil_scoped_release release;
      layer = layer_for(shape);
    }
    const Shape5 out = layer->output_shape();
    std::vector<int64_t> got(y.ndim());
    for (size_t i = 0; i < y.ndim(); ++i) got[i] = static_cast<int64_t>(y.shape(i));
    if (got != std::vector<int64_t>(out.begin(), out.end()))
      throw Error("out", "has shape " + shape_to_string(got) + ", the output is " + shape_to_string(out));
    nb::gil_scoped_release release;
    layer->forward(x.data(), y.data());
  }

  int64_t builds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return builds_;
  }
  std::string summary() const { return op_.summary(); }
  std::optional<std::tuple<std::string, std::string, std::string>> description(
      const std::vector<int64_t>& input_shape) {
    const Description d = describe(*layer_for(input_shape));
    return std::make_tuple(d.kernel_name, d.backend, d.isa);
  }

 private:
  std::shared_ptr<const Layer> layer_for(const std::vector<int64_t>& input_shape) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = layers_.find(input_shape); it != layers_.end()) return it->second;
    }
    const ConvGeometry g = model::onnx_geometry(op_, input_shape);
    std::shared_ptr<const Layer> first;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!layers_.empty()) first = layers_.begin()->second;
    }
    std::shared_ptr<const Layer> layer;
    // Another shape with the same crops shares the first layer's packed
    // weights; auto_pad SAME or output_shape crop differently per shape, and
    // those get a geometry (and packing) of their own.
    if (first) {
      auto reshaped = std::make_shared<const Layer>(first->reshape(input_shape));
      if (reshaped->geometry() == g) layer = reshaped;
    }
    if (!layer) {
      layer = std::make_shared<const Layer>(Layer::create_from_geometry(
          g, Activation{}, ConstTensor{kernel_.data(), kernel_shape_},
          has_bias_ ? ConstTensor{bias_.data(), {op_.out_channels}} : ConstTensor{}, options_));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, inserted] = layers_.emplace(input_shape, layer);
    if (inserted) ++builds_;
    return it->second;
  }

  model::OnnxConvTranspose op_;
  LayerOptions options_;
  std::vector<float> kernel_, bias_;
  std::vector<int64_t> kernel_shape_;
  bool has_bias_ = false;
  mutable std::mutex mutex_;
  std::map<std::vector<int64_t>, std::shared_ptr<const Layer>> layers_;
  int64_t builds_ = 0;
};

}  // namespace

void bind_onnx_op(nb::module_& m) {
  nb::class_<OnnxConvTransposeOp>(m, "OnnxConvTranspose")
      .def(nb::init<const std::vector<AttributeIn>&, const InArray&, const std::optional<InArray>&, int>(),
           nb::arg("attributes"), nb::arg("weight").noconvert(), nb::arg("bias").noconvert().none(),
           nb::arg("threads"))
      .def("output_shape", &OnnxConvTransposeOp::output_shape, nb::arg("input_shape"))
      .def("prepare", &OnnxConvTransposeOp::prepare, nb::arg("input_shape"))
      .def("forward", &OnnxConvTransposeOp::forward, nb::arg("x").noconvert())
      .def("forward_into", &OnnxConvTransposeOp::forward_into, nb::arg("x").noconvert(), nb::arg("out").noconvert())
      .def("description", &OnnxConvTransposeOp::description, nb::arg("input_shape"))
      .def_prop_ro("builds", &OnnxConvTransposeOp::builds)
      .def_prop_ro("summary", &OnnxConvTransposeOp::summary);
}

}  // namespace tconv3d::python
