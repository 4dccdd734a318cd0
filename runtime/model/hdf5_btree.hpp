// The node header of a version-1 B-tree ("TREE"): the index of both
// symbol-table groups (node type 0) and chunked datasets (node type 1).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "runtime/model/hdf5_bytes.hpp"

namespace tconv3d::model::hdf5 {

struct BTreeNode {
  ByteCursor cursor;  // at the node's first key
  int level = 0;
  uint16_t entries = 0;
};

// Opens the node at `address` as one of `type`. Refuses a node reached
// before (a cycle: `visited` holds the walk's nodes so far), another node
// type, and a level other than `expected_level` (any below the cap when it
// is negative), naming `what` in the error.
BTreeNode open_btree_node(const FileImage& file, uint64_t address, int type, int expected_level,
                          const std::string& what, std::set<uint64_t>& visited);

}  // namespace tconv3d::model::hdf5
