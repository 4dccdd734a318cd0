#include "emit/llvm/object_cache.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/file_io.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

constexpr char kMagic[8] = {'T', 'C', '3', 'D', 'O', 'B', 'J', '1'};
constexpr size_t kHeaderSize = 8 + 3 * 8;

void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

uint64_t checksum(const std::string& key, const uint8_t* payload, size_t size) {
  return fnv1a64(payload, size, fnv1a64(key.data(), key.size()));
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t seed) {
  uint64_t h = seed;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

ObjectDiskCache::ObjectDiskCache(std::string directory) : directory_(std::move(directory)) {}

ObjectDiskCache ObjectDiskCache::from_environment() {
  const char* dir = std::getenv("TCONV3D_CACHE_DIR");
  return ObjectDiskCache(dir ? dir : "");
}

std::string ObjectDiskCache::path_for(const std::string& key) const {
  char name[40];
  std::snprintf(name, sizeof name, "llvm-%016llx.tc3dobj",
                static_cast<unsigned long long>(fnv1a64(key.data(), key.size())));
  return (std::filesystem::path(directory_) / name).string();
}

std::optional<std::vector<uint8_t>> ObjectDiskCache::load(const std::string& key, bool* corrupt) const {
  if (corrupt) *corrupt = false;
  if (!enabled()) return std::nullopt;
  std::ifstream in(path_for(key), std::ios::binary);
  if (!in) return std::nullopt;
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&]() -> std::optional<std::vector<uint8_t>> {
    if (corrupt) *corrupt = true;
    return std::nullopt;
  };
  if (file.size() < kHeaderSize || std::memcmp(file.data(), kMagic, 8) != 0) return bad();
  const uint64_t key_size = get_u64(file.data() + 8);
  const uint64_t payload_size = get_u64(file.data() + 16);
  const uint64_t sum = get_u64(file.data() + 24);
  if (key_size > file.size() || payload_size > file.size() ||
      kHeaderSize + key_size + payload_size != file.size())
    return bad();
  const std::string stored_key(reinterpret_cast<const char*>(file.data() + kHeaderSize), key_size);
  const uint8_t* payload = file.data() + kHeaderSize + key_size;
  if (checksum(stored_key, payload, payload_size) != sum) return bad();
  if (stored_key != key) return std::nullopt;  // an intact entry for another key: a hash collision
  return std::vector<uint8_t>(payload, payload + payload_size);
}

bool ObjectDiskCache::store(const std::string& key, const std::vector<uint8_t>& payload) const {
  if (!enabled()) return false;
  std::error_code ec;
  std::filesystem::create_directories(directory_, ec);
  std::vector<uint8_t> file(kMagic, kMagic + 8);
  put_u64(file, key.size());
  put_u64(file, payload.size());
  put_u64(file, checksum(key, payload.data(), payload.size()));
  file.insert(file.end(), key.begin(), key.end());
  file.insert(file.end(), payload.begin(), payload.end());
  try {
    write_file_atomically(path_for(key), "TCONV3D_CACHE_DIR", file.data(), file.size());
  } catch (const Error&) {
    return false;
  }
  return true;
}

}  // namespace tconv3d::llvm_backend
