// A minimal reader of the protocol buffers wire format: enough to walk the
// few ONNX messages tconv3d needs without a protobuf dependency. Every read
// is bounds-checked; malformed input throws tconv3d::Error(name, ...).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tconv3d::model {

enum class WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct WireField {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t value = 0;          // varint, fixed64 or fixed32 payload
  std::string_view bytes;      // length-delimited payload
};

class WireReader {
 public:
  WireReader(std::string_view message, std::string name) : data_(message), name_(std::move(name)) {}
  // Reads the next field; false at the end of the message.
  bool next(WireField& field);
  const std::string& name() const { return name_; }

 private:
  uint64_t varint();
  std::string_view data_;
  size_t at_ = 0;
  std::string name_;
};

// Calls visit(field) for each field of `message` in wire order; a reader of
// one message type states only the fields it wants (a switch on
// field.number) and skips the rest.
template <typename Visit>
void for_each_field(std::string_view message, const std::string& name, Visit&& visit) {
  WireReader reader(message, name);
  WireField field;
  while (reader.next(field)) visit(std::as_const(field));
}

// Calls visit(field) for each field of `message` numbered `number`.
template <typename Visit>
void for_each_field(std::string_view message, const std::string& name, uint32_t number, Visit&& visit) {
  for_each_field(message, name, [&](const WireField& field) {
    if (field.number == number) visit(field);
  });
}

// A repeated int64 field, packed (one length-delimited field) or not.
void append_int64s(const WireField& field, std::vector<int64_t>& out, const std::string& name);
// A repeated float field, packed or not.
void append_floats(const WireField& field, std::vector<float>& out, const std::string& name);

}  // namespace tconv3d::model
