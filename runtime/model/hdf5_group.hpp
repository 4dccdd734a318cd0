// The members of an HDF5 group, in both forms Keras files use: the old
// symbol table (a version 1 B-tree of symbol table nodes, names in a local
// heap) and compact link messages in the group's own header. Dense link
// storage (a fractal heap) is reported as an unsupported feature.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/hdf5_object_header.hpp"

namespace tconv3d::model::hdf5 {

struct Link {
  std::string name;
  uint64_t address = kUndefinedAddress;  // the object header of a hard link
  bool hard = true;                      // soft and external links have no address here
};

bool is_group(const ObjectHeader& header);
bool is_dataset(const ObjectHeader& header);

// Every link of the group; Error if the header is not a group's.
std::vector<Link> read_group_links(const FileImage& file, const ObjectHeader& header);

}  // namespace tconv3d::model::hdf5
