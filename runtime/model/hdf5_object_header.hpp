// HDF5 object headers (version 1, and version 2 "OHDR"), with their
// continuation blocks: the list of header messages that describe one object.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model/hdf5_bytes.hpp"

namespace tconv3d::model::hdf5 {

// Header message types this reader looks at (HDF5 spec, section IV.A.2).
enum MessageType : uint16_t {
  kDataspaceMessage = 0x0001,
  kLinkInfoMessage = 0x0002,
  kDatatypeMessage = 0x0003,
  kLinkMessage = 0x0006,
  kDataLayoutMessage = 0x0008,
  kFilterPipelineMessage = 0x000B,
  kAttributeMessage = 0x000C,
  kContinuationMessage = 0x0010,
  kSymbolTableMessage = 0x0011,
  kAttributeInfoMessage = 0x0015,
};

struct HeaderMessage {
  uint16_t type = 0;
  uint8_t flags = 0;
  std::string_view data;  // inside the file image
  bool shared() const { return flags & 0x02; }
};

struct ObjectHeader {
  uint64_t address = 0;
  std::vector<HeaderMessage> messages;

  const HeaderMessage* find(uint16_t type) const;
  bool has(uint16_t type) const { return find(type) != nullptr; }
};

// Reads every message of the header at `address`, following continuation
// blocks (each at most once, at most a fixed number of them).
ObjectHeader read_object_header(const FileImage& file, uint64_t address);

// A cursor over one message's data, named for error messages.
ByteCursor message_cursor(const FileImage& file, const HeaderMessage& message, const std::string& what);

}  // namespace tconv3d::model::hdf5
