// The backward side-by-side (issue 16): per suite layer and thread count,
// tconv3d's Layer::backward (dx + dK + db) against oneDNN's
// deconvolution_backward_data + deconvolution_backward_weights (with the bias
// gradient), both for the layer made linear (oneDNN's primitives have no
// activation; `tconv3d bench --pass backward` times the same gradients on a
// linear layer). Benchmarks "LAYER/backward/tconv3d/threads:T" and
// "LAYER/backward/onednn/threads:T" join the interleaved run; each
// implementation is checked once against the reference backward first.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_data.hpp"
#include "bench/summary.hpp"

namespace tconv3d::bench {

struct BackwardInfo {
  std::string label;
  bool uses_zmm = false;
  double dx_error = -1, dk_error = -1, db_error = -1;  // scaled max error; < 0: not checked
  std::string skipped;
};

void register_backward_benchmarks(const std::vector<std::unique_ptr<LayerData>>& layers,
                                  const std::vector<int>& threads, CollectingReporter& reporter);

// Per layer, medians from `in.seconds`, GFLOP/s counting 2x the forward's
// FLOPs, % of the FMA peak, the speed ratio tconv3d/oneDNN and its geomean,
// then each implementation's errors and kernels. Prints nothing when no
// backward benchmark ran (filtered out).
void print_backward_summary(std::FILE* out, const SummaryInput& in);

}  // namespace tconv3d::bench
