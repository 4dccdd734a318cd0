#include "runtime/model/hdf5_superblock.hpp"

#include <string>

#include "tconv3d/error.hpp"

namespace tconv3d::model::hdf5 {
namespace {

constexpr std::string_view kSignature("\x89HDF\r\n\x1a\n", 8);

bool valid_width(int width) { return width == 2 || width == 4 || width == 8; }

}  // namespace

Superblock read_superblock(std::string_view image, FileImage& file) {
  size_t at = std::string_view::npos;
  for (size_t offset = 0; offset < image.size(); offset = offset ? offset * 2 : 512) {
    if (image.substr(offset, kSignature.size()) == kSignature) {
      at = offset;
      break;
    }
  }
  if (at == std::string_view::npos) throw Error(file.name(), "not an HDF5 file (no HDF5 signature)");
  ByteCursor cursor(file, image.substr(at), "the HDF5 superblock");
  cursor.skip(kSignature.size());
  Superblock sb;
  sb.version = cursor.u8();
  if (sb.version == 0 || sb.version == 1) {
    cursor.skip(4);  // free-space, root symbol table, reserved, shared header versions
    sb.offset_size = cursor.u8();
    sb.length_size = cursor.u8();
    cursor.skip(1 + 2 + 2 + 4);  // reserved, group leaf and internal K, consistency flags
    if (sb.version == 1) cursor.skip(2 + 2);  // indexed storage K, reserved
  } else if (sb.version == 2 || sb.version == 3) {
    sb.offset_size = cursor.u8();
    sb.length_size = cursor.u8();
    cursor.skip(1);  // consistency flags
  } else {
    throw Error(file.name(), "unsupported HDF5 superblock version " + std::to_string(sb.version));
  }
  if (!valid_width(sb.offset_size) || !valid_width(sb.length_size))
    file.corrupt("superblock gives offset size " + std::to_string(sb.offset_size) + " and length size " +
                 std::to_string(sb.length_size));
  file.set_layout(sb.offset_size, sb.length_size, 0);
  sb.base_address = cursor.address();
  if (sb.version <= 1) {
    cursor.address();  // free-space info (unused by readers)
  } else {
    cursor.address();  // superblock extension: holds nothing a reader of this subset needs
  }
  const uint64_t end_of_file = cursor.address();
  if (sb.version <= 1) {
    cursor.address();  // driver information block
    cursor.address();  // root symbol table entry: link name offset
  }
  sb.root_object_header = cursor.address();
  if (sb.base_address == kUndefinedAddress || sb.base_address > image.size())
    file.corrupt("superblock base address " + std::to_string(sb.base_address) + " lies outside the file");
  if (end_of_file == kUndefinedAddress || end_of_file > image.size() - sb.base_address)
    throw Error(file.name(), "truncated HDF5 file: the superblock says it ends at byte " +
                                 std::to_string(sb.base_address + (end_of_file == kUndefinedAddress ? 0 : end_of_file)) +
                                 " but it has " + std::to_string(image.size()));
  file.set_layout(sb.offset_size, sb.length_size, sb.base_address);
  return sb;
}

}  // namespace tconv3d::model::hdf5
