// The HDF5 superblock (versions 0 to 3): where the file starts, the widths of
// its addresses and lengths, and the root group's object header.
#pragma once

#include <cstdint>
#include <string_view>

#include "runtime/model/hdf5_bytes.hpp"

namespace tconv3d::model::hdf5 {

struct Superblock {
  int version = 0;
  int offset_size = 8;
  int length_size = 8;
  uint64_t base_address = 0;  // file offset that addresses count from
  uint64_t root_object_header = kUndefinedAddress;
};

// Finds the signature (at 0, 512, 1024, ... after a user block), checks the
// superblock fits and that the file is as long as the superblock says, and
// sets `file`'s address layout. Throws Error naming the file otherwise.
Superblock read_superblock(std::string_view image, FileImage& file);

}  // namespace tconv3d::model::hdf5
