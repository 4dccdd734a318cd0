#include "runtime/model/hdf5_global_heap.hpp"

#include <algorithm>
#include <string>

namespace tconv3d::model::hdf5 {

const GlobalHeapReader::Collection& GlobalHeapReader::collection(const FileImage& file_, uint64_t address) {
  if (auto found = collections_.find(address); found != collections_.end()) return found->second;
  const std::string what = "global heap collection at address " + std::to_string(address);
  ByteCursor header = file_.from(address, what);
  header.expect_signature_and_version("GCOL", 1);
  header.skip(3);
  const uint64_t size = header.length();
  // The size counts the collection's own header, just read.
  if (size < header.position()) file_.corrupt(what + " is smaller than its header");
  ByteCursor cursor = file_.at(address, size, what);
  cursor.skip(header.position());
  Collection objects;
  // Each object takes at least 8 + length-size bytes, so this loop ends.
  while (cursor.remaining() >= 8u + unsigned(file_.length_size())) {
    const uint16_t index = cursor.u16();
    cursor.skip(2 + 4);  // reference count, reserved
    const uint64_t object_size = cursor.length();
    if (index == 0) break;  // free space: the rest of the collection
    const std::string_view data = cursor.bytes(object_size);
    // Objects are padded to 8 bytes; the last one may end the collection unpadded.
    cursor.skip(std::min<size_t>((8 - cursor.position() % 8) % 8, cursor.remaining()));
    if (!objects.emplace(index, data).second)
      file_.corrupt(what + " holds object " + std::to_string(index) + " twice");
  }
  return collections_.emplace(address, std::move(objects)).first->second;
}

std::string_view GlobalHeapReader::object(const FileImage& file_, uint64_t collection_address, uint32_t index) {
  const Collection& objects = collection(file_, collection_address);
  const auto found = objects.find(index);
  if (found == objects.end())
    file_.corrupt("global heap collection at address " + std::to_string(collection_address) + " has no object " +
                  std::to_string(index));
  return found->second;
}

}  // namespace tconv3d::model::hdf5
