#include "emit/x64/vector_math.hpp"

#include <cmath>
#include <cstring>

namespace tconv3d::x64 {

namespace {

// Range reduction for exp: n = round(x * log2(e)) by adding 1.5 * 2^23, which
// leaves n in the low mantissa bits; ln2 split in two so r = x - n ln2 keeps
// its low bits (the first product is exact inside the FMA).
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23
constexpr float kLn2Hi = 0.693147182464599609375f;
constexpr float kLn2Lo = -1.904654299957768e-09f;
constexpr uint32_t kExponentBiasMinusOne = 126;  // builds 2^(n-1)

// e^r - 1 = r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) on |r| <= ln2/2,
// fitted for minimal relative error (Lawson's reweighted least squares on
// Chebyshev nodes; fit error 1.3e-8, below the float rounding).
constexpr float kExpm1C2 = 0.49999997f;
constexpr float kExpm1C3 = 0.16666542f;
constexpr float kExpm1C4 = 0.0416672044f;
constexpr float kExpm1C5 = 0.00836664718f;
constexpr float kExpm1C6 = 0.0013882498f;

// log1p(z) = 2 atanh(s) = 2s + s w (d1 + d2 w + d3 w^2), s = z / (2 + z),
// w = s^2, for z in [sqrt(1/2) - 1, sqrt(2) - 1] (|s| <= 0.1716); same fitting
// method, relative fit error 8e-10.
constexpr float kLog1pD1 = 0.666667759f;
constexpr float kLog1pD2 = 0.39977482f;
constexpr float kLog1pD3 = 0.298736274f;
constexpr float kSqrt2Minus1 = 0.41421356237309505f;
constexpr float kLn2 = 0.693147180559945309f;

constexpr uint32_t kSignBit = 0x80000000u;
constexpr uint32_t kAbsMask = 0x7fffffffu;

}  // namespace

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

int ConstantTable::offset_of(uint32_t bits) {
  size_t index = 0;
  while (index < bits_.size() && bits_[index] != bits) ++index;
  if (index == bits_.size()) bits_.push_back(bits);
  return static_cast<int>(index) * replicas_ * 4;
}

void ConstantTable::emit(Xbyak::CodeGenerator& gen, Xbyak::Label& label) const {
  // Buffers start page-aligned, so aligning the offset aligns the address:
  // every 32-byte AVX2 row then sits in one cache line.
  while (gen.getSize() % 64 != 0) gen.db(0xCC);
  gen.L(label);
  for (uint32_t bits : bits_) {
    for (int r = 0; r < replicas_; ++r) gen.dd(bits);
  }
}

template <typename Vmm>
Xbyak::Address VectorMath<Vmm>::c_bits(uint32_t bits) {
  const int offset = table_.offset_of(bits);
  if constexpr (kAvx512) {
    return Xbyak::util::ptr_b[Xbyak::util::rip + label_ + offset];
  } else {
    return Xbyak::util::ptr[Xbyak::util::rip + label_ + offset];
  }
}

template <typename Vmm>
void VectorMath<Vmm>::load(const Vmm& dst, float value) {
  const int offset = table_.offset_of(float_bits(value));
  if constexpr (kAvx512) {
    g_.vbroadcastss(dst, Xbyak::util::dword[Xbyak::util::rip + label_ + offset]);
  } else {
    g_.vmovups(dst, Xbyak::util::ptr[Xbyak::util::rip + label_ + offset]);
  }
}

template <typename Vmm>
void VectorMath<Vmm>::zero(const Vmm& dst) {
  if constexpr (kAvx512) {
    g_.vpxord(dst, dst, dst);
  } else {
    g_.vxorps(dst, dst, dst);
  }
}

template <typename Vmm>
void VectorMath<Vmm>::blend(const Vmm& dst, const Vmm& a, const Xbyak::Operand& b,
                            const Mask& mask) {
  if constexpr (kAvx512) {
    g_.vblendmps(dst | mask, a, b);
  } else {
    g_.vblendvps(dst, a, b, mask);
  }
}

template <typename Vmm>
void VectorMath<Vmm>::blend_by_sign(const Vmm& dst, const Vmm& if_positive,
                                    const Vmm& if_negative, const Vmm& sign_source) {
  if constexpr (kAvx512) {
    g_.vpmovd2m(Xbyak::util::k1, sign_source);
    g_.vblendmps(dst | Xbyak::util::k1, if_positive, if_negative);
  } else {
    g_.vblendvps(dst, if_positive, if_negative, sign_source);
  }
}

template <typename Vmm>
void VectorMath<Vmm>::compare(const Mask& dst, const Vmm& a, const Xbyak::Operand& b,
                              Compare predicate) {
  g_.vcmpps(dst, a, b, static_cast<uint8_t>(predicate));
}

template <typename Vmm>
void VectorMath<Vmm>::keep_where(const Vmm& dst, const Vmm& src, const Mask& mask) {
  if constexpr (kAvx512) {
    g_.vmovaps(dst | mask | Xbyak::util::T_z, src);
  } else {
    g_.vandps(dst, src, mask);
  }
}

template <typename Vmm>
void VectorMath<Vmm>::clamp(const Vmm& x, float lo, float hi, const Vmm& tmp) {
  if (lo == 0.0f && !std::signbit(lo)) {
    zero(tmp);
  } else {
    load(tmp, lo);
  }
  g_.vmaxps(x, tmp, x);
  load(tmp, hi);
  g_.vminps(x, tmp, x);
}

template <typename Vmm>
void VectorMath<Vmm>::copy_sign(const Vmm& dst, const Vmm& sign_source, const Vmm& tmp) {
  if constexpr (kAvx512) {
    // Bitwise select: sign bit from sign_source, the rest from dst.
    constexpr uint8_t kSelectBySrc3 = 0xD8;
    g_.vpternlogd(dst, sign_source, c_bits(kSignBit), kSelectBySrc3);
  } else {
    g_.vandps(tmp, sign_source, c_bits(kSignBit));
    g_.vandps(dst, dst, c_bits(kAbsMask));
    g_.vorps(dst, dst, tmp);
  }
}

template <typename Vmm>
void VectorMath<Vmm>::exp_reduce(const ExpParts& parts, std::optional<float> high_clamp) {
  const Vmm& x = parts.arg;
  const Vmm& scale = parts.scale;
  const Vmm& poly = parts.poly;
  load(scale, kExpLowClamp);
  g_.vmaxps(x, scale, x);
  if (high_clamp) {
    load(scale, *high_clamp);
    g_.vminps(x, scale, x);
  }
  load(scale, kLog2e);
  g_.vfmadd213ps(scale, x, c(kRoundMagic));  // n + magic, n in the low bits
  g_.vsubps(poly, scale, c(kRoundMagic));     // n as a float
  g_.vfnmadd231ps(x, poly, c(kLn2Hi));
  g_.vfnmadd231ps(x, poly, c(kLn2Lo));        // r
  // 2^(n-1): (n + 126) shifted into the exponent field; the magic's own bits
  // shift out. n is in [-126, 128]: n = -126 gives 0 (flush), 128 gives 2^127.
  g_.vpaddd(scale, scale, c_bits(kExponentBiasMinusOne));
  g_.vpslld(scale, scale, 23);
  load(poly, kExpm1C6);
  g_.vfmadd213ps(poly, x, c(kExpm1C5));
  g_.vfmadd213ps(poly, x, c(kExpm1C4));
  g_.vfmadd213ps(poly, x, c(kExpm1C3));
  g_.vfmadd213ps(poly, x, c(kExpm1C2));
  g_.vmulps(poly, poly, x);
  g_.vfmadd213ps(poly, x, x);  // r + r^2 P(r): the leading r is exact
}

template <typename Vmm>
void VectorMath<Vmm>::exp_finish(const ExpParts& parts, float factor) {
  g_.vfmadd213ps(parts.poly, parts.scale, parts.scale);  // 2^(n-1) (1 + p)
  if (factor == 1.0f) {
    g_.vaddps(parts.poly, parts.poly, parts.poly);
  } else {
    g_.vmulps(parts.poly, parts.poly, c(2.0f * factor));
  }
}

template <typename Vmm>
void VectorMath<Vmm>::expm1_finish(const ExpParts& parts, float factor) {
  // 2^n (1 + p) - 1 = 2 (2^(n-1) p + (2^(n-1) - 1/2)), both terms exact for n <= 0.
  g_.vsubps(parts.arg, parts.scale, c(0.5f));
  g_.vfmadd213ps(parts.poly, parts.scale, parts.arg);
  if (factor == 1.0f) {
    g_.vaddps(parts.poly, parts.poly, parts.poly);
  } else {
    g_.vmulps(parts.poly, parts.poly, c(2.0f * factor));
  }
}

template <typename Vmm>
void VectorMath<Vmm>::log1p_unit(const Vmm& e, const Vmm& t1, const Vmm& t2,
                                 const Vmm& mask_tmp) {
  // 1 + e = 2^k (1 + z) with 1 + z in [sqrt(1/2), sqrt(2)]: k = 0 and z = e
  // (exact), or k = 1 and z = (e - 1) / 2.
  const Mask above = [&]() -> Mask {
    if constexpr (kAvx512) {
      return Xbyak::util::k2;
    } else {
      return mask_tmp;
    }
  }();
  compare(above, e, c(kSqrt2Minus1), Compare::kGreaterOrdered);
  g_.vmulps(t1, e, c(0.5f));
  g_.vsubps(t1, t1, c(0.5f));
  blend(e, e, t1, above);  // z
  if constexpr (!kAvx512) g_.vandps(mask_tmp, mask_tmp, c(kLn2));  // k ln2
  g_.vaddps(t1, e, c(2.0f));
  g_.vdivps(t1, e, t1);  // s = z / (2 + z)
  g_.vmulps(e, t1, t1);  // w = s^2
  load(t2, kLog1pD3);
  g_.vfmadd213ps(t2, e, c(kLog1pD2));
  g_.vfmadd213ps(t2, e, c(kLog1pD1));
  g_.vmulps(t2, t2, e);
  g_.vmulps(t2, t2, t1);
  g_.vfmadd231ps(t2, t1, c(2.0f));  // 2s + s w D(w)
  if constexpr (kAvx512) {
    g_.vaddps(t2 | Xbyak::util::k2, t2, c(kLn2));
  } else {
    g_.vaddps(t2, t2, mask_tmp);
  }
  g_.vmovaps(e, t2);
}

template class VectorMath<Xbyak::Ymm>;
template class VectorMath<Xbyak::Zmm>;

}  // namespace tconv3d::x64
