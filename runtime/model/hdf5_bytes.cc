#include "runtime/model/hdf5_bytes.hpp"

#include "tconv3d/error.hpp"

namespace tconv3d::model::hdf5 {

ByteCursor::ByteCursor(const FileImage& file, std::string_view bytes, std::string what)
    : file_(&file), bytes_(bytes), what_(std::move(what)) {}

uint64_t ByteCursor::uint(int width) {
  const std::string_view field = bytes(static_cast<uint64_t>(width));
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(field[size_t(i)]);
  return value;
}

uint64_t ByteCursor::address() {
  const int width = file_->offset_size();
  const uint64_t value = uint(width);
  const uint64_t all_ones = width == 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * width)) - 1;
  return value == all_ones ? kUndefinedAddress : value;
}

uint64_t ByteCursor::length() { return uint(file_->length_size()); }

std::string_view ByteCursor::bytes(uint64_t count) {
  if (count > remaining())
    file_->corrupt(what_ + " is cut short (needs " + std::to_string(count) + " more bytes at offset " +
                   std::to_string(position_) + " of " + std::to_string(bytes_.size()) + ")");
  file_->charge(count + 1);
  const std::string_view out = bytes_.substr(position_, static_cast<size_t>(count));
  position_ += static_cast<size_t>(count);
  return out;
}

ByteCursor ByteCursor::sub(uint64_t count, const std::string& what) {
  return ByteCursor(*file_, bytes(count), what);
}

void ByteCursor::expect_signature_and_version(std::string_view signature, int version) {
  expect_signature(signature);
  const int found = u8();
  if (found != version) file_->corrupt(what_ + " has unknown version " + std::to_string(found));
}

void ByteCursor::expect_signature(std::string_view signature) {
  if (remaining() < signature.size() || bytes_.substr(position_, signature.size()) != signature)
    file_->corrupt(what_ + " lacks its '" + std::string(signature) + "' signature");
  position_ += signature.size();
}

void ByteCursor::align(size_t alignment) {
  const size_t misaligned = position_ % alignment;
  if (misaligned) skip(alignment - misaligned);
}

// A few dozen readings of every byte, plus room for small files.
constexpr uint64_t kWorkPerByte = 32;
constexpr uint64_t kWorkAllowance = uint64_t(64) << 20;

FileImage::FileImage(std::string_view image, std::string name)
    : image_(image), name_(std::move(name)), budget_(kWorkPerByte * image.size() + kWorkAllowance) {}

void FileImage::charge(uint64_t work) const {
  if (work > budget_ - spent_)
    corrupt("reading it takes far more work than its " + std::to_string(image_.size()) +
            " bytes justify (structures that repeat or point at each other)");
  spent_ += work;
}

void FileImage::set_layout(int offset_size, int length_size, uint64_t base) {
  offset_size_ = offset_size;
  length_size_ = length_size;
  base_ = base;
}

uint64_t FileImage::offset_of(uint64_t address, const std::string& what) const {
  if (address == kUndefinedAddress) corrupt(what + " has no address");
  if (address > image_.size() || base_ > image_.size() - address)
    corrupt(what + " lies outside the file (address " + std::to_string(address) + ", file size " +
            std::to_string(image_.size()) + ")");
  return base_ + address;
}

ByteCursor FileImage::at(uint64_t address, uint64_t length, const std::string& what) const {
  const uint64_t offset = offset_of(address, what);
  if (length > image_.size() - offset)
    corrupt(what + " runs past the end of the file (" + std::to_string(length) + " bytes at address " +
            std::to_string(address) + ", file size " + std::to_string(image_.size()) + ")");
  return ByteCursor(*this, image_.substr(offset, length), what);
}

ByteCursor FileImage::from(uint64_t address, const std::string& what) const {
  const uint64_t offset = offset_of(address, what);
  return ByteCursor(*this, image_.substr(offset), what);
}

void FileImage::corrupt(const std::string& what) const { throw Error(name_, "corrupt HDF5 file: " + what); }

void FileImage::unsupported(const std::string& feature) const {
  throw Error(name_, "unsupported HDF5 feature: " + feature + " (tconv3d reads the HDF5 subset that Keras writes)");
}

}  // namespace tconv3d::model::hdf5
