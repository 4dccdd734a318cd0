#include "runtime/model/protobuf_wire.hpp"

#include <cstring>

#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

// The unsigned integer stored little endian in `bytes` (at most 8 of them).
uint64_t little_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

}  // namespace

uint64_t WireReader::varint() {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at_ >= data_.size()) throw Error(name_, "truncated protobuf (a varint runs past the end)");
    const uint8_t byte = static_cast<uint8_t>(data_[at_++]);
    value |= uint64_t(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return value;
  }
  throw Error(name_, "corrupt protobuf (a varint longer than 10 bytes)");
}

bool WireReader::next(WireField& field) {
  if (at_ >= data_.size()) return false;
  const uint64_t key = varint();
  field.number = static_cast<uint32_t>(key >> 3);
  if (field.number == 0 || (key >> 3) > 0x1fffffff) throw Error(name_, "corrupt protobuf (field number 0)");
  const uint32_t type = key & 7;
  field.bytes = {};
  field.value = 0;
  auto take = [&](size_t count) {
    if (count > data_.size() - at_) throw Error(name_, "truncated protobuf (a field runs past the end)");
    const std::string_view part = data_.substr(at_, count);
    at_ += count;
    return part;
  };
  switch (type) {
    case 0:
      field.type = WireType::kVarint;
      field.value = varint();
      return true;
    case 1:
      field.type = WireType::kFixed64;
      field.value = little_endian(take(8));
      return true;
    case 2: {
      field.type = WireType::kLengthDelimited;
      const uint64_t length = varint();
      if (length > data_.size() - at_) throw Error(name_, "truncated protobuf (a field runs past the end)");
      field.bytes = take(static_cast<size_t>(length));
      return true;
    }
    case 5:
      field.type = WireType::kFixed32;
      field.value = little_endian(take(4));
      return true;
    default:
      throw Error(name_, "corrupt protobuf (wire type " + std::to_string(type) + ")");
  }
}

void append_int64s(const WireField& field, std::vector<int64_t>& out, const std::string& name) {
  if (field.type == WireType::kVarint) {
    out.push_back(static_cast<int64_t>(field.value));
  } else if (field.type == WireType::kLengthDelimited) {
    // Packed varints follow each other without keys.
    std::string_view rest = field.bytes;
    size_t at = 0;
    while (at < rest.size()) {
      uint64_t value = 0;
      int shift = 0;
      while (true) {
        if (at >= rest.size() || shift >= 64) throw Error(name, "corrupt packed integers");
        const uint8_t byte = static_cast<uint8_t>(rest[at++]);
        value |= uint64_t(byte & 0x7f) << shift;
        shift += 7;
        if (!(byte & 0x80)) break;
      }
      out.push_back(static_cast<int64_t>(value));
    }
  } else {
    throw Error(name, "an integer list has the wrong wire type");
  }
}

void append_floats(const WireField& field, std::vector<float>& out, const std::string& name) {
  auto from_bits = [](uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  if (field.type == WireType::kFixed32) {
    out.push_back(from_bits(static_cast<uint32_t>(field.value)));
  } else if (field.type == WireType::kLengthDelimited) {
    if (field.bytes.size() % 4 != 0) throw Error(name, "corrupt packed floats (length not a multiple of 4)");
    const size_t count = field.bytes.size() / 4;
    out.reserve(out.size() + count);
    for (size_t i = 0; i < count; ++i)
      out.push_back(from_bits(static_cast<uint32_t>(little_endian(field.bytes.substr(4 * i, 4)))));
  } else {
    throw Error(name, "a float list has the wrong wire type");
  }
}

}  // namespace tconv3d::model
