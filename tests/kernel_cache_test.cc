// KernelCache: compile-once under concurrency, parallel compiles of different
// keys, LRU eviction, failures that are not cached, and stats that add up.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <latch>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/kernel_cache.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

using Kernel = std::shared_ptr<const ExecutableCode>;
using Clock = std::chrono::steady_clock;

// `padding` nops, then `mov eax, value; ret`: kernels of distinct sizes.
CompiledCode returning(int value, size_t padding = 0) {
  CompiledCode code;
  code.bytes.assign(padding, 0x90);
  code.bytes.push_back(0xB8);
  for (int shift = 0; shift < 32; shift += 8) code.bytes.push_back(static_cast<uint8_t>(value >> shift));
  code.bytes.push_back(0xC3);
  code.name = "cache_test_" + std::to_string(value);
  return code;
}

int run(const Kernel& kernel) { return kernel->function<int (*)()>()(); }

// Polls `done` until it holds or 10 s pass; false on timeout.
template <typename Predicate>
bool wait_until(Predicate done) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(KernelCache, SixteenThreadsOnOneKeyCompileOnceAndShareTheKernel) {
  KernelCache cache;
  constexpr int kThreads = 16;
  std::atomic<int> compiles{0};
  std::atomic<bool> others_waited{false};
  std::vector<Kernel> results(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      results[t] = cache.get_or_compile("layer", [&] {
        ++compiles;
        // Hold the compile open until every other caller is waiting on it.
        others_waited = wait_until([&] { return cache.stats().hits == kThreads - 1; });
        return returning(7);
      });
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(compiles, 1);
  EXPECT_TRUE(others_waited);
  for (const Kernel& kernel : results) EXPECT_EQ(kernel, results[0]);
  EXPECT_EQ(run(results[0]), 7);
  const KernelCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.hits, kThreads - 1u);
  EXPECT_EQ(stats.entries, 1u);
}

TEST(KernelCache, SixteenThreadsOnFourKeysCompileEachKeyOnce) {
  KernelCache cache;
  constexpr int kThreads = 16, kKeys = 4;
  std::mutex mutex;
  std::map<int, int> compiles_per_key;
  std::vector<Kernel> results(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int key = t % kKeys;
      start.arrive_and_wait();
      results[t] = cache.get_or_compile("layer" + std::to_string(key), [&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::lock_guard<std::mutex> lock(mutex);
        ++compiles_per_key[key];
        return returning(100 + key);
      });
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(compiles_per_key.size(), size_t{kKeys});
  for (const auto& [key, count] : compiles_per_key) EXPECT_EQ(count, 1) << "key " << key;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(results[t], results[t % kKeys]);
    EXPECT_EQ(run(results[t]), 100 + t % kKeys);
  }
  const KernelCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.misses, size_t{kKeys});
  EXPECT_EQ(stats.hits + stats.misses, size_t{kThreads});
}

TEST(KernelCache, DifferentKeysCompileInParallel) {
  KernelCache cache;
  std::atomic<bool> second_started{false};
  bool first_saw_second = false;
  // The first compile only finishes once the second has begun: a cache that
  // compiled under one global lock would make it time out.
  std::thread first([&] {
    cache.get_or_compile("first", [&] {
      first_saw_second = wait_until([&] { return second_started.load(); });
      return returning(1);
    });
  });
  ASSERT_TRUE(wait_until([&] { return cache.stats().misses == 1; }));
  std::thread second([&] {
    cache.get_or_compile("second", [&] {
      second_started = true;
      return returning(2);
    });
  });
  first.join();
  second.join();
  EXPECT_TRUE(first_saw_second);
}

TEST(KernelCache, FailedCompileReachesEveryWaiterAndIsNotCached) {
  KernelCache cache;
  constexpr int kThreads = 8;
  std::atomic<int> compiles{0}, errors{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        cache.get_or_compile("broken", [&]() -> CompiledCode {
          ++compiles;
          wait_until([&] { return cache.stats().hits == kThreads - 1; });
          throw Error("kernel", "cannot emit this layer");
        });
      } catch (const Error& e) {
        if (std::string(e.what()) == "kernel: cannot emit this layer") ++errors;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(compiles, 1);
  EXPECT_EQ(errors, kThreads);
  EXPECT_EQ(cache.stats().failures, 1u);
  EXPECT_EQ(cache.stats().entries, 0u);
  // Nothing was cached: the next call compiles again, and may succeed.
  EXPECT_EQ(run(cache.get_or_compile("broken", [] { return returning(5); })), 5);
  EXPECT_EQ(cache.stats().misses, 2u);
  // Code that cannot be mapped (no bytes) is a failure too, naming the kernel.
  EXPECT_THROW(cache.get_or_compile("empty", [] { return CompiledCode{{}, "empty_kernel"}; }), Error);
  EXPECT_EQ(cache.stats().failures, 2u);
}

TEST(KernelCache, EvictsTheLeastRecentlyUsed) {
  KernelCache cache(2);
  std::map<std::string, int> compiles;
  auto get = [&](const std::string& key) {
    return cache.get_or_compile(key, [&] { return returning(++compiles[key]); });
  };
  get("a");
  get("b");
  get("a");  // a is now more recent than b
  get("c");  // evicts b
  EXPECT_EQ(cache.stats().evictions, 1u);
  get("a");
  EXPECT_EQ(compiles["a"], 1);
  get("b");  // compiled again; evicts c (a was used after c)
  EXPECT_EQ(compiles["b"], 2);
  get("a");
  EXPECT_EQ(compiles["a"], 1);
  get("c");
  EXPECT_EQ(compiles["c"], 2);
  const KernelCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits + stats.misses, 8u);
  EXPECT_EQ(stats.misses, 5u);
  EXPECT_EQ(stats.evictions, 3u);
  EXPECT_EQ(stats.entries, 2u);
}

TEST(KernelCache, CapacityChangesEvictOldestFirstAndStatsAddUp) {
  KernelCache cache(4);
  EXPECT_EQ(cache.capacity(), 4u);
  std::vector<Kernel> kernels;
  for (int i = 0; i < 4; ++i) kernels.push_back(cache.get_or_compile("k" + std::to_string(i), [i] { return returning(i, 10 * i); }));
  EXPECT_EQ(cache.stats().code_bytes, 6u * 4 + 10 * (0 + 1 + 2 + 3));
  cache.get_or_compile("k0", [] { return returning(-1); });  // hit: k0 becomes the most recent
  cache.set_capacity(2);                                   // keeps k0 and k3
  KernelCache::Stats stats = cache.stats();
  EXPECT_EQ(cache.capacity(), 2u);
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.evictions, 2u);
  EXPECT_EQ(stats.code_bytes, 6u + (6 + 30));
  EXPECT_EQ(cache.get_or_compile("k3", [] { return returning(-1); }), kernels[3]);
  EXPECT_EQ(cache.get_or_compile("k0", [] { return returning(-1); }), kernels[0]);
  // An evicted kernel stays alive and callable while someone holds it.
  EXPECT_EQ(run(kernels[1]), 1);
  cache.set_capacity(0);  // keeps nothing, yet still returns working kernels
  EXPECT_EQ(run(cache.get_or_compile("k9", [] { return returning(9); })), 9);
  stats = cache.stats();
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.code_bytes, 0u);
  EXPECT_EQ(stats.hits + stats.misses, 8u);
  EXPECT_GT(stats.compile_seconds, 0.0);
  cache.set_capacity(8);
  cache.get_or_compile("k1", [] { return returning(1); });
  cache.clear();
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().code_bytes, 0u);
}

TEST(KernelCacheDeathTest, GlobalCapacityComesFromTheEnvironment) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // each child starts fresh, so global() is rebuilt
  auto global_capacity_exit_code = [](const char* value) {
    setenv("TCONV3D_CACHE_CAPACITY", value, 1);
    try {
      std::exit(static_cast<int>(KernelCache::global().capacity()));
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      std::exit(255);
    }
  };
  EXPECT_EXIT(global_capacity_exit_code("7"), ::testing::ExitedWithCode(7), "");
  EXPECT_EXIT(global_capacity_exit_code("12abc"), ::testing::ExitedWithCode(255), "TCONV3D_CACHE_CAPACITY.*12abc");
  EXPECT_EXIT(global_capacity_exit_code("-1"), ::testing::ExitedWithCode(255), "TCONV3D_CACHE_CAPACITY.*-1");
  EXPECT_EXIT(global_capacity_exit_code("99999999999999999999999"), ::testing::ExitedWithCode(255), "99999");
}

TEST(KernelCache, GlobalIsOneProcessWideInstance) {
  if (std::getenv("TCONV3D_CACHE_CAPACITY") == nullptr) {
    EXPECT_EQ(KernelCache::global().capacity(), 256u);
  }
  EXPECT_EQ(&KernelCache::global(), &KernelCache::global());
}

}  // namespace
}  // namespace tconv3d
