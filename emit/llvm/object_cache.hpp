// The optional on-disk cache of compiled LLVM objects (TCONV3D_CACHE_DIR), so
// a second process skips compilation. An entry is one file named by a hash of
// its key; the file repeats the full key (so a hash collision is a miss, not a
// wrong kernel) and a checksum of key and payload, so a corrupt or truncated
// file is detected, ignored and rewritten. Files are written to a temporary
// name and renamed: readers never see half a file.
//
// File layout (little endian):
//   "TC3DOBJ1" | u64 key_size | u64 payload_size | u64 fnv1a64(key, payload) | key | payload
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tconv3d::llvm_backend {

class ObjectDiskCache {
 public:
  // `directory` empty: a disabled cache (every lookup misses, stores do nothing).
  explicit ObjectDiskCache(std::string directory);

  // The cache TCONV3D_CACHE_DIR names (read at each call), or a disabled one.
  static ObjectDiskCache from_environment();

  bool enabled() const { return !directory_.empty(); }
  const std::string& directory() const { return directory_; }

  // The payload stored under exactly `key`, or nothing (missing, another key,
  // or corrupt: then `corrupt` is set when given).
  std::optional<std::vector<uint8_t>> load(const std::string& key, bool* corrupt = nullptr) const;

  // Stores atomically; creates the directory if missing. Returns false (and
  // leaves no partial file) when it cannot write: a cache is never required.
  bool store(const std::string& key, const std::vector<uint8_t>& payload) const;

  std::string path_for(const std::string& key) const;

 private:
  std::string directory_;
};

uint64_t fnv1a64(const void* data, size_t size, uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace tconv3d::llvm_backend
