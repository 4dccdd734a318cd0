#include "emit/llvm/ir_activation.hpp"

#include <llvm/IR/Intrinsics.h>

#include <initializer_list>

namespace tconv3d::llvm_backend {
namespace {

class VectorMath {
 public:
  explicit VectorMath(IrSupport& ir) : ir_(ir), b_(ir.b()) {}

  llvm::Value* c(double v) { return ir_.splat(static_cast<float>(v)); }
  llvm::Value* add(llvm::Value* a, llvm::Value* b) { return b_.CreateFAdd(a, b); }
  llvm::Value* sub(llvm::Value* a, llvm::Value* b) { return b_.CreateFSub(a, b); }
  llvm::Value* mul(llvm::Value* a, llvm::Value* b) { return b_.CreateFMul(a, b); }
  llvm::Value* div(llvm::Value* a, llvm::Value* b) { return b_.CreateFDiv(a, b); }
  llvm::Value* neg(llvm::Value* a) { return b_.CreateFNeg(a); }
  llvm::Value* abs(llvm::Value* a) { return ir_.unary(llvm::Intrinsic::fabs, a); }
  llvm::Value* sqrt(llvm::Value* a) { return ir_.unary(llvm::Intrinsic::sqrt, a); }
  llvm::Value* min(llvm::Value* a, llvm::Value* b) { return ir_.min(a, b); }
  llvm::Value* max(llvm::Value* a, llvm::Value* b) { return ir_.max(a, b); }
  llvm::Value* select(llvm::Value* m, llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(m, a, b); }
  llvm::Value* lt(llvm::Value* a, llvm::Value* b) { return b_.CreateFCmpOLT(a, b); }
  llvm::Value* le(llvm::Value* a, llvm::Value* b) { return b_.CreateFCmpOLE(a, b); }
  llvm::Value* gt(llvm::Value* a, llvm::Value* b) { return b_.CreateFCmpOGT(a, b); }
  llvm::Value* ge(llvm::Value* a, llvm::Value* b) { return b_.CreateFCmpOGE(a, b); }
  llvm::Value* is_nan(llvm::Value* a) { return b_.CreateFCmpUNO(a, a); }

  // Horner: coefficients from the highest power down.
  llvm::Value* poly(llvm::Value* x, std::initializer_list<double> coefficients) {
    llvm::Value* acc = nullptr;
    for (double k : coefficients) acc = acc ? ir_.fma(acc, x, c(k)) : c(k);
    return acc;
  }

  llvm::Value* exp(llvm::Value* x) {
    // NaN would make the float->int conversion poison: compute on 0, restore at the end.
    llvm::Value* safe = select(is_nan(x), c(0.0), x);
    llvm::Value* xc = min(max(safe, c(-86.0)), c(88.72283905206835));
    llvm::Value* n = ir_.unary(llvm::Intrinsic::rint, mul(xc, c(1.4426950408889634)));
    llvm::Value* r = ir_.fma(n, c(-0.693359375), xc);  // ln 2 = 0.693359375 - 2.12194440e-4 (exact split)
    r = ir_.fma(n, c(2.12194440e-4), r);
    llvm::Value* p = poly(r, {1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0});
    // 2^n as 2^(n-1) * 2, so n = 128 (x near the overflow bound) stays encodable.
    llvm::Type* ivec = llvm::FixedVectorType::get(b_.getInt32Ty(), ir_.lanes());
    llvm::Value* bits = b_.CreateShl(b_.CreateAdd(b_.CreateFPToSI(n, ivec), ir_.int_splat(126)), ir_.int_splat(23));
    llvm::Value* y = mul(mul(p, b_.CreateBitCast(bits, ir_.vec())), c(2.0));
    y = select(lt(x, c(-86.0)), c(0.0), y);
    y = select(gt(x, c(88.72283905206835)), llvm::ConstantFP::getInfinity(ir_.vec()), y);
    return select(is_nan(x), x, y);
  }

  llvm::Value* expm1(llvm::Value* x) {
    llvm::Value* small =
        mul(x, poly(x, {1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0}));
    return select(lt(abs(x), c(0.5)), small, sub(exp(x), c(1.0)));
  }

  // expm1 where only x <= 0 (or NaN) matters: elu and selu select x itself
  // elsewhere. One path and no conversions: x is clamped to [-30, 0] (below,
  // expm1 rounds to -1), n = round(x / ln 2) comes out of the float's low
  // bits after adding 1.5 * 2^23, and 2^n (1 + p) - 1 = 2^n p + (2^n - 1) with
  // p = expm1(r) and 2^n - 1 exact for the n that matter.
  llvm::Value* expm1_nonpositive(llvm::Value* x) {
    constexpr double kMagic = 12582912.0;  // 1.5 * 2^23
    llvm::Type* ivec = llvm::FixedVectorType::get(b_.getInt32Ty(), ir_.lanes());
    llvm::Value* xc = min(max(x, c(-30.0)), c(0.0));
    llvm::Value* t = ir_.fma(xc, c(1.4426950408889634), c(kMagic));
    llvm::Value* n = sub(t, c(kMagic));
    llvm::Value* r = ir_.fma(n, c(-0.693359375), xc);  // ln 2 = 0.693359375 - 2.12194440e-4 (exact split)
    r = ir_.fma(n, c(2.12194440e-4), r);
    llvm::Value* q = poly(r, {1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5});
    llvm::Value* p = ir_.fma(mul(r, r), q, r);
    // (bits(t) + 127) << 23: the magic's own bits shift out, n + 127 lands in the exponent.
    llvm::Value* bits = b_.CreateShl(b_.CreateAdd(b_.CreateBitCast(t, ivec), ir_.int_splat(127)), ir_.int_splat(23));
    llvm::Value* scale = b_.CreateBitCast(bits, ir_.vec());
    return select(is_nan(x), x, ir_.fma(scale, p, sub(scale, c(1.0))));
  }

  // log(1 + y) for y >= 0.
  llvm::Value* log1p(llvm::Value* y) {
    llvm::Type* ivec = llvm::FixedVectorType::get(b_.getInt32Ty(), ir_.lanes());
    llvm::Value* u = add(c(1.0), y);
    llvm::Value* correction = div(sub(y, sub(u, c(1.0))), u);  // rounding error of 1 + y, to first order
    llvm::Value* bits = b_.CreateBitCast(u, ivec);
    llvm::Value* e = b_.CreateSub(b_.CreateLShr(bits, ir_.int_splat(23)), ir_.int_splat(127));
    llvm::Value* m = b_.CreateBitCast(
        b_.CreateOr(b_.CreateAnd(bits, ir_.int_splat(0x7fffff)), ir_.int_splat(0x3f800000)), ir_.vec());
    llvm::Value* big = gt(m, c(1.4142135623730951));
    m = select(big, mul(m, c(0.5)), m);
    llvm::Value* ef = b_.CreateSIToFP(e, ir_.vec());
    ef = select(big, add(ef, c(1.0)), ef);
    llvm::Value* s = div(sub(m, c(1.0)), add(m, c(1.0)));
    llvm::Value* s2 = mul(s, s);
    llvm::Value* series = poly(s2, {2.0 / 11, 2.0 / 9, 2.0 / 7, 2.0 / 5, 2.0 / 3, 2.0});
    llvm::Value* log_m = mul(s, series);
    llvm::Value* result = add(ir_.fma(ef, c(0.6931471805599453), log_m), correction);
    return select(ge(y, llvm::ConstantFP::getInfinity(ir_.vec())), y, result);
  }

  llvm::Value* softplus(llvm::Value* x) { return add(max(x, c(0.0)), log1p(exp(neg(abs(x))))); }

  llvm::Value* sigmoid(llvm::Value* x) {
    llvm::Value* e = exp(neg(abs(x)));
    return div(select(ge(x, c(0.0)), c(1.0), e), add(c(1.0), e));
  }

  llvm::Value* tanh(llvm::Value* x) {
    llvm::Value* a = min(abs(x), c(9.0));
    llvm::Value* em = expm1(mul(a, c(2.0)));
    llvm::Value* t = div(em, add(em, c(2.0)));
    return select(lt(x, c(0.0)), neg(t), t);
  }

  llvm::Value* erf(llvm::Value* x) {
    llvm::Value* a = abs(x);
    llvm::Value* t = div(c(1.0), ir_.fma(a, c(0.3275911), c(1.0)));
    llvm::Value* p = mul(t, poly(t, {1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592}));
    llvm::Value* y = sub(c(1.0), mul(p, exp(neg(mul(a, a)))));
    return select(lt(x, c(0.0)), neg(y), y);
  }

 private:
  IrSupport& ir_;
  llvm::IRBuilder<>& b_;
};

}  // namespace

llvm::Value* emit_activation(IrSupport& ir, const Activation& act, llvm::Value* x) {
  VectorMath m(ir);
  const double alpha = act.alpha;
  auto clamp = [&](llvm::Value* v, double lo, double hi) { return m.min(m.max(v, m.c(lo)), m.c(hi)); };
  switch (act.kind) {
    case ActivationKind::kLinear: return x;
    case ActivationKind::kRelu: {
      llvm::Value* t = m.c(act.threshold);
      llvm::Value* below = alpha == 0.0 ? m.c(0.0) : m.mul(m.c(alpha), m.sub(x, t));  // +0, as max(x, 0) gives
      llvm::Value* y = m.select(m.lt(x, t), below, x);  // NaN is not below t: it passes through
      return act.max_value ? m.min(y, m.c(*act.max_value)) : y;
    }
    case ActivationKind::kLeakyRelu: return m.select(m.ge(x, m.c(0.0)), x, m.mul(m.c(alpha), x));
    case ActivationKind::kRelu6: return clamp(x, 0.0, 6.0);
    case ActivationKind::kElu:
      return m.select(m.gt(x, m.c(0.0)), x, m.mul(m.c(alpha), m.expm1_nonpositive(x)));
    case ActivationKind::kCelu:
      return m.add(m.max(x, m.c(0.0)),
                   m.min(m.c(0.0), m.mul(m.c(alpha), m.expm1(m.div(x, m.c(alpha))))));
    case ActivationKind::kSelu: {
      llvm::Value* neg = m.mul(m.c(1.6732632423543772848170429916717), m.expm1_nonpositive(x));
      return m.mul(m.c(1.0507009873554804934193349852946), m.select(m.gt(x, m.c(0.0)), x, neg));
    }
    case ActivationKind::kSoftplus: return m.softplus(x);
    case ActivationKind::kSoftsign: return m.div(x, m.add(m.c(1.0), m.abs(x)));
    case ActivationKind::kSquareplus:
      return m.mul(m.add(x, m.sqrt(m.add(m.mul(x, x), m.c(alpha)))), m.c(0.5));
    case ActivationKind::kSoftShrink: {
      llvm::Value* a = m.c(alpha);
      llvm::Value* inner = m.select(m.lt(x, m.neg(a)), m.add(x, a), m.c(0.0));
      return m.select(m.gt(x, a), m.sub(x, a), inner);
    }
    case ActivationKind::kHardShrink: return m.select(m.gt(m.abs(x), m.c(alpha)), x, m.c(0.0));
    case ActivationKind::kSparsePlus: {
      llvm::Value* x1 = m.add(x, m.c(1.0));
      llvm::Value* mid = m.mul(m.mul(x1, x1), m.c(0.25));
      return m.select(m.le(x, m.c(-1.0)), m.c(0.0), m.select(m.ge(x, m.c(1.0)), x, mid));
    }
    case ActivationKind::kSilu: return m.mul(x, m.sigmoid(x));
    case ActivationKind::kHardSilu: return m.div(m.mul(x, clamp(m.add(x, m.c(3.0)), 0.0, 6.0)), m.c(6.0));
    case ActivationKind::kGelu:
      return m.mul(m.mul(m.c(0.5), x), m.add(m.c(1.0), m.erf(m.mul(x, m.c(0.70710678118654752)))));
    case ActivationKind::kGeluTanh: {
      llvm::Value* inner = m.mul(m.c(0.79788456080286536), m.add(x, m.mul(m.c(0.044715), m.mul(x, m.mul(x, x)))));
      return m.mul(m.mul(m.c(0.5), x), m.add(m.c(1.0), m.tanh(inner)));
    }
    case ActivationKind::kTanh: return m.tanh(x);
    case ActivationKind::kTanhShrink: return m.sub(x, m.tanh(x));
    case ActivationKind::kHardTanh: return clamp(x, -1.0, 1.0);
    case ActivationKind::kSigmoid: return m.sigmoid(x);
    case ActivationKind::kHardSigmoid: return m.div(clamp(m.add(x, m.c(3.0)), 0.0, 6.0), m.c(6.0));
    case ActivationKind::kHardSigmoidTfKeras2: return clamp(m.add(m.mul(m.c(0.2), x), m.c(0.5)), 0.0, 1.0);
    case ActivationKind::kSparseSigmoid: {
      llvm::Value* mid = m.mul(m.add(x, m.c(1.0)), m.c(0.5));
      return m.select(m.le(x, m.c(-1.0)), m.c(0.0), m.select(m.ge(x, m.c(1.0)), m.c(1.0), mid));
    }
    case ActivationKind::kLogSigmoid: return m.neg(m.softplus(m.neg(x)));
    case ActivationKind::kExponential: return m.exp(x);
    case ActivationKind::kMish: return m.mul(x, m.tanh(m.softplus(x)));
    case ActivationKind::kSoftmax:
    case ActivationKind::kLogSoftmax:
    case ActivationKind::kGlu:
    case ActivationKind::kSparsemax: break;
  }
  return x;  // axis activations never reach a fused kernel (the plan refuses them)
}

}  // namespace tconv3d::llvm_backend
