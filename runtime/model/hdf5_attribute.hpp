// HDF5 attribute messages (versions 1 to 3) and their values as strings:
// the form in which Keras stores layer names, weight names and its config.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model/hdf5_datatype.hpp"
#include "runtime/model/hdf5_object_header.hpp"

namespace tconv3d::model::hdf5 {

struct Attribute {
  std::string name;
  Datatype type;
  Dataspace space;
  std::string_view data;  // the raw values, inside the file image
};

// The attribute called `name` among the header's messages; nullopt when
// absent. Dense attribute storage (a fractal heap) is an unsupported feature.
std::optional<Attribute> find_attribute(const FileImage& file, const ObjectHeader& header, const std::string& name);

// The attribute's values as strings (fixed-length or variable-length; a
// scalar is one string). An empty non-string array is an empty list, as Keras
// writes an empty list; any other non-string value is an Error.
std::vector<std::string> attribute_strings(const FileImage& file, const Attribute& attribute, const std::string& what);

}  // namespace tconv3d::model::hdf5
