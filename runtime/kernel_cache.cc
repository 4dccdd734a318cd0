#include "runtime/kernel_cache.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <future>
#include <list>
#include <mutex>
#include <unordered_map>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

using Kernel = std::shared_ptr<const ExecutableCode>;

// TCONV3D_CACHE_CAPACITY: a decimal count of kernels to keep (0 keeps none:
// every call compiles, though concurrent callers of one key still share a
// compile). Anything else is an error, not a silent default.
size_t capacity_from_environment(size_t fallback) {
  const char* text = std::getenv("TCONV3D_CACHE_CAPACITY");
  if (text == nullptr || *text == '\0') return fallback;
  const std::string value = text;
  const bool digits_only = value.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  char* end = nullptr;
  const unsigned long long parsed = digits_only ? std::strtoull(text, &end, 10) : 0;
  if (!digits_only || errno == ERANGE || parsed > SIZE_MAX)
    throw Error("TCONV3D_CACHE_CAPACITY", "expected a non-negative whole number of kernels, got '" + value + "'");
  return static_cast<size_t>(parsed);
}

}  // namespace

struct KernelCache::Impl {
  struct Cached {
    Kernel kernel;
    std::list<std::string>::iterator recency;  // position in `recent`
  };

  mutable std::mutex mutex;
  size_t capacity;
  std::list<std::string> recent;  // most recently used first
  std::unordered_map<std::string, Cached> cached;
  // Compiles in progress, outside the LRU: a waiter holds the future, so the
  // entry cannot be evicted from under it, and the capacity counts only kernels.
  std::unordered_map<std::string, std::shared_future<Kernel>> compiling;
  Stats stats;

  explicit Impl(size_t capacity_) : capacity(capacity_) {}

  void evict_to(size_t limit) {
    while (cached.size() > limit) {
      const auto victim = cached.find(recent.back());
      stats.code_bytes -= victim->second.kernel->size();
      cached.erase(victim);
      recent.pop_back();
      ++stats.evictions;
    }
  }

  void insert(const std::string& key, Kernel kernel) {
    recent.push_front(key);
    stats.code_bytes += kernel->size();
    cached.emplace(key, Cached{std::move(kernel), recent.begin()});
    evict_to(capacity);
  }
};

KernelCache::KernelCache(size_t capacity) : impl_(std::make_unique<Impl>(capacity)) {}
KernelCache::~KernelCache() = default;

KernelCache& KernelCache::global() {
  static KernelCache cache(capacity_from_environment(256));
  return cache;
}

std::shared_ptr<const ExecutableCode> KernelCache::get_or_compile(const std::string& key,
                                                                  const std::function<CompiledCode()>& compile) {
  std::promise<Kernel> promise;
  {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    if (const auto found = impl_->cached.find(key); found != impl_->cached.end()) {
      ++impl_->stats.hits;
      impl_->recent.splice(impl_->recent.begin(), impl_->recent, found->second.recency);
      return found->second.kernel;
    }
    if (const auto pending = impl_->compiling.find(key); pending != impl_->compiling.end()) {
      ++impl_->stats.hits;  // served without compiling: it waits for the first caller's compile
      std::shared_future<Kernel> result = pending->second;
      lock.unlock();
      return result.get();  // rethrows the compile's exception, if any
    }
    ++impl_->stats.misses;
    impl_->compiling.emplace(key, promise.get_future().share());
  }

  // Compile without holding the lock, so other keys compile in parallel.
  const auto started = std::chrono::steady_clock::now();
  Kernel kernel;
  try {
    CompiledCode code = compile();
    kernel = ExecutableCode::create(code.bytes.data(), code.bytes.size(), code.name);
  } catch (...) {
    const std::exception_ptr failure = std::current_exception();
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      ++impl_->stats.failures;
      impl_->stats.compile_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      impl_->compiling.erase(key);
    }
    promise.set_exception(failure);
    throw;
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stats.compile_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    impl_->compiling.erase(key);
    impl_->insert(key, kernel);
  }
  promise.set_value(kernel);
  return kernel;
}

KernelCache::Stats KernelCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Stats copy = impl_->stats;
  copy.entries = impl_->cached.size();
  return copy;
}

void KernelCache::set_capacity(size_t capacity) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->capacity = capacity;
  impl_->evict_to(capacity);
}

size_t KernelCache::capacity() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->capacity;
}

void KernelCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->cached.clear();
  impl_->recent.clear();
  impl_->stats.code_bytes = 0;
}

}  // namespace tconv3d
