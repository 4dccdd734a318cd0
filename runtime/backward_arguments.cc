#include "runtime/backward_arguments.hpp"

#include <string>

#include "core/activation_gradient.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

struct Span {
  const void* data;
  int64_t bytes;
  const char* name;
};

bool overlap(const Span& a, const Span& b) {
  if (!a.data || !b.data) return false;
  const auto a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);
  return a0 < b0 + uintptr_t(b.bytes) && b0 < a0 + uintptr_t(a.bytes);
}

}  // namespace

bool check_backward_arguments(const ConvGeometry& g, const Activation& act, bool use_bias, int64_t output_elements,
                              int64_t value_bytes, const void* x, const void* y, const void* dy, const void* dx,
                              const void* dk, const void* db) {
  if (!dy) throw Error("dy", "no output gradient given (null)");
  if (!dx && !dk && !db) return false;
  if (!x && dk) throw Error("x", "the kernel gradient needs the input, but none was given (null)");
  if (!x && needs_preactivation(act)) {
    throw Error("x", "the " + act.name +
                         " activation's derivative needs the pre-activation output, which is recomputed from the "
                         "input, but none was given (null)");
  }
  if (!y && needs_output(act)) {
    throw Error("y", "the " + act.name +
                         " activation's derivative is computed from the forward output, but none was given (null)");
  }
  if (db && !use_bias) throw Error("db", "the layer has no bias, so there is no bias gradient to write");
  const int64_t in_bytes = value_bytes * g.input_elements(), out_bytes = value_bytes * output_elements;
  const Span inputs[] = {{x, in_bytes, "x"}, {y, out_bytes, "y"}, {dy, out_bytes, "dy"}};
  const Span outputs[] = {{dx, in_bytes, "dx"}, {dk, 4 * g.kernel_elements(), "dk"}, {db, 4 * g.out_channels, "db"}};
  for (int i = 0; i < 3; ++i) {
    for (const Span& in : inputs)
      if (overlap(outputs[i], in)) throw Error(outputs[i].name, "overlaps an input array (x, y or dy)");
    for (int j = i + 1; j < 3; ++j)
      if (overlap(outputs[i], outputs[j])) throw Error(outputs[i].name, std::string("overlaps ") + outputs[j].name);
  }
  return true;
}

}  // namespace tconv3d
