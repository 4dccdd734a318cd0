// HDF5 attribute messages (versions 1 to 3) and their values as strings:
// the form in which Keras stores layer names, weight names and its config.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model/hdf5_datatype.hpp"
#include "runtime/model/hdf5_global_heap.hpp"
#include "runtime/model/hdf5_object_header.hpp"

namespace tconv3d::model::hdf5 {

struct Attribute {
  std::string name;
  Datatype type;
  Dataspace space;
  std::string_view data;  // the raw values, inside the file image
};

struct AttributeTable {
  std::map<std::string, Attribute> compact;  // the attribute messages in the header, by name
  bool dense = false;                        // more live in a fractal heap, which this reader refuses
};

// Parses every attribute message of the header once, so that looking up many
// names (Keras's NAME0, NAME1, ...) costs no more than reading the header.
AttributeTable read_attributes(const FileImage& file, const ObjectHeader& header);

// The attribute's values as strings (fixed-length or variable-length; a
// scalar is one string). An empty non-string array is an empty list, as Keras
// writes an empty list; any other non-string value is an Error.
// Variable-length strings are read through `heap`, which keeps every
// collection it parsed for the next call.
std::vector<std::string> attribute_strings(const FileImage& file, const Attribute& attribute, GlobalHeapReader& heap,
                                           const std::string& what);

}  // namespace tconv3d::model::hdf5
