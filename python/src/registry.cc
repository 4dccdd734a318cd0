#include "python/src/registry.hpp"

#include <mutex>
#include <string>
#include <unordered_map>

#include "tconv3d/error.hpp"

namespace tconv3d::python {
namespace {

struct Registry {
  std::mutex mutex;
  int64_t next_id = 1;
  std::unordered_map<int64_t, std::shared_ptr<SpecializationCache>> caches;
};

Registry& registry() {
  // Never destroyed: XLA may still call a handler while the interpreter exits.
  static Registry* instance = new Registry;
  return *instance;
}

}  // namespace

int64_t register_cache(std::shared_ptr<SpecializationCache> cache) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const int64_t id = r.next_id++;
  r.caches.emplace(id, std::move(cache));
  return id;
}

std::shared_ptr<SpecializationCache> lookup_cache(int64_t id) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.caches.find(id);
  if (it == r.caches.end()) throw Error("cache_id", "no tconv3d layer is registered as " + std::to_string(id));
  return it->second;
}

void release_cache(int64_t id) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.caches.erase(id);
}

}  // namespace tconv3d::python
