// Integer handles for specialization caches, so a compiled XLA program can
// name its layer in an FFI attribute (an int64) and find it again on every
// call without parsing a config.
#pragma once

#include <cstdint>
#include <memory>

#include "python/src/specialization_cache.hpp"

namespace tconv3d::python {

int64_t register_cache(std::shared_ptr<SpecializationCache> cache);
// Throws tconv3d::Error("cache_id") for a handle never given or released.
std::shared_ptr<SpecializationCache> lookup_cache(int64_t id);
void release_cache(int64_t id);

}  // namespace tconv3d::python
