// The vectorized activations of the Xbyak kernels against the double-precision
// definitions in core/activation.hpp: every elementwise activation, on a
// dense sweep of [-20, 20] plus special and extreme values, for each ISA the
// CPU has. Also checks that the code is position-independent (runs the same
// from a copy at another address), touches only the registers it was given,
// and that bad arguments are reported.
#include <gtest/gtest.h>

#if defined(TCONV3D_HAVE_XBYAK) && __has_include(<xbyak/xbyak.h>)

#include <sys/mman.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/activation.hpp"
#include "emit/x64/activation_emitter.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"

namespace tconv3d::x64 {
namespace {

using KernelFn = void (*)(const float* in, float* out, int64_t n, float* sentinels);

// Two emit() calls per loop iteration, on different registers, share one
// emitter and one constant table. Every vector register not given to the
// emitter is loaded with a pattern first and stored afterwards, so the test
// sees if the emitter touched one.
template <typename Vmm>
class ActivationKernel : public Xbyak::CodeGenerator {
 public:
  static constexpr bool kAvx512 = std::is_same_v<Vmm, Xbyak::Zmm>;
  static constexpr int kLanes = kAvx512 ? 16 : 8;
  static constexpr int kVectorBytes = kLanes * 4;
  static constexpr int kRegisters = kAvx512 ? 32 : 16;

  explicit ActivationKernel(const Activation& activation)
      : Xbyak::CodeGenerator(1 << 16, Xbyak::DontSetProtectRWE) {
    ActivationEmitter<Vmm> emitter(*this, activation);
    scratch_used_ = emitter.scratch_registers();
    const std::vector<int> a = kAvx512 ? std::vector<int>{17, 20, 21, 30, 2}
                                       : std::vector<int>{8, 9, 10, 11, 12};
    const std::vector<int> b = kAvx512 ? std::vector<int>{0, 1, 16, 25, 31}
                                       : std::vector<int>{3, 0, 1, 2, 4};
    std::vector<bool> used(kRegisters, false);
    auto take = [&](const std::vector<int>& set, Vmm& x, std::vector<Vmm>& scratch) {
      x = Vmm(set[0]);
      used[set[0]] = true;
      for (int i = 0; i < scratch_used_; ++i) {
        scratch.push_back(Vmm(set[1 + i]));
        used[set[1 + i]] = true;
      }
    };
    Vmm xa, xb;
    std::vector<Vmm> sa, sb;
    take(a, xa, sa);
    take(b, xb, sb);
    for (int r = 0; r < kRegisters; ++r) {
      if (!used[r]) untouched_.push_back(r);
    }

    using namespace Xbyak::util;
    for (int r : untouched_) vmovups(Vmm(r), ptr[rcx]);
    Xbyak::Label loop, done;
    test(rdx, rdx);
    jle(done, T_NEAR);
    L(loop);
    vmovups(xa, ptr[rdi]);
    vmovups(xb, ptr[rdi + kVectorBytes]);
    const size_t before = getSize();
    emitter.emit(xa, sa);
    code_bytes_per_emit_ = getSize() - before;
    emitter.emit(xb, sb);
    vmovups(ptr[rsi], xa);
    vmovups(ptr[rsi + kVectorBytes], xb);
    add(rdi, 2 * kVectorBytes);
    add(rsi, 2 * kVectorBytes);
    sub(rdx, 2 * kLanes);
    jg(loop, T_NEAR);
    L(done);
    for (int r : untouched_) vmovups(ptr[rcx + (1 + r) * kVectorBytes], Vmm(r));
    vzeroupper();
    ret();
    emitter.emit_constants();
    readyRE();             // checks labels (and protects AutoGrow buffers)
    setProtectModeRE();    // Xbyak 6.68's readyRE() leaves a fixed buffer RW
  }

  KernelFn fn() const { return getCode<KernelFn>(); }
  int scratch_used() const { return scratch_used_; }
  size_t code_bytes_per_emit() const { return code_bytes_per_emit_; }
  const std::vector<int>& untouched() const { return untouched_; }

 private:
  int scratch_used_ = 0;
  size_t code_bytes_per_emit_ = 0;
  std::vector<int> untouched_;
};

// A copy of generated code at a fresh address (RW, copy, then RX).
class RelocatedCode {
 public:
  RelocatedCode(const uint8_t* code, size_t size) : size_(size) {
    memory_ = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory_ == MAP_FAILED) throw std::runtime_error("mmap failed");
    std::memcpy(memory_, code, size);
    if (mprotect(memory_, size, PROT_READ | PROT_EXEC) != 0) throw std::runtime_error("mprotect failed");
  }
  ~RelocatedCode() { munmap(memory_, size_); }
  KernelFn fn() const { return reinterpret_cast<KernelFn>(memory_); }

 private:
  void* memory_;
  size_t size_;
};

struct Case {
  std::string label;
  Activation activation;
};

Activation make(ActivationKind kind, const std::string& name, double alpha = 0.0) {
  Activation a;
  a.kind = kind;
  a.name = name;
  a.alpha = alpha;
  return a;
}

std::vector<Case> all_cases() {
  using K = ActivationKind;
  std::vector<Case> cases;
  auto add = [&](const std::string& label, Activation a) { cases.push_back({label, a}); };
  // Labelled by Keras's name, or name(alpha), so that a label cannot disagree with its case.
  auto add_named = [&](K kind, const std::string& name) { add(name, make(kind, name)); };
  auto add_with_alpha = [&](K kind, const std::string& name, double alpha) {
    std::ostringstream label;
    label << name << "(" << alpha << ")";
    add(label.str(), make(kind, name, alpha));
  };
  add_named(K::kLinear, "linear");
  add_named(K::kRelu, "relu");
  {
    Activation a = make(K::kRelu, "relu", 0.1);
    a.threshold = 0.5;
    a.max_value = 6.0;
    add("relu(alpha=0.1,threshold=0.5,max_value=6)", a);
    a = make(K::kRelu, "relu", 0.0);
    a.threshold = -1.25;
    a.max_value = 2.5;
    add("relu(threshold=-1.25,max_value=2.5)", a);
    a = make(K::kRelu, "relu", 0.0);
    a.max_value = 1.0;
    add("relu(max_value=1)", a);
    a = make(K::kRelu, "relu", 0.3);
    add("relu(alpha=0.3)", a);
  }
  add_with_alpha(K::kLeakyRelu, "leaky_relu", 0.2);
  add_with_alpha(K::kLeakyRelu, "leaky_relu", 0.3);
  add_named(K::kRelu6, "relu6");
  add_with_alpha(K::kElu, "elu", 1.0);
  add_with_alpha(K::kElu, "elu", 0.5);
  add_with_alpha(K::kCelu, "celu", 1.0);
  add_with_alpha(K::kCelu, "celu", 2.0);
  add_with_alpha(K::kCelu, "celu", 1.5);
  // alpha < 0 evaluates expm1(x/alpha) at large positive arguments; alpha is a
  // power of two here so that x/alpha is exact (otherwise its rounding alone
  // gives |x/alpha| * 6e-8 relative error, as in any float evaluation).
  add_with_alpha(K::kCelu, "celu", -2.0);
  add_named(K::kSelu, "selu");
  add_named(K::kSoftplus, "softplus");
  add_named(K::kSoftsign, "softsign");
  add_with_alpha(K::kSquareplus, "squareplus", 4.0);
  add_with_alpha(K::kSquareplus, "squareplus", 0.0);
  add_with_alpha(K::kSoftShrink, "soft_shrink", 0.5);
  add_with_alpha(K::kSoftShrink, "soft_shrink", 0.0);
  add_with_alpha(K::kHardShrink, "hard_shrink", 0.5);
  add_named(K::kSparsePlus, "sparse_plus");
  add_named(K::kSilu, "silu");
  add_named(K::kHardSilu, "hard_silu");
  add_named(K::kGelu, "gelu");
  add("gelu_tanh", make(K::kGeluTanh, "gelu"));
  add_named(K::kTanh, "tanh");
  add_named(K::kTanhShrink, "tanh_shrink");
  add_named(K::kHardTanh, "hard_tanh");
  add_named(K::kSigmoid, "sigmoid");
  add_named(K::kHardSigmoid, "hard_sigmoid");
  add("hard_sigmoid_tf_keras2", make(K::kHardSigmoidTfKeras2, "hard_sigmoid"));
  add_named(K::kSparseSigmoid, "sparse_sigmoid");
  add_named(K::kLogSigmoid, "log_sigmoid");
  add_named(K::kExponential, "exponential");
  add_named(K::kMish, "mish");
  return cases;
}

// The dense sweep [-20, 20] (step 2^-12) plus values that stress ranges:
// signed zeros, denormals, thresholds of exp's overflow and underflow,
// +-1e4, huge values, infinities, NaNs, and random magnitudes over the whole
// float range.
std::vector<float> test_inputs() {
  std::vector<float> v;
  for (int i = -20 * 4096; i <= 20 * 4096; ++i) v.push_back(static_cast<float>(i) / 4096.0f);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.0f, 1e-45f, 1e-40f, 1.17549435e-38f, 1e-30f, 1e-10f, 1e-7f,
                           3e-4f, 0.41f, 0.5f, 0.75f, 1.0f, 3.0f, 6.0f, 8.5f, 9.5f, 13.0f,
                           15.0f, 19.9f, 20.5f, 30.0f, 44.0f, 50.0f, 80.0f, 87.0f, 87.3f,
                           87.34f, 87.5f, 88.0f, 88.5f, 88.72f, 88.7228f, 88.7229f, 88.73f,
                           88.8f, 89.0f, 100.0f, 103.0f, 104.0f, 200.0f, 1e4f, 1e6f, 1e10f,
                           1e17f, 1e19f, 1e20f, 1e30f, 1e38f, 3.4028235e38f, inf};
  for (float s : special) {
    v.push_back(s);
    v.push_back(-s);
  }
  v.push_back(std::numeric_limits<float>::quiet_NaN());
  v.push_back(-std::numeric_limits<float>::quiet_NaN());
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> exponent(-40.0f, 38.5f);
  for (int i = 0; i < 20000; ++i) {
    const float magnitude = std::pow(10.0f, exponent(rng));
    v.push_back(i % 2 ? magnitude : -magnitude);
  }
  return v;
}

// Keras's gelu formulas compute 1 + erf / 1 + tanh, which cancel for x << 0
// even in double; these forms keep the tail's digits for the relative column.
double tail_accurate(const Activation& act, float xf, double ref) {
  const double x = xf;
  if (act.kind == ActivationKind::kGelu) return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  if (act.kind == ActivationKind::kGeluTanh) {
    const double z2 = 2.0 * std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1.0 + std::exp(-z2));
  }
  return ref;
}

struct Outcome {
  double max_error = 0.0;  // |y - f(x)| / max(1, |f(x)|)
  float worst_input = 0.0f;
  // |y - f(x)| / |f(x)| where 1e-30 < |f(x)| < 1 and |x| <= 20: informative
  // (how well tiny results keep their digits), not asserted. Formulas that
  // cancel by definition (tanh_shrink near 0, 0.2x + 0.5 near -2.5) show large
  // values here.
  double max_relative_error_small = 0.0;
  std::vector<std::string> failures;
};

// Compares y = kernel(x) with the double definition. Where Keras's own formula
// gives NaN for an infinite input (x * sigmoid(x) at -inf, ...), any value is
// accepted; the generated code usually returns the finite limit.
Outcome check(const Activation& act, const std::vector<float>& in, const std::vector<float>& out,
              double tolerance) {
  Outcome o;
  auto fail = [&](float x, float y, double ref, const char* why) {
    if (o.failures.size() >= 8) return;
    std::ostringstream s;
    s << std::setprecision(9) << why << ": f(" << x << ") = " << y << ", expected " << ref;
    o.failures.push_back(s.str());
  };
  for (size_t i = 0; i < in.size(); ++i) {
    const float x = in[i];
    const float y = out[i];
    const double ref = apply_elementwise<double>(act, static_cast<double>(x));
    if (std::isnan(ref)) {
      if (std::isinf(x)) continue;
      if (!std::isnan(y)) fail(x, y, ref, "expected NaN");
      continue;
    }
    if (std::isnan(y)) {
      fail(x, y, ref, "unexpected NaN");
      continue;
    }
    if (std::isinf(ref) || std::fabs(ref) > std::numeric_limits<float>::max()) {
      // Beyond float range: the float result must be the same infinity.
      const double limit = ref > 0 ? HUGE_VAL : -HUGE_VAL;
      if (static_cast<double>(y) != limit) fail(x, y, ref, "expected overflow to infinity");
      continue;
    }
    if (std::isinf(y)) {
      fail(x, y, ref, "unexpected infinity");
      continue;
    }
    const double error = std::fabs(static_cast<double>(y) - ref) / std::max(1.0, std::fabs(ref));
    if (error > o.max_error) {
      o.max_error = error;
      o.worst_input = x;
    }
    if (error > tolerance) fail(x, y, ref, "error above tolerance");
    if (std::fabs(x) <= 20.0f && std::fabs(ref) > 1e-30 && std::fabs(ref) < 1.0) {
      const double accurate = tail_accurate(act, x, ref);
      const double relative = std::fabs(static_cast<double>(y) - accurate) / std::fabs(accurate);
      o.max_relative_error_small = std::max(o.max_relative_error_small, relative);
    }
  }
  return o;
}

// The issue asks for 2e-6 * max(1, |f(x)|); every activation measures below
// 1.7e-7 (under 3 float ulps), so the test holds the code to 5e-7 to catch a
// regression well before the target is at risk.
constexpr double kTolerance = 5e-7;

template <typename Vmm>
void run_kernel(KernelFn fn, const std::vector<float>& in, std::vector<float>& out,
                std::vector<float>& sentinels) {
  constexpr int lanes = ActivationKernel<Vmm>::kLanes;
  const int64_t block = 2 * lanes;
  const int64_t n = (static_cast<int64_t>(in.size()) + block - 1) / block * block;
  std::vector<float> padded(in);
  padded.resize(n, 0.0f);
  out.assign(n, 0.0f);
  const int registers = ActivationKernel<Vmm>::kRegisters;
  sentinels.assign(static_cast<size_t>(1 + registers) * lanes, 0.0f);
  for (int l = 0; l < lanes; ++l) sentinels[l] = 12345.0f + static_cast<float>(l);
  fn(padded.data(), out.data(), n, sentinels.data());
  out.resize(in.size());
}

float value_at(const std::vector<float>& in, const std::vector<float>& out, float x) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == x) return out[i];
  }
  return std::nanf("");
}

template <typename Vmm>
void check_every_activation() {
  const std::vector<float> inputs = test_inputs();
  std::ostringstream report;
  report << std::setprecision(3);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.label);
    ActivationKernel<Vmm> kernel(c.activation);
    std::vector<float> out, sentinels;
    run_kernel<Vmm>(kernel.fn(), inputs, out, sentinels);
    const Outcome o = check(c.activation, inputs, out, kTolerance);
    for (const std::string& f : o.failures) ADD_FAILURE() << f;
    report << "  " << std::left << std::setw(44) << c.label << " max error " << std::setw(10)
           << o.max_error << " at x = " << std::setw(10) << o.worst_input
           << " relative (|f| < 1) " << std::setw(10) << o.max_relative_error_small
           << " scratch " << kernel.scratch_used() << ", " << kernel.code_bytes_per_emit()
           << " code bytes, f(-inf) " << value_at(inputs, out, -HUGE_VALF) << ", f(+inf) "
           << value_at(inputs, out, HUGE_VALF) << "\n";

    // Registers outside (x, scratch) keep their values.
    constexpr int lanes = ActivationKernel<Vmm>::kLanes;
    for (int r : kernel.untouched()) {
      for (int l = 0; l < lanes; ++l) {
        ASSERT_EQ(sentinels[(1 + r) * lanes + l], sentinels[l])
            << "register " << r << " was modified";
      }
    }

    // Position independence: the same bytes copied elsewhere give the same bits.
    RelocatedCode copy(kernel.getCode(), kernel.getSize());
    std::vector<float> moved, unused;
    run_kernel<Vmm>(copy.fn(), inputs, moved, unused);
    ASSERT_EQ(0, std::memcmp(moved.data(), out.data(), out.size() * sizeof(float)))
        << "the relocated copy computes different values";
  }
  std::cout << "max |error| / max(1, |f(x)|) per activation:\n" << report.str();
}

// Once per ISA (tests/isa_harness.hpp): ymm code for avx2, zmm for avx512.
class ActivationEmitterIsa : public testing::TargetTest {};

TEST_P(ActivationEmitterIsa, EveryActivationMatchesDoubleDefinition) {
  if (isa() == Isa::kAvx512) check_every_activation<Xbyak::Zmm>();
  else check_every_activation<Xbyak::Ymm>();
}

INSTANTIATE_TEST_SUITE_P(Targets, ActivationEmitterIsa, ::testing::ValuesIn(testing::targets({Backend::kXbyak})),
                         testing::target_name);

TEST(ActivationEmitterTest, ScratchRegistersStaySmall) {
  for (const Case& c : all_cases()) {
    Xbyak::CodeGenerator gen(4096, Xbyak::DontSetProtectRWE);
    EXPECT_LE(ActivationEmitter<Xbyak::Ymm>(gen, c.activation).scratch_registers(), 4) << c.label;
    EXPECT_LE(ActivationEmitter<Xbyak::Zmm>(gen, c.activation).scratch_registers(), 4) << c.label;
  }
  Xbyak::CodeGenerator gen(4096, Xbyak::DontSetProtectRWE);
  EXPECT_EQ(ActivationEmitter<Xbyak::Ymm>(gen, make(ActivationKind::kLinear, "linear")).scratch_registers(), 0);
}

TEST(ActivationEmitterTest, LinearOrUnusedEmitsNothing) {
  Xbyak::CodeGenerator gen(4096, Xbyak::DontSetProtectRWE);
  ActivationEmitter<Xbyak::Zmm> linear(gen, make(ActivationKind::kLinear, "linear"));
  linear.emit(Xbyak::Zmm(0), {});
  ActivationEmitter<Xbyak::Zmm> unused(gen, make(ActivationKind::kGelu, "gelu"));
  linear.emit_constants();
  unused.emit_constants();
  EXPECT_EQ(gen.getSize(), 0u);
}

TEST(ActivationEmitterTest, RejectsBadArguments) {
  Xbyak::CodeGenerator gen(4096, Xbyak::DontSetProtectRWE);
  EXPECT_THROW(ActivationEmitter<Xbyak::Ymm>(gen, make(ActivationKind::kSoftmax, "softmax")), Error);
  EXPECT_THROW(ActivationEmitter<Xbyak::Ymm>(gen, make(ActivationKind::kElu, "elu", std::nan(""))), Error);
  EXPECT_THROW(ActivationEmitter<Xbyak::Ymm>(gen, make(ActivationKind::kSquareplus, "squareplus", -1.0)),
               Error);
  EXPECT_THROW(ActivationEmitter<Xbyak::Zmm>(gen, make(ActivationKind::kCelu, "celu", 1e-40)), Error);
  Activation relu = make(ActivationKind::kRelu, "relu");
  relu.max_value = std::numeric_limits<double>::infinity();
  EXPECT_THROW(ActivationEmitter<Xbyak::Zmm>(gen, relu), Error);

  ActivationEmitter<Xbyak::Ymm> gelu(gen, make(ActivationKind::kGelu, "gelu"));
  using Xbyak::Ymm;
  try {
    gelu.emit(Ymm(0), {Ymm(1), Ymm(2)});
    ADD_FAILURE() << "too few scratch registers were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "scratch");
    EXPECT_NE(std::string(e.what()).find("needs 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gelu.emit(Ymm(0), {Ymm(1), Ymm(2), Ymm(0), Ymm(3)}), Error);
  EXPECT_THROW(gelu.emit(Ymm(0), {Ymm(1), Ymm(2), Ymm(3), Ymm(3)}), Error);
  EXPECT_THROW(gelu.emit(Ymm(16), {Ymm(1), Ymm(2), Ymm(3), Ymm(4)}), Error);
}

}  // namespace
}  // namespace tconv3d::x64

#else

TEST(ActivationEmitterTest, NeedsXbyak) { GTEST_SKIP() << "built without xbyak"; }

#endif
