// HDF5 global heap collections ("GCOL"): where variable-length strings live.
#pragma once

#include <cstdint>
#include <map>
#include <string_view>
#include <utility>

#include "runtime/model/hdf5_bytes.hpp"

namespace tconv3d::model::hdf5 {

// Reads objects by (collection address, index); each collection is parsed
// once per reader, so a list of N strings costs N lookups, not N scans.
class GlobalHeapReader {
 public:
  // The object's bytes; Error when the collection or the index is not there.
  // `file` must be the same image on every call.
  std::string_view object(const FileImage& file, uint64_t collection, uint32_t index);

 private:
  using Collection = std::map<uint32_t, std::string_view>;
  const Collection& collection(const FileImage& file, uint64_t address);
  std::map<uint64_t, Collection> collections_;
};

}  // namespace tconv3d::model::hdf5
