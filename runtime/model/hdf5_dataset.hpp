// HDF5 datasets: the type, the shape, and the raw values from contiguous,
// compact or chunked storage (version 1 B-tree index, no filters).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/model/hdf5_datatype.hpp"
#include "runtime/model/hdf5_object_header.hpp"

namespace tconv3d::model::hdf5 {

struct DatasetInfo {
  Datatype type;
  Dataspace space;
};

DatasetInfo read_dataset_info(const FileImage& file, const ObjectHeader& header, const std::string& path);

// Copies the dataset's elements, row-major and in the file's byte order,
// into `out` (info.space.element_count() * info.type.size bytes). Missing
// chunks read as zeros, HDF5's default fill value.
void read_dataset_bytes(const FileImage& file, const ObjectHeader& header, const DatasetInfo& info,
                        const std::string& path, char* out);

}  // namespace tconv3d::model::hdf5
