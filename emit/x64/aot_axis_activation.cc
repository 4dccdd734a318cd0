// Axis activations in an Xbyak AOT object, in scalar double precision with
// the operations in the order core/activation.cc performs them, so the
// object's output matches the JIT's bit for bit: the JIT computes them in
// double with libm, and exp/log here are accurate to a couple of double
// ulps, far below the float rounding of the result. The object needs no libm.
#include <cmath>

#include "emit/x64/aot_code.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;

// ln 2 split so that k * kLn2Hi is exact for |k| < 2^20 (fdlibm's constants).
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kLog2e = 1.44269504088896338700e+00;

}  // namespace

void AxisActivationEmitter::emit_apply() {
  if (a_.rows <= 0 || a_.length <= 0) return;
  // r12: source row, r13: destination row, r14: row counter.
  c_.counted_loop(r14, 0, a_.rows, [&] {
    switch (a_.kind) {
      case ActivationKind::kSoftmax: softmax_row(false); break;
      case ActivationKind::kLogSoftmax: softmax_row(true); break;
      case ActivationKind::kGlu: glu_row(); break;
      case ActivationKind::kSparsemax: sparsemax_row(); break;
      default: throw Error("activation", "not an axis activation");
    }
    c_.add_constant(r12, 4 * a_.length);
    c_.add_constant(r13, 4 * (a_.kind == ActivationKind::kGlu ? a_.length / 2 : a_.length));
  });
}

// max = x[0]; max = std::max(max, x[i]); sum += exp(x[i] - max); then
// exp(x[i] - max) / sum, or x[i] - max - log(sum).
void AxisActivationEmitter::softmax_row(bool log) {
  c_.vcvtss2sd(xmm6, xmm6, c_.dword[r12]);
  c_.counted_loop(rbx, 1, a_.length, [&] {
    c_.vcvtss2sd(xmm0, xmm0, c_.dword[r12 + rbx * 4]);
    c_.vmaxsd(xmm6, xmm0, xmm6);  // x > max ? x : max, which is std::max(max, x)
  });
  c_.vxorpd(xmm7, xmm7, xmm7);
  c_.counted_loop(rbx, 0, a_.length, [&] {
    c_.vcvtss2sd(xmm0, xmm0, c_.dword[r12 + rbx * 4]);
    c_.vsubsd(xmm0, xmm0, xmm6);
    c_.call(exp_);
    c_.vaddsd(xmm7, xmm7, xmm0);
  });
  if (log) {
    c_.vmovapd(xmm0, xmm7);
    c_.call(log_);
    c_.vmovapd(xmm7, xmm0);
  }
  c_.counted_loop(rbx, 0, a_.length, [&] {
    c_.vcvtss2sd(xmm0, xmm0, c_.dword[r12 + rbx * 4]);
    c_.vsubsd(xmm0, xmm0, xmm6);
    if (log) {
      c_.vsubsd(xmm0, xmm0, xmm7);
    } else {
      c_.call(exp_);
      c_.vdivsd(xmm0, xmm0, xmm7);
    }
    c_.vcvtsd2ss(xmm0, xmm0, xmm0);
    c_.vmovss(c_.dword[r13 + rbx * 4], xmm0);
  });
}

// y[i] = x[i] * sigmoid(x[i + half]).
void AxisActivationEmitter::glu_row() {
  const int64_t half = a_.length / 2;
  c_.counted_loop(rbx, 0, half, [&] {
    c_.vcvtss2sd(xmm0, xmm0, c_.dword[r12 + rbx * 4 + 4 * half]);
    c_.call(sigmoid_);
    c_.vcvtss2sd(xmm1, xmm1, c_.dword[r12 + rbx * 4]);
    c_.vmulsd(xmm0, xmm1, xmm0);
    c_.vcvtsd2ss(xmm0, xmm0, xmm0);
    c_.vmovss(c_.dword[r13 + rbx * 4], xmm0);
  });
}

// The row as doubles, sorted descending (insertion sort: rows are short),
// the support's threshold tau, then max(x - tau, 0), as sparsemax_row does.
void AxisActivationEmitter::sparsemax_row() {
  const int64_t n = a_.length;
  c_.counted_loop(rbx, 0, n, [&] {
    c_.vcvtss2sd(xmm0, xmm0, c_.dword[r12 + rbx * 4]);
    c_.vmovsd(c_.qword[r15 + rbx * 8], xmm0);
  });
  c_.counted_loop(rbx, 1, n, [&] {
    Xbyak::Label shift, place;
    c_.vmovsd(xmm0, c_.qword[r15 + rbx * 8]);
    c_.mov(rbp, rbx);
    c_.L(shift);
    c_.test(rbp, rbp);
    c_.jz(place, c_.T_NEAR);
    c_.vmovsd(xmm1, c_.qword[r15 + rbp * 8 - 8]);
    c_.vucomisd(xmm1, xmm0);
    c_.jae(place, c_.T_NEAR);  // sorted[j-1] >= v (or unordered): v goes at j
    c_.vmovsd(c_.qword[r15 + rbp * 8], xmm1);
    c_.dec(rbp);
    c_.jmp(shift, c_.T_NEAR);
    c_.L(place);
    c_.vmovsd(c_.qword[r15 + rbp * 8], xmm0);
  });
  // xmm6: cumulative, xmm7: tau, xmm5: 1.0.
  c_.vxorpd(xmm6, xmm6, xmm6);
  c_.vxorpd(xmm7, xmm7, xmm7);
  c_.load_double(xmm5, 1.0);
  c_.counted_loop(rbx, 1, n + 1, [&] {
    Xbyak::Label outside;
    c_.vmovsd(xmm0, c_.qword[r15 + rbx * 8 - 8]);
    c_.vaddsd(xmm6, xmm6, xmm0);
    c_.vcvtsi2sd(xmm1, xmm1, rbx);
    c_.vmulsd(xmm0, xmm1, xmm0);
    c_.vaddsd(xmm0, xmm5, xmm0);  // 1 + k * sorted[k-1]
    c_.vucomisd(xmm0, xmm6);
    c_.jbe(outside, c_.T_NEAR);  // not > cumulative (or unordered)
    c_.vsubsd(xmm7, xmm6, xmm5);
    c_.vdivsd(xmm7, xmm7, xmm1);
    c_.L(outside);
  });
  c_.vxorpd(xmm5, xmm5, xmm5);
  c_.counted_loop(rbx, 0, n, [&] {
    c_.vcvtss2sd(xmm0, xmm0, c_.dword[r12 + rbx * 4]);
    c_.vsubsd(xmm0, xmm0, xmm7);
    c_.vmaxsd(xmm0, xmm5, xmm0);  // 0 > v ? 0 : v, which is std::max(v, 0.0)
    c_.vcvtsd2ss(xmm0, xmm0, xmm0);
    c_.vmovss(c_.dword[r13 + rbx * 4], xmm0);
  });
}

void AxisActivationEmitter::emit_subroutines() {
  if (a_.rows <= 0 || a_.length <= 0) return;
  c_.align(16);
  c_.L(exp_);
  emit_exp();
  c_.align(16);
  c_.L(log_);
  emit_log();
  c_.align(16);
  c_.L(sigmoid_);
  emit_sigmoid();
}

// exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 (|r| <= ln 2 / 2,
// reduced in two exact-ish steps), exp(r) by its Taylor series to r^13
// (truncation below 1e-17), and 2^k applied in two halves so that results
// near overflow and subnormal ones come out right.
void AxisActivationEmitter::emit_exp() {
  c_.load_double(xmm1, 710.0);
  c_.vminsd(xmm0, xmm1, xmm0);  // x > 710: overflows anyway (and NaN stays NaN)
  c_.load_double(xmm1, -746.0);
  c_.vmaxsd(xmm0, xmm1, xmm0);  // x < -746: underflows anyway
  c_.load_double(xmm1, kLog2e);
  c_.vmulsd(xmm1, xmm0, xmm1);
  c_.vroundsd(xmm1, xmm1, xmm1, 0);  // k, to nearest
  c_.load_double(xmm2, kLn2Hi);
  c_.vmulsd(xmm2, xmm1, xmm2);
  c_.vsubsd(xmm0, xmm0, xmm2);
  c_.load_double(xmm2, kLn2Lo);
  c_.vmulsd(xmm2, xmm1, xmm2);
  c_.vsubsd(xmm0, xmm0, xmm2);  // r
  double factorial = 1.0;
  for (int i = 2; i <= 13; ++i) factorial *= i;
  c_.load_double(xmm2, 1.0 / factorial);
  for (int i = 12; i >= 0; --i) {
    factorial /= (i + 1);
    c_.vmulsd(xmm2, xmm2, xmm0);
    c_.load_double(xmm3, 1.0 / factorial);
    c_.vaddsd(xmm2, xmm2, xmm3);
  }
  c_.vcvtsd2si(rax, xmm1);
  c_.mov(rcx, rax);
  c_.sar(rcx, 1);
  c_.sub(rax, rcx);
  for (const Xbyak::Reg64& half : {rcx, rax}) {
    c_.add(half, 1023);
    c_.shl(half, 52);
    c_.vmovq(xmm3, half);
    c_.vmulsd(xmm2, xmm2, xmm3);
  }
  c_.vmovapd(xmm0, xmm2);
  c_.ret();
}

// log(x) = e ln 2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)), and
// log(m) = 2f (1 + f^2/3 + f^4/5 + ... + f^20/21), f = (m - 1) / (m + 1),
// |f| <= 0.172 (truncation below 1e-17). Only called on a softmax sum >= 1.
void AxisActivationEmitter::emit_log() {
  Xbyak::Label reduced;
  c_.vmovq(rax, xmm0);
  c_.mov(rcx, rax);
  c_.shr(rcx, 52);
  c_.sub(rcx, 1023);  // e
  c_.mov(rdx, (uint64_t(1) << 52) - 1);
  c_.and_(rax, rdx);
  c_.mov(rdx, uint64_t(1023) << 52);
  c_.or_(rax, rdx);
  c_.vmovq(xmm0, rax);  // m in [1, 2)
  c_.load_double(xmm1, std::sqrt(2.0));
  c_.vucomisd(xmm0, xmm1);
  c_.jbe(reduced, c_.T_NEAR);
  c_.load_double(xmm1, 0.5);
  c_.vmulsd(xmm0, xmm0, xmm1);
  c_.inc(rcx);
  c_.L(reduced);
  c_.vcvtsi2sd(xmm4, xmm4, rcx);
  c_.load_double(xmm1, 1.0);
  c_.vsubsd(xmm2, xmm0, xmm1);
  c_.vaddsd(xmm3, xmm0, xmm1);
  c_.vdivsd(xmm2, xmm2, xmm3);  // f
  c_.vmulsd(xmm3, xmm2, xmm2);  // s = f^2
  c_.load_double(xmm5, 1.0 / 21);
  for (int d = 19; d >= 3; d -= 2) {
    c_.vmulsd(xmm5, xmm5, xmm3);
    c_.load_double(xmm1, 1.0 / d);
    c_.vaddsd(xmm5, xmm5, xmm1);
  }
  c_.vmulsd(xmm5, xmm5, xmm3);  // s/3 + s^2/5 + ...
  c_.vaddsd(xmm2, xmm2, xmm2);  // 2f
  c_.vmulsd(xmm5, xmm5, xmm2);
  c_.vaddsd(xmm5, xmm5, xmm2);  // log(m)
  c_.load_double(xmm1, kLn2Lo);
  c_.vmulsd(xmm1, xmm4, xmm1);
  c_.vaddsd(xmm5, xmm1, xmm5);
  c_.load_double(xmm1, kLn2Hi);
  c_.vmulsd(xmm1, xmm4, xmm1);
  c_.vaddsd(xmm0, xmm1, xmm5);
  c_.ret();
}

// x >= 0: 1 / (1 + exp(-x)); else (NaN too) e / (1 + e), e = exp(x).
void AxisActivationEmitter::emit_sigmoid() {
  Xbyak::Label negative;
  c_.vxorpd(xmm1, xmm1, xmm1);
  c_.vucomisd(xmm0, xmm1);
  c_.jb(negative, c_.T_NEAR);  // below or unordered
  c_.load_double(xmm1, -0.0);
  c_.vxorpd(xmm0, xmm0, xmm1);
  c_.call(exp_);
  c_.load_double(xmm1, 1.0);
  c_.vaddsd(xmm0, xmm1, xmm0);
  c_.vdivsd(xmm0, xmm1, xmm0);
  c_.ret();
  c_.L(negative);
  c_.call(exp_);
  c_.load_double(xmm1, 1.0);
  c_.vaddsd(xmm1, xmm1, xmm0);
  c_.vdivsd(xmm0, xmm0, xmm1);
  c_.ret();
}

}  // namespace tconv3d::x64
