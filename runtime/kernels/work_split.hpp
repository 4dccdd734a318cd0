// How the row executor shares its work items among threads: the items are
// cut into chunks of about equal cost, and thread p owns the contiguous run
// of chunks [p*chunks/parts, (p+1)*chunks/parts). A thread takes chunks from
// the front of its own run; once that is empty it takes them one at a time
// from the back of the run with the most chunks left.
//
// Why not OpenMP's dynamic schedule: it hands chunk i to whichever thread is
// free, so the same output rows go to a different core every call and the
// cores write neighbouring rows at the same time. On the 2-core Zen 4 that
// made each thread ~29 % slower than one thread alone on the 0.2 ms
// k3s2_op1_odd layer (per-thread time 232 us for half the work of a 359 us
// single-thread call); owning a contiguous run brought it back to 180 us.
// Stealing from the back keeps what the owner computes next in place and
// still evens out a cost estimate that is off or a core that is slowed by
// other work.
//
// Which thread computes an item never changes its result: every item is
// computed by the same code whoever takes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace tconv3d {

// First item of each of `chunks` chunks of about equal cost, plus `items` at
// the end (chunks + 1 entries, non-decreasing, first 0). Item i costs
// cost[i % cost.size()] (the same rows repeat per batch item and kernel);
// costs must be >= 0. chunks >= 1; a chunk may be empty when items < chunks.
std::vector<int64_t> equal_cost_chunks(const std::vector<int64_t>& cost, int64_t items, int chunks);

// The split of one executor's items among `parts` threads.
struct WorkSplit {
  std::vector<int64_t> first;  // first item of each chunk, plus the item count at the end
  std::vector<int> run_first;  // first chunk of each thread's run, plus the chunk count (parts + 1 entries)
  int chunks() const { return static_cast<int>(first.size()) - 1; }
};

constexpr int64_t kGuidedShare = 4;

// `parts` runs of about equal cost (equal_cost_chunks), each cut into
// chunks that shrink toward its end: a chunk holds about 1/kGuidedShare of
// the cost its run has left (at least one item), so what others take from
// the back is small, and a thread slowed down to 1/kGuidedShare of the
// others' speed still finishes its first chunk before they run out of work.
// Fewer, larger chunks cost less: each take is a locked compare-exchange
// that waits for the kernel's stores to drain (k3s2_op1_odd, 2 threads:
// share 8 0.1840 ms, 4 0.1830, 2 0.1822). 1 <= parts <= items.
WorkSplit split_work(const std::vector<int64_t>& cost, int64_t items, int parts);

class ChunkQueue {
 public:
  // The runs of `split` (split.run_first), one per thread.
  explicit ChunkQueue(const WorkSplit& split);

  // The next chunk for thread `part` (0 <= part < parts), or -1 once every
  // chunk has been handed out. Each chunk is handed out exactly once.
  int next(int part);

  int parts() const { return parts_; }

 private:
  // A run [front, back) packed in one word (front in the low 32 bits) so one
  // compare-exchange moves either end; front only grows and back only
  // shrinks, so a run once empty stays empty. One cache line each, so an
  // owner's takes do not contend with the other owners'.
  struct alignas(64) Run {
    std::atomic<uint64_t> bounds{0};
  };
  static constexpr int kInlineRuns = 16;  // up to 16 threads: no allocation per call

  Run* run(int part) { return heap_ ? &heap_[static_cast<size_t>(part)] : &inline_[part]; }
  int steal(int part);

  int parts_;
  Run inline_[kInlineRuns];
  std::unique_ptr<Run[]> heap_;
};

}  // namespace tconv3d
