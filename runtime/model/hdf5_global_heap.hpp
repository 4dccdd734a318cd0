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
  explicit GlobalHeapReader(const FileImage& file) : file_(file) {}
  // The object's bytes; Error when the collection or the index is not there.
  std::string_view object(uint64_t collection, uint32_t index);

 private:
  using Collection = std::map<uint32_t, std::string_view>;
  const Collection& collection(uint64_t address);
  const FileImage& file_;
  std::map<uint64_t, Collection> collections_;
};

}  // namespace tconv3d::model::hdf5
