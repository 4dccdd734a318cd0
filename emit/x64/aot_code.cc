#include "emit/x64/aot_code.hpp"

#include <cstring>
#include <limits>
#include <string>

#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

bool fits_int32(int64_t v) {
  return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
}

}  // namespace

void AotCode::lea_table(const Xbyak::Reg64& reg, AotTable table) {
  lea(reg, ptr[rip + 0x12345678]);  // a non-zero placeholder keeps the 32-bit form
  references.push_back({getSize() - 4, table});
}

void AotCode::load_double(const Xbyak::Xmm& x, double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  mov(rax, bits);
  vmovq(x, rax);
}

void AotCode::counted_loop(const Xbyak::Reg64& i, int64_t first, int64_t end, const std::function<void()>& body) {
  if (first >= end) return;
  if (!fits_int32(first) || !fits_int32(end))
    throw Error("aot", "a loop of " + std::to_string(end) + " steps is too long for the xbyak AOT driver");
  Xbyak::Label top;
  mov(i, first);
  L(top);
  body();
  inc(i);
  cmp(i, static_cast<uint32_t>(end));
  jl(top, T_NEAR);
}

void AotCode::add_constant(const Xbyak::Reg64& reg, int64_t value) {
  if (value == 0) return;
  if (fits_int32(value)) {
    add(reg, static_cast<uint32_t>(value));
  } else {
    mov(rax, value);
    add(reg, rax);
  }
}

}  // namespace tconv3d::x64
