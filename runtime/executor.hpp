// What runs a layer's computation: one backend's kernels for one problem,
// with the weights already packed.
#pragma once

#include <cstdint>
#include <string>

#include "tconv3d/options.hpp"

namespace tconv3d {

class Executor {
 public:
  virtual ~Executor() = default;
  // input and output are in the geometry's data format, densely packed.
  virtual void run(const float* input, float* output, int threads) const = 0;
  // bf16 (raw bits) input and output, for executors of a bf16 problem; the
  // others say they cannot.
  virtual void run_bf16(const uint16_t* input, uint16_t* output, int threads) const;
  virtual Backend backend() const = 0;
  virtual std::string isa() const = 0;          // "avx2", "avx512", "none"
  virtual std::string kernel_name() const = 0;  // what runs, for reports
};

}  // namespace tconv3d
