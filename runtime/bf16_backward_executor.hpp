// What runs a bf16 layer's backward pass (Keras mixed_bfloat16): the two
// products of the gradient on bf16 data, float32 accumulation.
//
// As BackwardExecutor (runtime/backward_executor.hpp): dense channels_last
// arrays whatever the layer's data format, and dz, the gradient with respect
// to the pre-activation output, already rounded to bf16 (Keras computes dx
// and dK from the bf16 dz). The kernel used is the layer's float32 kernel
// rounded to bf16, as Keras casts it for the forward:
//   dx[n, i, ci]  = bf16( sum over a, co of dz[n, o, co] * bf16(K)[a, co, ci] )
//   dK[a, co, ci] = sum over n, i of x[n, i, ci] * dz[n, o, co]   (float32)
// Each result is bitwise identical for any thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/problem.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

class Bf16BackwardExecutor {
 public:
  virtual ~Bf16BackwardExecutor() = default;
  // dz: the pre-activation output's shape, bf16 bits. dx: input_shape, bf16 bits.
  virtual void input_gradient(const uint16_t* dz, uint16_t* dx, int threads) const = 0;
  // x: the input, bf16 bits; dk: overwritten, Keras layout, float32.
  virtual void kernel_gradient(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const = 0;
  virtual std::string input_gradient_kernel_name() const = 0;  // what runs, for reports
  virtual std::string kernel_gradient_kernel_name() const = 0;
};

// weights: the layer's (float32, as given; the dx kernel's bf16 packing is
// cached there, shared with the layer's other shapes). options.backend:
// kReference runs the double-accumulating reference loops on widened data;
// kAuto and kXbyak the generated kernels, which need AVX512_BF16 like the
// bf16 forward. Throws tconv3d::Error naming what is missing otherwise.
std::unique_ptr<Bf16BackwardExecutor> make_bf16_backward_executor(const Problem& problem, WeightStore& weights,
                                                                  const LayerOptions& options);

}  // namespace tconv3d
