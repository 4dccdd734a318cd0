#include "runtime/kernels/work_split.hpp"

#include <algorithm>
#include <string>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

uint64_t pack(uint32_t front, uint32_t back) { return uint64_t(front) | (uint64_t(back) << 32); }
uint32_t front_of(uint64_t bounds) { return static_cast<uint32_t>(bounds); }
uint32_t back_of(uint64_t bounds) { return static_cast<uint32_t>(bounds >> 32); }

}  // namespace

std::vector<int64_t> equal_cost_chunks(const std::vector<int64_t>& cost, int64_t items, int chunks) {
  if (chunks < 1) throw Error("chunks", "must be >= 1, got " + std::to_string(chunks));
  if (items < 0) throw Error("items", "must be >= 0, got " + std::to_string(items));
  std::vector<int64_t> first(static_cast<size_t>(chunks) + 1, items);
  first[0] = 0;
  const int64_t rows = static_cast<int64_t>(cost.size());
  if (rows == 0 || items == 0) return first;
  // Exact integer arithmetic (the sum of all costs fits easily: items *
  // max cost stays far below 2^63 for any layer that fits in memory), so
  // the cuts never depend on rounding.
  int64_t per_round = 0;
  for (int64_t c : cost) {
    if (c < 0) throw Error("cost", "must be >= 0, got " + std::to_string(c));
    per_round += c;
  }
  const int64_t rounds = items / rows, rest = items % rows;
  int64_t total = per_round * rounds;
  for (int64_t i = 0; i < rest; ++i) total += cost[static_cast<size_t>(i)];
  if (total == 0) {  // no cost model: equal item counts
    for (int c = 1; c < chunks; ++c) first[static_cast<size_t>(c)] = items * c / chunks;
    return first;
  }
  // Chunk c starts at the first item whose preceding cost reaches
  // total * c / chunks (as a fraction: done * chunks >= total * c).
  int64_t done = 0;
  int next = 1;
  for (int64_t i = 0; i < items && next < chunks; ++i) {
    while (next < chunks && static_cast<__int128>(done) * chunks >= static_cast<__int128>(total) * next)
      first[static_cast<size_t>(next++)] = i;
    done += cost[static_cast<size_t>(i % rows)];
  }
  return first;
}

WorkSplit split_work(const std::vector<int64_t>& cost, int64_t items, int parts) {
  if (parts < 1 || parts > items)
    throw Error("parts",
                "must be in [1, " + std::to_string(items) + "] (the item count), got " + std::to_string(parts));
  const std::vector<int64_t> runs = equal_cost_chunks(cost, items, parts);
  const int64_t rows = static_cast<int64_t>(cost.size());
  auto cost_of = [&](int64_t i) { return rows ? cost[static_cast<size_t>(i % rows)] : int64_t(0); };
  WorkSplit split;
  for (int p = 0; p < parts; ++p) {
    split.run_first.push_back(static_cast<int>(split.first.size()));
    const int64_t begin = runs[static_cast<size_t>(p)], end = runs[static_cast<size_t>(p) + 1];
    int64_t left = 0;
    for (int64_t i = begin; i < end; ++i) left += cost_of(i);
    for (int64_t i = begin; i < end;) {
      split.first.push_back(i);
      const int64_t target = left / kGuidedShare;
      int64_t taken = 0;
      do {
        taken += cost_of(i++);
      } while (i < end && taken + cost_of(i) <= target);
      left -= taken;
    }
  }
  split.run_first.push_back(static_cast<int>(split.first.size()));
  split.first.push_back(items);
  if (split.first.size() > size_t(1) << 31) throw Error("items", "too many chunks for one queue");
  return split;
}

ChunkQueue::ChunkQueue(const WorkSplit& split) : parts_(static_cast<int>(split.run_first.size()) - 1) {
  if (parts_ < 1) throw Error("split", "has no runs");
  if (parts_ > kInlineRuns) heap_.reset(new Run[static_cast<size_t>(parts_)]);
  for (int p = 0; p < parts_; ++p) {
    const auto begin = static_cast<uint32_t>(split.run_first[static_cast<size_t>(p)]);
    const auto end = static_cast<uint32_t>(split.run_first[static_cast<size_t>(p) + 1]);
    run(p)->bounds.store(pack(begin, end), std::memory_order_relaxed);
  }
}

int ChunkQueue::next(int part) {
  std::atomic<uint64_t>& own = run(part)->bounds;
  uint64_t bounds = own.load(std::memory_order_relaxed);
  while (front_of(bounds) < back_of(bounds)) {
    if (own.compare_exchange_weak(bounds, pack(front_of(bounds) + 1, back_of(bounds)), std::memory_order_relaxed))
      return static_cast<int>(front_of(bounds));
  }
  return steal(part);
}

// The chunk at the back of the run with the most chunks left; -1 when all
// runs are empty. A run that was empty when looked at stays empty, so one
// pass that finds nothing means there is nothing left.
int ChunkQueue::steal(int part) {
  for (;;) {
    int victim = -1;
    uint32_t most = 0;
    for (int i = 1; i < parts_; ++i) {
      const int p = (part + i) % parts_;
      const uint64_t b = run(p)->bounds.load(std::memory_order_relaxed);
      const uint32_t left = front_of(b) < back_of(b) ? back_of(b) - front_of(b) : 0;
      if (left > most) most = left, victim = p;
    }
    if (victim < 0) return -1;
    std::atomic<uint64_t>& theirs = run(victim)->bounds;
    uint64_t bounds = theirs.load(std::memory_order_relaxed);
    while (front_of(bounds) < back_of(bounds)) {
      if (theirs.compare_exchange_weak(bounds, pack(front_of(bounds), back_of(bounds) - 1), std::memory_order_relaxed))
        return static_cast<int>(back_of(bounds) - 1);
    }
    // The victim emptied meanwhile: look again.
  }
}

}  // namespace tconv3d
