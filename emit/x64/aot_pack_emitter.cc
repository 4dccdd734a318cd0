// NAME_packed_size and NAME_pack of an Xbyak AOT object with run-time
// weights: the packed layout is not re-derived here; the code applies the
// plan's packing runs (plan/weight_pack.hpp), embedded as tables of int64
// (dst, src, count) triples, exactly as the C++ packer does.
#include "emit/x64/aot_code.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;

// For each run: packed[dst + i] = source[src + i * stride], i < count (> 0).
// Clobbers rax, rcx, r8-r11, xmm0.
void apply_runs(AotCode& c, AotTable table, int64_t runs, int64_t stride_floats, const Xbyak::Reg64& source,
                const Xbyak::Reg64& packed) {
  if (runs == 0) return;
  Xbyak::Label next_run, next_element;
  c.lea_table(r10, table);
  c.mov(r11, runs);
  c.L(next_run);
  c.mov(rax, c.ptr[r10]);
  c.mov(rcx, c.ptr[r10 + 8]);
  c.mov(r8, c.ptr[r10 + 16]);
  c.lea(r9, c.ptr[packed + rax * 4]);
  c.lea(rax, c.ptr[source + rcx * 4]);
  c.mov(rcx, stride_floats * 4);
  c.L(next_element);
  c.vmovss(xmm0, c.dword[rax]);
  c.vmovss(c.dword[r9], xmm0);
  c.add(rax, rcx);
  c.add(r9, 4);
  c.dec(r8);
  c.jnz(next_element, c.T_NEAR);
  c.add(r10, 24);
  c.dec(r11);
  c.jnz(next_run, c.T_NEAR);
}

}  // namespace

AotPackEntries emit_pack_functions(AotCode& c, const AotDriverShape& shape) {
  AotPackEntries entries;
  c.align(16);
  entries.packed_size = c.getSize();
  c.mov(rax, shape.packed_floats);
  c.ret();

  // rdi: kernel, rsi: bias (may be NULL), rdx: packed.
  c.align(16);
  entries.pack = c.getSize();
  Xbyak::Label zero;
  c.vxorps(xmm0, xmm0, xmm0);
  c.mov(r8, rdx);
  c.mov(rcx, shape.packed_floats);
  c.L(zero);
  c.vmovss(c.dword[r8], xmm0);
  c.add(r8, 4);
  c.dec(rcx);
  c.jnz(zero, c.T_NEAR);
  apply_runs(c, AotTable::kWeightRuns, shape.weight_runs, shape.weight_run_stride, rdi, rdx);
  if (shape.bias_runs > 0) {
    Xbyak::Label no_bias;
    c.test(rsi, rsi);
    c.jz(no_bias, c.T_NEAR);
    c.mov(rdi, shape.packed_weight_floats * 4);
    c.add(rdi, rdx);
    apply_runs(c, AotTable::kBiasRuns, shape.bias_runs, 1, rsi, rdi);
    c.L(no_bias);
  }
  c.ret();
  return entries;
}

}  // namespace tconv3d::x64
