// The implementations the benchmark puts side by side, behind one interface:
// tconv3d backends (generic, xbyak) through Layer, and oneDNN. Each is built
// once per (layer, threads), checked once against the reference, then timed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bench/bench_data.hpp"

namespace tconv3d::bench {

class Implementation {
 public:
  virtual ~Implementation() = default;
  virtual void run(const float* input, float* output) const = 0;
  virtual std::string label() const = 0;  // kernel / oneDNN impl name
  virtual bool uses_zmm() const = 0;      // rated against the zmm (else ymm) FMA peak
};

// The names benchmarks use: "generic", "xbyak", "onednn".
const std::vector<std::string>& implementation_names();

// Builds one; throws std::exception with the reason when this build or CPU
// cannot run it on this layer.
std::unique_ptr<Implementation> make_implementation(const std::string& name, const LayerData& data, int threads);

}  // namespace tconv3d::bench
