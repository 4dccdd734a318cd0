// The row executor's thread split (runtime/kernels/work_split.hpp): chunks
// of equal cost, per-thread runs that shrink toward their end, a queue that
// hands every chunk out exactly once (threads 1..17, steals, absent threads),
// and layers whose output is the same, bit for bit, for 1..17 threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "core/activation.hpp"
#include "runtime/kernels/work_split.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

int64_t cost_of(const std::vector<int64_t>& cost, int64_t item) {
  return cost[static_cast<size_t>(item % static_cast<int64_t>(cost.size()))];
}

int64_t cost_between(const std::vector<int64_t>& cost, int64_t begin, int64_t end) {
  int64_t sum = 0;
  for (int64_t i = begin; i < end; ++i) sum += cost_of(cost, i);
  return sum;
}

// Row costs as a plan makes them (a few tap classes, never 0) or anything >= 0.
std::vector<int64_t> random_costs(std::mt19937_64& rng, int64_t rows, bool zeros) {
  std::vector<int64_t> cost(static_cast<size_t>(rows));
  std::uniform_int_distribution<int64_t> pick(zeros ? 0 : 1, 1000);
  for (int64_t& c : cost) c = pick(rng);
  return cost;
}

TEST(EqualCostChunks, CutsWhereTheCostReachesEachShare) {
  std::mt19937_64 rng(17);
  for (int round = 0; round < 200; ++round) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 37);
    const int64_t items = static_cast<int64_t>(rng() % 3 == 0 ? rng() % 100 : rows * (1 + rng() % 5));
    const int chunks = 1 + static_cast<int>(rng() % 40);
    const std::vector<int64_t> cost = random_costs(rng, rows, round % 4 == 0);
    const std::vector<int64_t> first = equal_cost_chunks(cost, items, chunks);
    ASSERT_EQ(first.size(), static_cast<size_t>(chunks) + 1);
    EXPECT_EQ(first.front(), 0);
    EXPECT_EQ(first.back(), items);
    const int64_t total = cost_between(cost, 0, items);
    for (int c = 0; c < chunks; ++c) ASSERT_LE(first[c], first[c + 1]) << "chunk " << c;
    if (total == 0) continue;
    // Chunk c starts at the first item where the cost before it reaches c/chunks of the total.
    for (int c = 1; c < chunks; ++c) {
      const int64_t before = cost_between(cost, 0, first[c]);
      EXPECT_GE(before * chunks, total * c) << "round " << round << " chunk " << c;
      if (first[c] > 0) EXPECT_LT(cost_between(cost, 0, first[c] - 1) * chunks, total * c) << "chunk " << c;
    }
  }
}

TEST(EqualCostChunks, WithoutCostsCutsEqualCounts) {
  const std::vector<int64_t> first = equal_cost_chunks({0, 0, 0}, 10, 4);
  EXPECT_EQ(first, (std::vector<int64_t>{0, 2, 5, 7, 10}));
  EXPECT_EQ(equal_cost_chunks({}, 5, 2), (std::vector<int64_t>{0, 5, 5}));
  EXPECT_EQ(equal_cost_chunks({3}, 0, 3), (std::vector<int64_t>{0, 0, 0, 0}));
}

TEST(EqualCostChunks, RejectsBadArguments) {
  EXPECT_THROW(equal_cost_chunks({1}, 4, 0), Error);
  EXPECT_THROW(equal_cost_chunks({1}, -1, 2), Error);
  EXPECT_THROW(equal_cost_chunks({1, -2}, 4, 2), Error);
}

// Every item in exactly one chunk, every chunk in one run, runs in thread
// order of about equal cost, and chunks that shrink toward a run's end.
void check_split(const WorkSplit& s, const std::vector<int64_t>& cost, int64_t items, int parts) {
  ASSERT_EQ(s.run_first.size(), static_cast<size_t>(parts) + 1);
  ASSERT_GE(s.first.size(), size_t(1));
  EXPECT_EQ(s.first.front(), 0);
  EXPECT_EQ(s.first.back(), items);
  EXPECT_EQ(s.run_first.front(), 0);
  EXPECT_EQ(s.run_first.back(), s.chunks());
  for (int c = 0; c < s.chunks(); ++c) ASSERT_LT(s.first[c], s.first[c + 1]) << "chunk " << c << " is empty";
  const std::vector<int64_t> runs = equal_cost_chunks(cost, items, parts);
  for (int p = 0; p < parts; ++p) {
    ASSERT_LE(s.run_first[p], s.run_first[p + 1]);
    // The run's chunks cover exactly its equal-cost share of the items.
    EXPECT_EQ(s.first[static_cast<size_t>(s.run_first[p])], runs[p]) << "run " << p;
    EXPECT_EQ(s.first[static_cast<size_t>(s.run_first[p + 1])], runs[p + 1]) << "run " << p;
    for (int c = s.run_first[p]; c < s.run_first[p + 1]; ++c) {
      const int64_t chunk = cost_between(cost, s.first[c], s.first[c + 1]);
      const int64_t left = cost_between(cost, s.first[c], runs[p + 1]);
      // At most its share of what the run has left, or a single item.
      EXPECT_TRUE(chunk <= left / kGuidedShare || s.first[c + 1] - s.first[c] == 1)
          << "run " << p << " chunk " << c << " costs " << chunk << " of " << left << " left";
    }
  }
}

TEST(SplitWork, EveryItemOnceInShrinkingChunks) {
  std::mt19937_64 rng(29);
  for (int round = 0; round < 150; ++round) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 53);
    const int64_t items = rows * (1 + static_cast<int64_t>(rng() % 4));  // batch x kernels repeats of the rows
    const std::vector<int64_t> cost = random_costs(rng, rows, round % 5 == 0);
    for (int parts = 1; parts <= std::min<int64_t>(items, 17); ++parts) {
      SCOPED_TRACE("round " + std::to_string(round) + " parts " + std::to_string(parts));
      check_split(split_work(cost, items, parts), cost, items, parts);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(SplitWork, EqualRowsSplitTheBatchEvenly) {
  // k3s2_op1_odd's shape: 2 batch items of 14 x 18 rows, 2 threads: one batch item each.
  const std::vector<int64_t> cost(14 * 18, 5);
  const WorkSplit s = split_work(cost, 2 * 14 * 18, 2);
  EXPECT_EQ(s.first[static_cast<size_t>(s.run_first[1])], 14 * 18);
}

TEST(SplitWork, RejectsMorePartsThanItems) {
  EXPECT_THROW(split_work({1, 1}, 2, 3), Error);
  EXPECT_THROW(split_work({1, 1}, 2, 0), Error);
}

// Hands out the queue's chunks to `threads` real threads at once (thread t
// asking as part t % parts) and counts how often each chunk came out.
std::vector<int> drain(const WorkSplit& split, int threads) {
  ChunkQueue queue(split);
  std::vector<std::atomic<int>> seen(static_cast<size_t>(split.chunks()));
  std::vector<std::thread> pool;
  std::atomic<bool> go{false};
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int c = queue.next(t % queue.parts()); c >= 0; c = queue.next(t % queue.parts()))
        seen[static_cast<size_t>(c)].fetch_add(1);
    });
  go.store(true);
  for (std::thread& th : pool) th.join();
  std::vector<int> counts;
  for (auto& s : seen) counts.push_back(s.load());
  return counts;
}

TEST(ChunkQueue, HandsOutEveryChunkOnceToConcurrentThreads) {
  std::mt19937_64 rng(41);
  for (int parts = 1; parts <= 17; ++parts) {
    for (int64_t items : {int64_t(parts), int64_t(parts) * 3 + 1, int64_t(504), int64_t(1001)}) {
      const std::vector<int64_t> cost = random_costs(rng, 7 + parts, false);
      const WorkSplit split = split_work(cost, items, parts);
      for (int threads : {parts, std::max(1, parts / 2)}) {  // fewer threads than runs: the rest is stolen
        for (int repeat = 0; repeat < 3; ++repeat) {
          const std::vector<int> counts = drain(split, threads);
          for (size_t c = 0; c < counts.size(); ++c)
            ASSERT_EQ(counts[c], 1) << "chunk " << c << " of " << counts.size() << ", parts " << parts << " threads "
                                    << threads << " items " << items;
        }
      }
    }
  }
}

TEST(ChunkQueue, OwnerTakesItsRunFrontToBackThenStealsFromTheBack) {
  const std::vector<int64_t> cost(12, 1);
  const WorkSplit split = split_work(cost, 12, 3);
  ASSERT_EQ(split.run_first.size(), size_t(4));
  ChunkQueue queue(split);
  std::vector<int> got;
  for (int c = queue.next(1); c >= 0; c = queue.next(1)) got.push_back(c);
  std::vector<int> expected;
  for (int c = split.run_first[1]; c < split.run_first[2]; ++c) expected.push_back(c);  // its own run, in order
  // Then one at a time from the back of the run with the most left (run 2 after run 0 on ties: it looks from
  // part + 1 on), until every run is empty.
  std::vector<int> left0, left2;
  for (int c = split.run_first[0]; c < split.run_first[1]; ++c) left0.push_back(c);
  for (int c = split.run_first[2]; c < split.run_first[3]; ++c) left2.push_back(c);
  while (!left0.empty() || !left2.empty()) {
    std::vector<int>& from = left2.size() >= left0.size() ? left2 : left0;
    expected.push_back(from.back());
    from.pop_back();
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(queue.next(0), -1);
  EXPECT_EQ(queue.next(2), -1);
}

TEST(ChunkQueue, ManyThreadsUseTheirOwnCacheLines) {
  // More runs than the inline ones (16): the queue allocates them.
  const std::vector<int64_t> cost(40, 1);
  const WorkSplit split = split_work(cost, 40, 40);
  const std::vector<int> counts = drain(split, 40);
  EXPECT_EQ(std::count(counts.begin(), counts.end(), 1), 40);
}

// Layers through the generated-kernel row executor: the output for 1..17
// threads is the 1-thread output bit for bit, and every value is written
// (the output starts as NaN).
class RowSplitTest : public testing::TargetTest {};

struct SplitCase {
  testing::RandomCase layer;
  const char* why;
};

std::vector<SplitCase> split_cases() {
  std::vector<SplitCase> cases;
  testing::RandomCase c;
  c.config.filters = 20;
  c.config.kernel_size = {3, 3, 3};
  c.config.strides = {2, 2, 2};
  c.config.padding = Padding::kSame;
  c.config.output_padding = Triple{1, 1, 1};
  c.config.activation = parse_activation_name("elu", Flavor::kKeras3);
  c.input_shape = {3, 3, 5, 7, 24};
  cases.push_back({c, "k3s2_op1_odd-like, batch 3, odd sizes (memory order)"});
  c.input_shape = {1, 1, 1, 3, 24};
  cases.push_back({c, "fewer rows (4) than most thread counts"});
  const testing::RandomCase big{testing::config_of(70, 4, 2, Padding::kSame), {2, 3, 2, 5, 250}};
  cases.push_back({big, "weights over 256 KiB (phase order), per-group kernels where split"});
  return cases;
}

TEST_P(RowSplitTest, SameBitsForOneToSeventeenThreads) {
  std::mt19937_64 rng(5);
  for (const SplitCase& sc : split_cases()) {
    const testing::RandomCase& c = sc.layer;
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const testing::RandomLayerData d = testing::random_layer_data(g, rng);
    std::vector<float> first;
    for (int threads = 1; threads <= 17; ++threads) {
      const Layer layer = Layer::create(c.config, c.input_shape, {d.kernel.data(), d.kernel_shape},
                                        {d.bias.data(), {g.out_channels}}, options(threads));
      std::vector<float> output(static_cast<size_t>(layer.output_elements()), std::nanf(""));
      for (int call = 0; call < 2; ++call) {  // the second call reuses the cached split
        layer.forward(d.input.data(), output.data());
        const auto unwritten = std::count_if(output.begin(), output.end(), [](float v) { return std::isnan(v); });
        ASSERT_EQ(unwritten, 0) << sc.why << ", threads " << threads << " (" << layer.kernel_name() << ")";
        if (threads == 1 && call == 0) {
          first = output;
        } else {
          ASSERT_EQ(0, std::memcmp(first.data(), output.data(), first.size() * sizeof(float)))
              << sc.why << ": threads 1 vs " << threads << " (" << layer.kernel_name() << ")";
        }
        std::fill(output.begin(), output.end(), std::nanf(""));
      }
    }
  }
}

TEST_P(RowSplitTest, CallsFromInsideAParallelRegionGetEveryRow) {
  // Nested OpenMP regions run with one thread: that thread takes every run.
  const SplitCase sc = split_cases().front();
  const Layer layer = Layer::create_initialized(sc.layer.config, sc.layer.input_shape, 3, options(4));
  std::mt19937_64 rng(8);
  const std::vector<float> input = testing::random_tensor(layer.geometry().input_elements(), rng);
  std::vector<float> expected(static_cast<size_t>(layer.output_elements()));
  layer.forward(input.data(), expected.data());
  std::vector<std::vector<float>> outputs(3, std::vector<float>(expected.size(), std::nanf("")));
#pragma omp parallel for num_threads(3)
  for (int i = 0; i < 3; ++i) layer.forward(input.data(), outputs[static_cast<size_t>(i)].data());
  for (const std::vector<float>& output : outputs)
    EXPECT_EQ(0, std::memcmp(expected.data(), output.data(), expected.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Targets, RowSplitTest,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

}  // namespace
}  // namespace tconv3d
