#include "runtime/model/hdf5_object_header.hpp"

#include <set>
#include <utility>

namespace tconv3d::model::hdf5 {
namespace {

// Far above what any Keras file needs (a few dozen messages per object);
// they bound the work a hostile header can ask for.
constexpr size_t kMaxMessages = 1 << 16;
constexpr size_t kMaxContinuations = 1024;

struct Block {
  uint64_t address;
  uint64_t length;
};

class HeaderReader {
 public:
  HeaderReader(const FileImage& file, uint64_t address) : file_(file) { header_.address = address; }

  ObjectHeader read() {
    ByteCursor prefix = file_.from(header_.address, what());
    if (prefix.remaining() >= 4 && prefix.rest().substr(0, 4) == "OHDR") {
      read_version2(prefix);
    } else {
      read_version1(prefix);
    }
    while (!pending_.empty()) {
      const Block block = pending_.back();
      pending_.pop_back();
      ByteCursor cursor = file_.at(block.address, block.length, what() + " continuation block");
      if (version_ == 1) {
        read_messages_v1(cursor);
      } else {
        cursor.expect_signature("OCHK");
        if (cursor.remaining() < 4) file_.corrupt(what() + " continuation block is too short");
        ByteCursor messages = cursor.sub(cursor.remaining() - 4, cursor.what());  // then a checksum
        read_messages_v2(messages);
      }
    }
    return std::move(header_);
  }

 private:
  std::string what() const { return "object header at address " + std::to_string(header_.address); }

  void read_version1(ByteCursor& cursor) {
    version_ = 1;
    const int version = cursor.u8();
    if (version != 1) file_.corrupt(what() + " has unknown version " + std::to_string(version));
    cursor.skip(1 + 2 + 4);  // reserved, message count (recounted below), reference count
    const uint32_t size = cursor.u32();
    cursor.skip(4);  // padding to the 8-byte aligned message list
    ByteCursor messages = cursor.sub(size, what());
    read_messages_v1(messages);
  }

  void read_version2(ByteCursor& cursor) {
    version_ = 2;
    cursor.expect_signature_and_version("OHDR", 2);
    const uint8_t flags = cursor.u8();
    if (flags & 0x20) cursor.skip(16);  // access, modification, change and birth times
    if (flags & 0x10) cursor.skip(4);   // attribute storage phase change values
    order_tracked_ = flags & 0x04;
    const uint64_t size = cursor.uint(1 << (flags & 0x03));
    ByteCursor messages = cursor.sub(size, what());
    cursor.skip(4);  // checksum
    read_messages_v2(messages);
  }

  void read_messages_v1(ByteCursor& cursor) {
    while (cursor.remaining() >= 8) {
      const uint16_t type = cursor.u16();
      const uint16_t size = cursor.u16();
      const uint8_t flags = cursor.u8();
      cursor.skip(3);
      add(type, flags, cursor.bytes(size));
      cursor.align(8);
    }
  }

  void read_messages_v2(ByteCursor& cursor) {
    const size_t header_size = order_tracked_ ? 6 : 4;
    // Fewer bytes than a message header left over is a gap, not a message.
    while (cursor.remaining() >= header_size) {
      const uint8_t type = cursor.u8();
      const uint16_t size = cursor.u16();
      const uint8_t flags = cursor.u8();
      if (order_tracked_) cursor.skip(2);
      add(type, flags, cursor.bytes(size));
    }
  }

  void add(uint16_t type, uint8_t flags, std::string_view data) {
    if (header_.messages.size() >= kMaxMessages) file_.corrupt(what() + " has too many messages");
    if (type == kContinuationMessage) {
      ByteCursor cursor(file_, data, what() + " continuation message");
      const Block block{cursor.address(), cursor.length()};
      if (!visited_.insert(block.address).second)
        file_.corrupt(what() + " continues twice at address " + std::to_string(block.address));
      if (visited_.size() > kMaxContinuations) file_.corrupt(what() + " has too many continuation blocks");
      pending_.push_back(block);
      return;
    }
    header_.messages.push_back({type, flags, data});
  }

  const FileImage& file_;
  ObjectHeader header_;
  int version_ = 1;
  bool order_tracked_ = false;
  std::vector<Block> pending_;
  std::set<uint64_t> visited_;
};

}  // namespace

const HeaderMessage* ObjectHeader::find(uint16_t type) const {
  for (const auto& message : messages)
    if (message.type == type) return &message;
  return nullptr;
}

ObjectHeader read_object_header(const FileImage& file, uint64_t address) {
  return HeaderReader(file, address).read();
}

ByteCursor message_cursor(const FileImage& file, const HeaderMessage& message, const std::string& what) {
  return ByteCursor(file, message.data, what);
}

}  // namespace tconv3d::model::hdf5
