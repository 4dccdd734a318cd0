#include "runtime/model/onnx_proto.hpp"

#include <cstring>

#include "runtime/model/protobuf_wire.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

std::string text(const WireField& f, const std::string& name) {
  if (f.type != WireType::kLengthDelimited) throw Error(name, "corrupt ONNX: a string field has the wrong wire type");
  return std::string(f.bytes);
}

std::string_view message(const WireField& f, const std::string& name) {
  if (f.type != WireType::kLengthDelimited) throw Error(name, "corrupt ONNX: a message field has the wrong wire type");
  return f.bytes;
}

OnnxAttribute parse_attribute(std::string_view bytes, const std::string& name) {
  OnnxAttribute a;
  for_each_field(bytes, name, [&](const WireField& f) {
    switch (f.number) {
      case 1: a.name = text(f, name); break;
      case 20: a.type = static_cast<int>(f.value); break;
      case 2: {
        std::vector<float> one;
        append_floats(f, one, name);
        if (!one.empty()) a.f = one.back();
        break;
      }
      case 3: a.i = static_cast<int64_t>(f.value); break;
      case 4: a.s = text(f, name); break;
      case 5: a.tensor = message(f, name); break;
      case 8: append_int64s(f, a.ints, name); break;
      default: break;
    }
  });
  return a;
}

OnnxNode parse_node(std::string_view bytes, const std::string& name) {
  OnnxNode n;
  for_each_field(bytes, name, [&](const WireField& f) {
    switch (f.number) {
      case 1: n.inputs.push_back(text(f, name)); break;
      case 2: n.outputs.push_back(text(f, name)); break;
      case 3: n.name = text(f, name); break;
      case 4: n.op_type = text(f, name); break;
      case 7: n.domain = text(f, name); break;
      case 5: n.attributes.push_back(parse_attribute(message(f, name), name)); break;
      default: break;
    }
  });
  return n;
}

// TensorShapeProto.Dimension: dim_value = 1, dim_param = 2.
int64_t parse_dimension(std::string_view bytes, const std::string& name) {
  int64_t value = -1;
  for_each_field(bytes, name, 1, [&](const WireField& f) {
    if (f.type == WireType::kVarint) value = static_cast<int64_t>(f.value);
  });
  return value > 0 ? value : -1;
}

// ValueInfoProto{name = 1, type = 2}: TypeProto.tensor_type = 1,
// Tensor.shape = 2, TensorShapeProto.dim = 1.
void parse_value_info(std::string_view bytes, const std::string& name, OnnxGraph& graph) {
  std::string tensor_name;
  std::optional<std::vector<int64_t>> shape;
  for_each_field(bytes, name, [&](const WireField& f) {
    if (f.number == 1) tensor_name = text(f, name);
    if (f.number != 2) return;
    for_each_field(message(f, name), name, 1, [&](const WireField& tensor_type) {
      for_each_field(message(tensor_type, name), name, 2, [&](const WireField& tensor_shape) {
        shape.emplace();
        for_each_field(message(tensor_shape, name), name, 1, [&](const WireField& dim) {
          shape->push_back(parse_dimension(message(dim, name), name));
        });
      });
    });
  });
  if (shape && !tensor_name.empty()) graph.shapes[tensor_name] = *shape;
}

OnnxGraph parse_graph(std::string_view bytes, const std::string& name) {
  OnnxGraph graph;
  for_each_field(bytes, name, [&](const WireField& f) {
    switch (f.number) {
      case 1: graph.nodes.push_back(parse_node(message(f, name), name)); break;
      case 5: {
        const std::string_view tensor = message(f, name);
        graph.initializers[parse_onnx_tensor(tensor, name).name] = tensor;
        break;
      }
      case 11:  // input
      case 12:  // output
      case 13:  // value_info
        parse_value_info(message(f, name), name, graph);
        break;
      default: break;
    }
  });
  return graph;
}

}  // namespace

const OnnxAttribute* OnnxNode::attribute(const std::string& wanted) const {
  for (const auto& a : attributes)
    if (a.name == wanted) return &a;
  return nullptr;
}

OnnxTensor parse_onnx_tensor(std::string_view bytes, const std::string& name) {
  OnnxTensor t;
  for_each_field(bytes, name, [&](const WireField& f) {
    switch (f.number) {
      case 1: append_int64s(f, t.dims, name); break;
      case 2: t.data_type = static_cast<int>(f.value); break;
      case 4:
        append_floats(f, t.float_data, name);
        t.has_float_data = true;
        break;
      case 8: t.name = text(f, name); break;
      case 9: t.raw_data = message(f, name); break;
      case 13: {  // StringStringEntryProto{key = 1, value = 2}
        std::string key, value;
        for_each_field(message(f, name), name, [&](const WireField& e) {
          if (e.number == 1) key = text(e, name);
          if (e.number == 2) value = text(e, name);
        });
        t.external_data[key] = value;
        break;
      }
      case 14: t.external = f.value == 1; break;
      default: break;
    }
  });
  return t;
}

OnnxGraph parse_onnx_model(std::string_view bytes, const std::string& name) {
  std::optional<OnnxGraph> graph;
  bool has_ir_version = false;
  for_each_field(bytes, name, [&](const WireField& f) {
    if (f.number == 1 && f.type == WireType::kVarint) has_ir_version = true;
    if (f.number == 7) graph = parse_graph(message(f, name), name);
  });
  if (!graph) {
    throw Error(name, has_ir_version ? "the ONNX model has no graph"
                                     : "not an ONNX model (no ir_version and no graph; corrupt or not ONNX?)");
  }
  return *graph;
}

}  // namespace tconv3d::model
