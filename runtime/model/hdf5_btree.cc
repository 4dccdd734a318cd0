#include "runtime/model/hdf5_btree.hpp"

namespace tconv3d::model::hdf5 {
namespace {

// Real files have a few levels; this bounds the recursion of a hostile one.
constexpr int kMaxTreeLevel = 64;

}  // namespace

BTreeNode open_btree_node(const FileImage& file, uint64_t address, int type, int expected_level,
                          const std::string& what, std::set<uint64_t>& visited) {
  if (!visited.insert(address).second) file.corrupt(what + " is reached twice (a cycle)");
  BTreeNode node{file.from(address, what)};
  node.cursor.expect_signature("TREE");
  const int node_type = node.cursor.u8();
  node.level = node.cursor.u8();
  node.entries = node.cursor.u16();
  if (node_type != type)
    file.corrupt(what + " is not a " + (type == 0 ? "group" : "chunk") + " node (type " + std::to_string(node_type) +
                 ")");
  if (node.level > kMaxTreeLevel || (expected_level >= 0 && node.level != expected_level))
    file.corrupt(what + " has level " + std::to_string(node.level));
  node.cursor.address();  // left sibling
  node.cursor.address();  // right sibling
  return node;
}

}  // namespace tconv3d::model::hdf5
