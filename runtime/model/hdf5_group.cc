#include "runtime/model/hdf5_group.hpp"

#include <set>
#include <string_view>

#include "runtime/model/hdf5_btree.hpp"

namespace tconv3d::model::hdf5 {
namespace {

// Bounds on work a hostile group can ask for; Keras groups hold a few hundred links.
constexpr size_t kMaxLinks = 1 << 20;

class SymbolTableReader {
 public:
  SymbolTableReader(const FileImage& file, uint64_t heap_address) : file_(file) { read_local_heap(heap_address); }

  void read_tree(uint64_t address, int expected_level, std::vector<Link>& links) {
    const std::string what = "group B-tree node at address " + std::to_string(address);
    BTreeNode node = open_btree_node(file_, address, 0, expected_level, what, visited_);
    ByteCursor& cursor = node.cursor;
    const int level = node.level;
    const uint16_t entries = node.entries;
    for (uint16_t i = 0; i < entries; ++i) {
      cursor.length();  // key: the heap offset of the greatest name below
      const uint64_t child = cursor.address();
      if (level > 0) {
        read_tree(child, level - 1, links);
      } else {
        read_symbol_node(child, links);
      }
    }
  }

 private:
  void read_local_heap(uint64_t address) {
    const std::string what = "local heap at address " + std::to_string(address);
    ByteCursor cursor = file_.from(address, what);
    cursor.expect_signature_and_version("HEAP", 0);
    cursor.skip(3);
    const uint64_t size = cursor.length();
    cursor.length();  // free list head
    const uint64_t data = cursor.address();
    names_ = file_.at(data, size, what + " data").rest();
  }

  std::string name_at(uint64_t offset) const {
    if (offset >= names_.size()) file_.corrupt("a link name lies outside its local heap");
    const std::string_view rest = names_.substr(offset);
    const size_t end = rest.find('\0');
    file_.charge(end == std::string_view::npos ? rest.size() : end);
    if (end == std::string_view::npos) file_.corrupt("a link name in the local heap is not terminated");
    return std::string(rest.substr(0, end));
  }

  void read_symbol_node(uint64_t address, std::vector<Link>& links) {
    const std::string what = "symbol table node at address " + std::to_string(address);
    if (!visited_.insert(address).second) file_.corrupt(what + " is reached twice (a cycle)");
    ByteCursor cursor = file_.from(address, what);
    cursor.expect_signature_and_version("SNOD", 1);
    cursor.skip(1);
    const uint16_t count = cursor.u16();
    for (uint16_t i = 0; i < count; ++i) {
      const uint64_t name_offset = cursor.length();
      const uint64_t object = cursor.address();
      cursor.skip(4 + 4 + 16);  // cache type, reserved, scratch pad
      if (links.size() >= kMaxLinks) file_.corrupt("a group has more than " + std::to_string(kMaxLinks) + " links");
      links.push_back({name_at(name_offset), object, true});
    }
  }

  const FileImage& file_;
  std::string_view names_;
  std::set<uint64_t> visited_;
};

Link parse_link(const FileImage& file, const HeaderMessage& message) {
  ByteCursor cursor = message_cursor(file, message, "link message");
  const int version = cursor.u8();
  if (version != 1) file.corrupt("link message has unknown version " + std::to_string(version));
  const uint8_t flags = cursor.u8();
  const int link_type = (flags & 0x08) ? cursor.u8() : 0;
  if (flags & 0x04) cursor.skip(8);  // creation order
  if (flags & 0x10) cursor.skip(1);  // name character set
  const uint64_t name_length = cursor.uint(1 << (flags & 0x03));
  Link link;
  link.name = std::string(cursor.bytes(name_length));
  link.hard = link_type == 0;
  if (link.hard) link.address = cursor.address();
  return link;
}

void refuse_dense_links(const FileImage& file, const ObjectHeader& header) {
  const HeaderMessage* info = header.find(kLinkInfoMessage);
  if (!info) return;
  ByteCursor cursor = message_cursor(file, *info, "link info message");
  cursor.skip(1);  // version
  const uint8_t flags = cursor.u8();
  if (flags & 0x01) cursor.skip(8);  // maximum creation index
  if (cursor.address() != kUndefinedAddress) file.unsupported("dense link storage (fractal heap)");
}

}  // namespace

bool is_group(const ObjectHeader& header) {
  return header.has(kSymbolTableMessage) || header.has(kLinkInfoMessage) || header.has(kLinkMessage);
}

bool is_dataset(const ObjectHeader& header) { return header.has(kDataLayoutMessage); }

std::vector<Link> read_group_links(const FileImage& file, const ObjectHeader& header) {
  std::vector<Link> links;
  if (const HeaderMessage* table = header.find(kSymbolTableMessage)) {
    ByteCursor cursor = message_cursor(file, *table, "symbol table message");
    const uint64_t tree = cursor.address();
    const uint64_t heap = cursor.address();
    SymbolTableReader reader(file, heap);
    reader.read_tree(tree, -1, links);
    return links;
  }
  refuse_dense_links(file, header);
  for (const HeaderMessage& message : header.messages)
    if (message.type == kLinkMessage) links.push_back(parse_link(file, message));
  return links;
}

}  // namespace tconv3d::model::hdf5
