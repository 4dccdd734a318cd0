#include "core/activation_gradient.hpp"

#include <vector>

namespace tconv3d {

bool needs_preactivation(const Activation& act) {
  switch (act.kind) {
    case ActivationKind::kLinear: return false;
    // Only plain relu is decided by y > 0; a slope, threshold or clip makes y ambiguous.
    case ActivationKind::kRelu: return act.alpha != 0.0 || act.threshold != 0.0 || act.max_value.has_value();
    case ActivationKind::kLeakyRelu: return act.alpha <= 0.0;       // y's sign tells the side
    case ActivationKind::kElu: return act.alpha < 0.0;
    case ActivationKind::kCelu: return act.alpha <= 0.0;
    case ActivationKind::kSquareplus: return act.alpha <= 0.0;      // y = relu(z) at b = 0
    case ActivationKind::kSoftShrink:
    case ActivationKind::kHardShrink: return act.alpha < 0.0;
    case ActivationKind::kRelu6:
    case ActivationKind::kSelu:
    case ActivationKind::kSoftplus:
    case ActivationKind::kSoftsign:
    case ActivationKind::kSparsePlus:
    case ActivationKind::kTanh:
    case ActivationKind::kSigmoid:
    case ActivationKind::kHardSigmoid:
    case ActivationKind::kLogSigmoid:
    case ActivationKind::kExponential:
    case ActivationKind::kSoftmax:
    case ActivationKind::kLogSoftmax:
    case ActivationKind::kSparsemax: return false;
    case ActivationKind::kSilu:
    case ActivationKind::kHardSilu:
    case ActivationKind::kGelu:
    case ActivationKind::kGeluTanh:
    case ActivationKind::kTanhShrink:
    case ActivationKind::kHardTanh:             // y = +-1 at the (included) bound and beyond it
    case ActivationKind::kHardSigmoidTfKeras2:  // y = 0 or 1 likewise
    case ActivationKind::kSparseSigmoid:
    case ActivationKind::kMish:
    case ActivationKind::kGlu: return true;
  }
  return true;
}

bool needs_output(const Activation& act) {
  return act.kind != ActivationKind::kLinear && !needs_preactivation(act);
}

void activation_gradient_rows(const Activation& act, const float* z, const float* y, const float* dy, float* dz,
                              int64_t rows, int64_t length) {
  switch (act.kind) {
    case ActivationKind::kSoftmax:
      // dz = y * (dy - <dy, y>)
      for (int64_t r = 0; r < rows; ++r) {
        const float* yr = y + r * length;
        const float* gr = dy + r * length;
        float* out = dz + r * length;
        double dot = 0.0;
        for (int64_t i = 0; i < length; ++i) dot += double(gr[i]) * double(yr[i]);
        for (int64_t i = 0; i < length; ++i) out[i] = static_cast<float>(double(yr[i]) * (double(gr[i]) - dot));
      }
      return;
    case ActivationKind::kLogSoftmax:
      // dz = dy - softmax(z) * sum(dy), softmax(z) = exp(y)
      for (int64_t r = 0; r < rows; ++r) {
        const float* yr = y + r * length;
        const float* gr = dy + r * length;
        float* out = dz + r * length;
        double sum = 0.0;
        for (int64_t i = 0; i < length; ++i) sum += double(gr[i]);
        for (int64_t i = 0; i < length; ++i)
          out[i] = static_cast<float>(double(gr[i]) - std::exp(double(yr[i])) * sum);
      }
      return;
    case ActivationKind::kSparsemax:
      // y = max(z - tau, 0) with tau from the support S = {y > 0} of size k:
      // dz_i = [i in S] (dy_i - sum_{j in S} dy_j / k).
      for (int64_t r = 0; r < rows; ++r) {
        const float* yr = y + r * length;
        const float* gr = dy + r * length;
        float* out = dz + r * length;
        double sum = 0.0;
        int64_t k = 0;
        for (int64_t i = 0; i < length; ++i)
          if (yr[i] > 0.0f) sum += double(gr[i]), ++k;
        const double mean = k > 0 ? sum / double(k) : 0.0;
        for (int64_t i = 0; i < length; ++i)
          out[i] = yr[i] > 0.0f ? static_cast<float>(double(gr[i]) - mean) : 0.0f;
      }
      return;
    case ActivationKind::kGlu: {
      // y = a * sigmoid(b) with z = [a, b] along the row.
      const int64_t half = length / 2;
      for (int64_t r = 0; r < rows; ++r) {
        const float* a = z + r * length;
        const float* b = a + half;
        const float* gr = dy + r * half;
        float* da = dz + r * length;
        float* db = da + half;
        for (int64_t i = 0; i < half; ++i) {
          const float s = detail::sigmoid(b[i]);
          da[i] = gr[i] * s;
          db[i] = gr[i] * a[i] * s * (1.0f - s);
        }
      }
      return;
    }
    default: break;
  }
  const int64_t count = rows * length;
  if (act.kind == ActivationKind::kLinear) {
    if (dz != dy)
      for (int64_t i = 0; i < count; ++i) dz[i] = dy[i];
  } else if (needs_preactivation(act)) {
    for (int64_t i = 0; i < count; ++i) dz[i] = dy[i] * activation_derivative(act, z[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) dz[i] = dy[i] * activation_derivative_from_output(act, y[i]);
  }
}

}  // namespace tconv3d
