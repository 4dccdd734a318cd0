// The parts of an ONNX model tconv3d reads, decoded from the wire format.
// Field numbers follow the public onnx.proto.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tconv3d::model {

struct OnnxAttribute {
  std::string name;
  int type = 0;  // AttributeProto.AttributeType: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS...
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::string_view tensor;  // TensorProto bytes (for Constant nodes)
};

struct OnnxNode {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxAttribute> attributes;
  const OnnxAttribute* attribute(const std::string& name) const;
};

struct OnnxTensor {
  std::string name;
  std::vector<int64_t> dims;
  int data_type = 0;  // TensorProto.DataType: 1 FLOAT
  std::string_view raw_data;
  std::vector<float> float_data;
  bool has_float_data = false;
  bool external = false;
  std::map<std::string, std::string> external_data;  // location, offset, length, checksum
};

struct OnnxGraph {
  std::vector<OnnxNode> nodes;
  std::map<std::string, std::string_view> initializers;  // name -> TensorProto bytes
  // Declared tensor shapes (inputs, outputs, value_info): -1 for a symbolic
  // or missing dimension. Absent when the file has no shape for the name.
  std::map<std::string, std::vector<int64_t>> shapes;
};

// `bytes` must outlive the result (tensors point into it).
OnnxGraph parse_onnx_model(std::string_view bytes, const std::string& name);
OnnxTensor parse_onnx_tensor(std::string_view bytes, const std::string& name);

}  // namespace tconv3d::model
