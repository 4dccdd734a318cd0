// _core.Model / _core.ModelLayer: the C++ model loader (.keras, .h5, .onnx).
#include <memory>
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
#include "tconv3d/error.hpp"
#include "tconv3d/model.hpp"

namespace nb = nanobind;

namespace tconv3d::python {
namespace {

// The loaded model. A handle, not Model itself: Model is move-only, and a
// binding of the class would try to copy it.
struct ModelHandle {
  std::shared_ptr<Model> model;
};

// A layer keeps its model alive: Python may drop the model and keep a layer.
struct ModelLayerRef {
  std::shared_ptr<Model> model;
  const ModelLayer* layer;

  OutArray forward(const InArray& x) const {
    const std::vector<int64_t> shape = shape_of(x);
    const Layer* specialized = nullptr;
    {
      nb::gil_scoped_release release;
      specialized = &layer->layer_for(shape);
    }
    const Shape5 out = specialized->output_shape();
    OutArray y = new_array({out.begin(), out.end()});
    nb::gil_scoped_release release;
    specialized->forward(x.data(), y.data());
    return y;
  }

  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const {
    const Shape5 out = layer->layer_for(input_shape).output_shape();
    return {out.begin(), out.end()};
  }

  std::optional<std::tuple<std::string, std::string, std::string>> description(
      const std::vector<int64_t>& input_shape) const {
    const Description d = describe(layer->layer_for(input_shape));
    return std::make_tuple(d.kernel_name, d.backend, d.isa);
  }
};

ModelHandle load(const std::string& path, const std::string& backend, const std::string& isa,
                                  int threads, const std::optional<std::string>& flavor,
                                  const std::optional<std::string>& config_path) {
  ModelOptions options;
  options.layer.backend = parse_backend(backend);
  options.layer.isa = parse_isa(isa);
  if (threads < 0) throw Error("threads", "must be >= 0, got " + std::to_string(threads));
  options.layer.threads = threads;
  if (flavor) options.flavor = parse_flavor(*flavor);
  if (config_path) options.config_path = *config_path;
  nb::gil_scoped_release release;
  return ModelHandle{std::make_shared<Model>(Model::load(path, options))};
}

}  // namespace

void bind_model(nb::module_& m) {
  nb::class_<ModelLayerRef>(m, "ModelLayer")
      .def_prop_ro("name", [](const ModelLayerRef& r) { return r.layer->info().name; })
      .def_prop_ro("op", [](const ModelLayerRef& r) { return r.layer->info().op; })
      .def_prop_ro("summary", [](const ModelLayerRef& r) { return r.layer->info().summary; })
      .def_prop_ro("input_shape", [](const ModelLayerRef& r) { return r.layer->info().input_shape; })
      .def_prop_ro("data_format", [](const ModelLayerRef& r) { return to_string(r.layer->info().data_format); })
      .def_prop_ro("warnings", [](const ModelLayerRef& r) { return r.layer->info().warnings; })
      .def_prop_ro("specialized_shapes", [](const ModelLayerRef& r) { return r.layer->specialized_shapes(); })
      .def("forward", &ModelLayerRef::forward, nb::arg("x").noconvert())
      .def("output_shape", &ModelLayerRef::output_shape)
      .def("description", &ModelLayerRef::description);

  nb::class_<ModelHandle>(m, "Model")
      .def_prop_ro("path", [](const ModelHandle& h) { return h.model->path(); })
      .def_prop_ro("format", [](const ModelHandle& h) { return h.model->format(); })
      .def_prop_ro("warnings", [](const ModelHandle& h) { return h.model->warnings(); })
      .def_prop_ro("load_ms", [](const ModelHandle& h) { return h.model->load_ms(); });

  m.def("load_model", &load, nb::arg("path"), nb::arg("backend"), nb::arg("isa"), nb::arg("threads"),
        nb::arg("flavor").none(), nb::arg("config_path").none());
  m.def("model_layers", [](const ModelHandle& h) {
    std::vector<ModelLayerRef> layers;
    for (const ModelLayer& l : h.model->layers()) layers.push_back(ModelLayerRef{h.model, &l});
    return layers;
  });
}

}  // namespace tconv3d::python
