// The bytes of an HDF5 file image, read only through bounds-checked cursors.
//
// Every HDF5 structure is reached through a file address read from another
// structure, so nothing here trusts a number: an address or length that does
// not fit in the image, or a field read past the end of its structure, throws
// tconv3d::Error naming the file ("corrupt HDF5 file: ..."). A valid file
// that uses a feature outside the subset tconv3d reads gets
// "unsupported HDF5 feature: ..." instead, so the two are never confused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tconv3d::model::hdf5 {

// All ones in the file's offset width: HDF5's "no address".
inline constexpr uint64_t kUndefinedAddress = ~uint64_t(0);

class FileImage;

// Reads little-endian fields from one structure; never past its end.
class ByteCursor {
 public:
  ByteCursor(const FileImage& file, std::string_view bytes, std::string what);

  uint8_t u8() { return static_cast<uint8_t>(uint(1)); }
  uint16_t u16() { return static_cast<uint16_t>(uint(2)); }
  uint32_t u32() { return static_cast<uint32_t>(uint(4)); }
  uint64_t u64() { return uint(8); }
  uint64_t uint(int width);  // 1..8 bytes, little-endian
  uint64_t address();        // an address in the file's offset width; kUndefinedAddress when all ones
  uint64_t length();         // a length in the file's length width
  std::string_view bytes(uint64_t count);
  ByteCursor sub(uint64_t count, const std::string& what);  // the next `count` bytes, as their own cursor
  void skip(uint64_t count) { bytes(count); }
  void expect_signature(std::string_view signature);
  // The signature and the one-byte version that open most structures.
  void expect_signature_and_version(std::string_view signature, int version);
  // Skips to the next multiple of `alignment` counted from the structure's start.
  void align(size_t alignment);

  size_t position() const { return position_; }
  size_t remaining() const { return bytes_.size() - position_; }
  std::string_view rest() const { return bytes_.substr(position_); }
  const FileImage& file() const { return *file_; }
  const std::string& what() const { return what_; }

 private:
  const FileImage* file_;
  std::string_view bytes_;
  std::string what_;
  size_t position_ = 0;
};

class FileImage {
 public:
  FileImage(std::string_view image, std::string name);

  // Set once the superblock is read; addresses are relative to `base`.
  void set_layout(int offset_size, int length_size, uint64_t base);
  int offset_size() const { return offset_size_; }
  int length_size() const { return length_size_; }
  uint64_t size() const { return image_.size(); }
  const std::string& name() const { return name_; }

  // A cursor over [address, address + length), or Error if any of it is outside the image.
  ByteCursor at(uint64_t address, uint64_t length, const std::string& what) const;
  // A cursor from `address` to the end of the image (for structures whose size is read from them).
  ByteCursor from(uint64_t address, const std::string& what) const;

  // Counts work (bytes read, copied or produced) against a budget in
  // proportion to the file's size. Each structure is read once, so a real
  // file stays far below it; a hostile one that points many structures at
  // the same bytes (shared heaps, repeated chunks, huge repeated names)
  // gets an Error instead of quadratic time or memory.
  void charge(uint64_t work) const;

  [[noreturn]] void corrupt(const std::string& what) const;
  [[noreturn]] void unsupported(const std::string& feature) const;

 private:
  uint64_t offset_of(uint64_t address, const std::string& what) const;
  std::string_view image_;
  std::string name_;
  int offset_size_ = 8;
  int length_size_ = 8;
  uint64_t base_ = 0;
  uint64_t budget_ = 0;
  mutable uint64_t spent_ = 0;
};

}  // namespace tconv3d::model::hdf5
