// Building blocks for vectorized float math in Xbyak code (AVX2 + FMA ymm, or
// AVX-512 zmm): a rip-relative constant table, NaN-preserving clamps, selects,
// and exp / expm1 / log1p kernels with their own polynomial fits. The
// activation emitter composes these; nothing here knows about Keras.
//
// Accuracy is measured in tests/activation_emitter_test.cc through the
// activations built on these blocks: every one within 1.7e-7 * max(1, |f(x)|)
// of the double definition (exp alone: 8.3e-8 relative).
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include <xbyak/xbyak.h>

namespace tconv3d::x64 {

// vcmpps predicates (the quiet ones: no exception on NaN; "U" ones are true for NaN).
enum class Compare : uint8_t {
  kOrdered = 0x07,
  kUnordered = 0x03,
  kLessOrdered = 0x11,
  kLessEqualOrdered = 0x12,
  kGreaterEqualOrdered = 0x1D,
  kGreaterOrdered = 0x1E,
  kNotLessUnordered = 0x15,          // x >= y or NaN
  kNotLessEqualUnordered = 0x16,     // x > y or NaN
  kNotGreaterEqualUnordered = 0x19,  // x < y or NaN
};

// The floats (or raw 32-bit patterns) a kernel reads. Each entry appears once;
// AVX2 stores it replicated over a 32-byte row so any VEX instruction can use it
// as a memory operand, AVX-512 stores it once and reads it with {1to16}.
class ConstantTable {
 public:
  // `replicas`: how many copies of each entry (8 for AVX2 rows, 1 for AVX-512).
  explicit ConstantTable(int replicas) : replicas_(replicas) {}
  // Byte offset of the entry holding `bits` from the table start, adding it if new.
  int offset_of(uint32_t bits);
  bool empty() const { return bits_.empty(); }
  // Pads the code to a 64-byte boundary, binds `label` and writes the entries.
  void emit(Xbyak::CodeGenerator& gen, Xbyak::Label& label) const;

 private:
  int replicas_;
  std::vector<uint32_t> bits_;
};

uint32_t float_bits(float value);

template <typename Vmm>
class VectorMath {
 public:
  static constexpr bool kAvx512 = std::is_same_v<Vmm, Xbyak::Zmm>;
  static constexpr int kLanes = kAvx512 ? 16 : 8;
  // A comparison result: an opmask on AVX-512, a vector of all-ones lanes on AVX2.
  using Mask = std::conditional_t<kAvx512, Xbyak::Opmask, Vmm>;

  VectorMath(Xbyak::CodeGenerator& gen, Xbyak::Label& table_label, ConstantTable& table)
      : g_(gen), label_(table_label), table_(table) {}

  // A constant as the last source operand of an arithmetic instruction.
  Xbyak::Address c(float value) { return c_bits(float_bits(value)); }
  Xbyak::Address c_bits(uint32_t bits);
  // Broadcasts a constant into a register.
  void load(const Vmm& dst, float value);
  void zero(const Vmm& dst);

  // dst = mask ? b : a.
  void blend(const Vmm& dst, const Vmm& a, const Xbyak::Operand& b, const Mask& mask);
  // dst = (sign bit of sign_source set) ? if_negative : if_positive. Uses k1 on AVX-512.
  void blend_by_sign(const Vmm& dst, const Vmm& if_positive, const Vmm& if_negative,
                     const Vmm& sign_source);
  void compare(const Mask& dst, const Vmm& a, const Xbyak::Operand& b, Compare predicate);
  // dst = mask ? src : 0.
  void keep_where(const Vmm& dst, const Vmm& src, const Mask& mask);
  // Clamps x to [lo, hi] in place; a NaN stays NaN (the constant goes first,
  // since vminps/vmaxps return their second source when either is NaN).
  void clamp(const Vmm& x, float lo, float hi, const Vmm& tmp);
  // dst = |magnitude| with the sign of sign_source; tmp is used on AVX2 only.
  void copy_sign(const Vmm& dst, const Vmm& sign_source, const Vmm& tmp);

  // exp and expm1 share one range reduction x = n ln2 + r, |r| <= ln2/2, then
  // e^x = 2 * 2^(n-1) * (1 + p(r)). Scaling by 2^(n-1) and doubling lets n
  // reach 128, so overflow gives +inf like expf. `arg` is first clamped to
  // [-87.5, high_clamp] keeping NaN: near and below -87.3 exp flushes to 0 (results
  // under FLT_MIN) and expm1 gives -1; high_clamp is 88.8 (or lower, e.g. 0 when only
  // x <= 0 matters, or none when x <= 0 already). A NaN argument yields NaN.
  struct ExpParts {
    Vmm arg;    // in: x; out: r (then free)
    Vmm scale;  // out: 2^(n-1)
    Vmm poly;   // out: e^r - 1
  };
  static constexpr float kExpLowClamp = -87.5f;
  static constexpr float kExpHighClamp = 88.8f;
  void exp_reduce(const ExpParts& parts, std::optional<float> high_clamp = kExpHighClamp);
  // poly <- factor * e^x (factor > 0 keeps inf for overflow).
  void exp_finish(const ExpParts& parts, float factor = 1.0f);
  // poly <- factor * (e^x - 1), accurate near 0 (exactly r*(1+...) when n = 0).
  void expm1_finish(const ExpParts& parts, float factor = 1.0f);

  // e <- log1p(e) for e in [0, 1] (NaN stays NaN). Needs two temporaries and,
  // on AVX2, a third for the mask (ignored on AVX-512, which uses k2).
  void log1p_unit(const Vmm& e, const Vmm& t1, const Vmm& t2, const Vmm& mask_tmp);

 private:
  Xbyak::CodeGenerator& g_;
  Xbyak::Label& label_;
  ConstantTable& table_;
};

extern template class VectorMath<Xbyak::Ymm>;
extern template class VectorMath<Xbyak::Zmm>;

}  // namespace tconv3d::x64
