#include "runtime/model/hdf5_attribute.hpp"

#include <cstring>

#include "runtime/model/hdf5_global_heap.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model::hdf5 {
namespace {

Attribute parse_attribute(const FileImage& file, const HeaderMessage& message, uint64_t header_address) {
  ByteCursor cursor = message_cursor(file, message, "attribute message in the object header at address " +
                                                        std::to_string(header_address));
  const int version = cursor.u8();
  if (version < 1 || version > 3) file.corrupt(cursor.what() + " has unknown version " + std::to_string(version));
  const uint8_t flags = cursor.u8();  // reserved in version 1
  if (version >= 2 && (flags & 0x03)) file.unsupported("shared datatype or dataspace in an attribute");
  const uint16_t name_size = cursor.u16();
  const uint16_t type_size = cursor.u16();
  const uint16_t space_size = cursor.u16();
  if (version == 3) cursor.skip(1);  // name character set
  // Version 1 pads each part to 8 bytes.
  auto padded = [&](uint64_t size) { return version == 1 ? (size + 7) / 8 * 8 : size; };
  Attribute attribute;
  const std::string_view name = cursor.bytes(padded(name_size)).substr(0, name_size);
  attribute.name = std::string(name.data(), strnlen(name.data(), name.size()));
  ByteCursor type_cursor = cursor.sub(padded(type_size), cursor.what() + " '" + attribute.name + "' datatype");
  attribute.type = parse_datatype(type_cursor);
  ByteCursor space_cursor = cursor.sub(padded(space_size), cursor.what() + " '" + attribute.name + "' dataspace");
  attribute.space = parse_dataspace(space_cursor);
  attribute.data = cursor.rest();
  return attribute;
}

bool has_dense_attributes(const FileImage& file, const ObjectHeader& header) {
  const HeaderMessage* info = header.find(kAttributeInfoMessage);
  if (!info) return false;
  ByteCursor cursor = message_cursor(file, *info, "attribute info message");
  cursor.skip(1);  // version
  const uint8_t flags = cursor.u8();
  if (flags & 0x01) cursor.skip(2);  // maximum creation index
  return cursor.address() != kUndefinedAddress;
}

std::string fixed_string(std::string_view bytes, int padding) {
  size_t length = strnlen(bytes.data(), bytes.size());
  if (padding == 2)
    while (length > 0 && bytes[length - 1] == ' ') --length;
  return std::string(bytes.substr(0, length));
}

}  // namespace

AttributeTable read_attributes(const FileImage& file, const ObjectHeader& header) {
  AttributeTable table;
  for (const HeaderMessage& message : header.messages) {
    if (message.type != kAttributeMessage) continue;
    if (message.shared()) file.unsupported("shared attribute message");
    Attribute attribute = parse_attribute(file, message, header.address);
    table.compact.emplace(attribute.name, std::move(attribute));
  }
  table.dense = has_dense_attributes(file, header);
  return table;
}

std::vector<std::string> attribute_strings(const FileImage& file, const Attribute& attribute, GlobalHeapReader& heap,
                                           const std::string& what) {
  const uint64_t count = attribute.space.element_count();
  const Datatype& type = attribute.type;
  std::vector<std::string> out;
  if (type.type_class != TypeClass::kFixedString && type.type_class != TypeClass::kVariableString) {
    if (count == 0) return out;  // Keras writes an empty list as an empty float array
    throw Error(file.name(), what + ": expected strings, found " + type.describe());
  }
  // Every element takes at least one byte of the message, so `count` is bounded by the file.
  const uint64_t element_size = type.type_class == TypeClass::kFixedString
                                    ? type.size
                                    : 4 + uint64_t(file.offset_size()) + 4;  // length, heap address, index
  if (element_size == 0 || count > attribute.data.size() / element_size)
    file.corrupt(what + ": " + std::to_string(count) + " values of " + std::to_string(element_size) +
                 " bytes do not fit in its " + std::to_string(attribute.data.size()) + " bytes");
  ByteCursor cursor(file, attribute.data, what);
  out.reserve(count);
  if (type.type_class == TypeClass::kFixedString) {
    for (uint64_t i = 0; i < count; ++i) out.push_back(fixed_string(cursor.bytes(element_size), type.string_padding));
    return out;
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t length = cursor.u32();
    const uint64_t collection = cursor.address();
    const uint32_t index = cursor.u32();
    if (collection == kUndefinedAddress || length == 0) {  // an empty (or never written) string
      out.emplace_back();
      continue;
    }
    file.charge(length);
    const std::string_view object = heap.object(file, collection, index);
    if (length > object.size())
      file.corrupt(what + ": a string of " + std::to_string(length) + " bytes in a heap object of " +
                   std::to_string(object.size()));
    out.emplace_back(object.substr(0, length));
  }
  return out;
}

}  // namespace tconv3d::model::hdf5
