// The kernel cache: generated code keyed by everything that changes it (the
// full plan, the ISA, the backend). Thread-safe; a kernel is compiled once
// even when many threads ask for it at the same moment (the others wait for
// the first). Bounded by a capacity with LRU eviction; kernels in use stay
// alive through their shared_ptr after eviction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/compiled_code.hpp"
#include "runtime/exec_memory.hpp"

namespace tconv3d {

class KernelCache {
 public:
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;       // == compiles started
    uint64_t evictions = 0;
    uint64_t failures = 0;     // compiles that threw
    double compile_seconds = 0;  // total over all compiles
    uint64_t code_bytes = 0;     // bytes of the kernels now cached
    size_t entries = 0;
  };

  explicit KernelCache(size_t capacity = 256);
  ~KernelCache();

  // The process-wide cache (capacity from TCONV3D_CACHE_CAPACITY, default 256).
  static KernelCache& global();

  // Returns the cached kernel for `key`, or runs `compile` once (other callers
  // of the same key wait) and caches its result. If `compile` throws, the
  // exception reaches every waiting caller and nothing is cached.
  std::shared_ptr<const ExecutableCode> get_or_compile(const std::string& key,
                                                       const std::function<CompiledCode()>& compile);

  Stats stats() const;
  void set_capacity(size_t capacity);  // evicts down to it
  size_t capacity() const;
  void clear();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tconv3d
