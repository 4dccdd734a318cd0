// What the stand-alone bench programs (tconv3d_dx_bench, tconv3d_dk_bench,
// tconv3d_dk_bf16_bench, tconv3d_backward_profile, tconv3d_backend_ab)
// share: their random data, clocks, the busiest OpenMP thread's CPU time of
// a call, the --threads list, and main's error report. Header-only: each
// program is one source file.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"

namespace tconv3d::bench {

// Uniform in [-1, 1), the same values for the same seed.
inline std::vector<float> random_floats(int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = u(rng);
  return v;
}

inline double clock_seconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
inline double wall_seconds() { return clock_seconds(CLOCK_MONOTONIC); }
inline double process_cpu_seconds() { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }
inline double thread_cpu_seconds() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

// Each OpenMP pool thread's CPU clock, by its thread number.
inline std::vector<double> pool_cpu_seconds(int threads) {
  std::vector<double> seconds(static_cast<size_t>(threads), 0.0);
#pragma omp parallel num_threads(threads)
  seconds[static_cast<size_t>(omp_get_thread_num())] = thread_cpu_seconds();
  return seconds;
}

struct CallTime {
  double busiest_cpu = 0;  // CPU seconds of the busiest of the pool's threads
  double wall = 0;         // seconds
};

// One warm-up call of `body`, then calls until `seconds` of wall time and at
// least 3. The busiest thread's CPU time is what other processes on shared
// cores do not add to (run with OMP_WAIT_POLICY=passive, so that waiting
// threads do not spin on their clocks).
inline std::vector<CallTime> time_calls(const std::function<void()>& body, double seconds, int threads) {
  body();
  std::vector<CallTime> calls;
  const double start = wall_seconds();
  while (calls.size() < 3 || wall_seconds() - start < seconds) {
    const std::vector<double> c0 = pool_cpu_seconds(threads);
    const double w0 = wall_seconds();
    body();
    const double w1 = wall_seconds();
    const std::vector<double> c1 = pool_cpu_seconds(threads);
    CallTime call{0, w1 - w0};
    for (size_t i = 0; i < c0.size(); ++i) call.busiest_cpu = std::max(call.busiest_cpu, c1[i] - c0[i]);
    calls.push_back(call);
  }
  return calls;
}

// "1,2" -> {1, 2}; an Error naming --threads for an entry that is no
// positive count.
inline std::vector<int> parse_threads(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const int t = std::atoi(item.c_str());
    if (t < 1) throw Error("--threads", "expected a comma-separated list of positive counts, got " + text);
    out.push_back(t);
  }
  return out;
}

// The command line as "--flag value" pairs, in order:
//   for (Options o(argc, argv); o.next();)
//     if (o.flag == "--suite") suite = o.value(); ... else o.unknown();
// value() is the flag's value (an Error naming the flag where none follows).
class Options {
 public:
  Options(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() {
    if (++i_ >= argc_) return false;
    flag = argv_[i_];
    return true;
  }
  std::string value() {
    if (i_ + 1 >= argc_) throw Error(flag, "needs a value");
    return argv_[++i_];
  }
  [[noreturn]] void unknown() const { throw Error(flag, "unknown option"); }

  std::string flag;

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
};

// What a program's main returns: run()'s exit code, or, when it throws,
// `failure` after "program: what" on stderr.
inline int run_main(const char* program, int failure, const std::function<int()>& run) {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return failure;
  }
}

}  // namespace tconv3d::bench
