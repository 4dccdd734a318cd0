#include "emit/x64/kernel_gradient_emitter.hpp"

#include <xbyak/xbyak.h>

#include "emit/x64/isa_traits.hpp"
#include "plan/kernel_name.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;
using codegen::KgWSegment;
using codegen::RowTileClass;
namespace off = codegen::gradient_args_offset;

// General-purpose registers, each with one role for the whole kernel (SysV:
// the argument arrives in rdi). rax and rcx also serve as scratch outside the
// W loops.
const Xbyak::Reg64 reg_args = rdi;
const Xbyak::Reg64 reg_pair = rsi;  // current (x row, dz row) pair
const Xbyak::Reg64 reg_pairs_left = rdx;
const Xbyak::Reg64 reg_x = r8;             // x row of the pair + ci block
const Xbyak::Reg64 reg_dz = r9;            // dz row of the pair + the tile's first output channel
const Xbyak::Reg64 reg_block_bytes = r10;  // byte offset of the ci block (in x and in dK rows)
const Xbyak::Reg64 reg_w_count = r11;      // W loop iterations left
const Xbyak::Reg64 reg_block = r12;        // ci block index
const Xbyak::Reg64 reg_dk_tile = r13;      // dK of the tile's first row
const Xbyak::Reg64 reg_tile_co = r14;      // byte offset of the tile's first output channel in a dz voxel
const Xbyak::Reg64 reg_tile = r15;         // tile index
const Xbyak::Reg64 reg_tile_end = rbx;     // end of the class's tiles in this call
const Xbyak::Reg64 reg_block_end = rbp;    // end of the uniform blocks in this call
const Xbyak::Reg64 reg_loop_x = rax;       // x and dz pointers inside a W loop
const Xbyak::Reg64 reg_loop_dz = rcx;
const Xbyak::Reg64 callee_saved[] = {rbx, rbp, r12, r13, r14, r15};

const Xbyak::Opmask tail_opmask = k1;

template <typename Traits>
class KernelGradientEmitter : public Xbyak::CodeGenerator {
 public:
  using Vmm = typename Traits::Vmm;

  explicit KernelGradientEmitter(const codegen::KernelGradientPlan& plan)
      : Xbyak::CodeGenerator(16384, Xbyak::AutoGrow), plan_(plan) {
    if (plan.isa != Traits::kIsa || plan.lanes != Traits::kLanes || plan.vector_registers != Traits::kRegisters)
      throw Error("isa",
                  "plan made for " + to_string(plan.isa) + " given to the " + to_string(Traits::kIsa) + " emitter");
    if (plan.bf16() && Traits::kIsa != Isa::kAvx512)
      throw Error("isa", "the bf16 kernel-gradient kernel is AVX-512 code (vdpbf16ps)");
    const int needed = plan.rows * plan.ci_vectors + plan.ci_vectors + 1;
    if (plan.rows < 1 || plan.ci_vectors < 1 || needed > Traits::kRegisters)
      throw Error("plan", "register tile " + std::to_string(plan.rows) + "x" + std::to_string(plan.ci_vectors) +
                              " does not fit the " + std::to_string(Traits::kRegisters) + " vector registers of " +
                              to_string(Traits::kIsa));
  }

  CompiledCode generate() {
    for (const Xbyak::Reg64& r : callee_saved) push(r);
    if constexpr (Traits::kHasOpmask) {
      if (plan_.tail_lanes) {
        mov(eax, (1u << plan_.tail_lanes) - 1);
        kmovw(tail_opmask, eax);
      }
    }
    for (size_t k = 0; k < plan_.classes.size(); ++k) emit_class(k);
    for (int i = 5; i >= 0; --i) pop(callee_saved[i]);
    vzeroupper();
    ret();
    if constexpr (!Traits::kHasOpmask) {
      align(32);
      L(tail_mask_);
      for (int i = 0; i < plan_.lanes; ++i) dd(i < plan_.tail_lanes ? 0xFFFFFFFFu : 0u);
    }
    ready(Xbyak::CodeArray::PROTECT_RW);  // resolves labels; the bytes are copied, never run here
    CompiledCode code;
    code.bytes.assign(getCode(), getCode() + getSize());
    code.name = codegen::kernel_gradient_name(plan_);
    return code;
  }

 private:
  int64_t ci_bytes() const { return 4 * plan_.geometry.in_channels; }
  int64_t co_bytes() const { return 4 * plan_.geometry.out_channels; }
  int64_t block_bytes() const { return 4 * int64_t(plan_.ci_vectors) * plan_.lanes; }
  Vmm accumulator(int row, int v) const { return Vmm(row * plan_.ci_vectors + v); }
  Vmm x_vector(int v) const { return Vmm(plan_.rows * plan_.ci_vectors + v); }
  // The broadcast dz value; AVX2: also the tail mask while loads and stores need it.
  Vmm scratch() const { return Vmm(plan_.rows * plan_.ci_vectors + plan_.ci_vectors); }

  // The tiles of class k that fall inside [tile_begin, tile_end).
  void emit_class(size_t k) {
    const RowTileClass& c = plan_.classes[k];
    Xbyak::Label done, next_tile;
    mov(reg_tile, ptr[reg_args + off::kTileBegin]);
    mov(rax, c.first_tile);
    cmp(reg_tile, rax);
    cmovl(reg_tile, rax);
    mov(reg_tile_end, ptr[reg_args + off::kTileEnd]);
    mov(rax, c.first_tile + c.count);
    cmp(reg_tile_end, rax);
    cmovg(reg_tile_end, rax);
    cmp(reg_tile, reg_tile_end);
    jge(done, T_NEAR);
    // The first tile's output channels: co_first + (tile - first_tile) * co_count.
    mov(rax, reg_tile);
    sub(rax, c.first_tile);
    imul(rax, rax, c.co_count);
    lea(reg_tile_co, ptr[rax * 4 + 4 * c.co_first]);
    imul(reg_dk_tile, rax, static_cast<int>(ci_bytes()));
    add(reg_dk_tile, ptr[reg_args + off::kDk]);
    const int64_t dk_first = (int64_t(c.kw_first) * plan_.geometry.out_channels + c.co_first) * ci_bytes();
    if (dk_first) add(reg_dk_tile, static_cast<uint32_t>(dk_first));
    L(next_tile);
    emit_blocks(k);
    add(reg_tile_co, 4 * c.co_count);
    add(reg_dk_tile, static_cast<uint32_t>(c.co_count * ci_bytes()));
    inc(reg_tile);
    cmp(reg_tile, reg_tile_end);
    jl(next_tile, T_NEAR);
    L(done);
  }

  // The ci blocks inside [block_begin, block_end): a loop over the uniform
  // ones, then the last block when it is narrower.
  void emit_blocks(size_t k) {
    const int uniform = plan_.uniform_blocks;
    if (uniform > 0) {
      Xbyak::Label done, next_block;
      mov(reg_block, ptr[reg_args + off::kBlockBegin]);
      mov(reg_block_end, ptr[reg_args + off::kBlockEnd]);
      mov(rax, uniform);
      cmp(reg_block_end, rax);
      cmovg(reg_block_end, rax);
      cmp(reg_block, reg_block_end);
      jge(done, T_NEAR);
      imul(reg_block_bytes, reg_block, static_cast<int>(block_bytes()));
      L(next_block);
      emit_body(k, plan_.ci_vectors, false);
      add(reg_block_bytes, static_cast<uint32_t>(block_bytes()));
      inc(reg_block);
      cmp(reg_block, reg_block_end);
      jl(next_block, T_NEAR);
      L(done);
    }
    if (plan_.tail_block_vectors) {
      Xbyak::Label skip;
      cmp(qword[reg_args + off::kBlockBegin], uniform);
      jg(skip, T_NEAR);
      cmp(qword[reg_args + off::kBlockEnd], uniform);
      jle(skip, T_NEAR);
      mov(reg_block_bytes, uniform * block_bytes());
      emit_body(k, plan_.tail_block_vectors, plan_.tail_lanes != 0);
      L(skip);
    }
  }

  // One tile and ci block over every pair of the call.
  void emit_body(size_t k, int vectors, bool masked) {
    const RowTileClass& c = plan_.classes[k];
    const int rows = c.rows();
    Xbyak::Label zero, loaded, next_pair, pairs_done;
    lea(rax, ptr[reg_dk_tile + reg_block_bytes]);
    cmp(qword[reg_args + off::kAccumulate], 0);
    je(zero, T_NEAR);
    if (masked) load_tail_mask();
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < vectors; ++v) {
        const Xbyak::Address at = ptr[rax + dk_row_offset(c, r) + 4 * v * plan_.lanes];
        if (masked && v == vectors - 1)
          masked_load(accumulator(r, v), at);
        else
          vmovups(accumulator(r, v), at);
      }
    jmp(loaded, T_NEAR);
    L(zero);
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < vectors; ++v) vxorps(accumulator(r, v), accumulator(r, v), accumulator(r, v));
    L(loaded);

    mov(reg_pair, ptr[reg_args + off::kPairs]);
    mov(reg_pairs_left, ptr[reg_args + off::kPairCount]);
    test(reg_pairs_left, reg_pairs_left);
    jz(pairs_done, T_NEAR);
    L(next_pair);
    mov(reg_x, ptr[reg_pair]);
    add(reg_x, ptr[reg_args + off::kX]);
    add(reg_x, reg_block_bytes);
    mov(reg_dz, ptr[reg_pair + 8]);
    add(reg_dz, ptr[reg_args + off::kDz]);
    add(reg_dz, reg_tile_co);
    for (const KgWSegment& s : plan_.w_segments[k]) emit_segment(c, s, vectors, masked);
    add(reg_pair, 16);
    dec(reg_pairs_left);
    jnz(next_pair, T_NEAR);
    L(pairs_done);

    lea(rax, ptr[reg_dk_tile + reg_block_bytes]);
    if (masked) load_tail_mask();
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < vectors; ++v) {
        const int64_t at = dk_row_offset(c, r) + 4 * v * plan_.lanes;
        if (masked && v == vectors - 1) {
          if constexpr (Traits::kHasOpmask)
            vmovups(ptr[rax + at] | tail_opmask, accumulator(r, v));
          else
            vmaskmovps(ptr[rax + at], scratch(), accumulator(r, v));
        } else {
          vmovups(ptr[rax + at], accumulator(r, v));
        }
      }
  }

  // Row r of a tile (kw_first + r / co_count, its co + r % co_count) in dK,
  // relative to the tile's first row.
  int64_t dk_row_offset(const RowTileClass& c, int r) const {
    return (int64_t(r / c.co_count) * plan_.geometry.out_channels + r % c.co_count) * ci_bytes();
  }

  // W voxels [first, first + count): straight-line for a single voxel, else
  // a loop of w_unroll voxels per iteration and straight-line remainder.
  // (bf16: W steps are voxel pairs, two voxels' strides apart in dz.)
  void emit_segment(const RowTileClass& c, const KgWSegment& s, int vectors, bool masked) {
    const int64_t dz_step = (plan_.bf16() ? 2 : 1) * plan_.geometry.axes[2].stride * co_bytes();
    if (s.count == 1) {
      emit_step(c, s, reg_x, s.first * ci_bytes(), reg_dz, s.first * dz_step, vectors, masked);
      return;
    }
    const int unroll = plan_.w_unroll;
    const int64_t iterations = s.count / unroll;
    lea(reg_loop_x, ptr[reg_x + s.first * ci_bytes()]);
    lea(reg_loop_dz, ptr[reg_dz + s.first * dz_step]);
    if (iterations > 0) {
      Xbyak::Label next;
      mov(reg_w_count, iterations);
      L(next);
      for (int u = 0; u < unroll; ++u)
        emit_step(c, s, reg_loop_x, u * ci_bytes(), reg_loop_dz, u * dz_step, vectors, masked);
      add(reg_loop_x, static_cast<uint32_t>(unroll * ci_bytes()));
      add(reg_loop_dz, static_cast<uint32_t>(unroll * dz_step));
      dec(reg_w_count);
      jnz(next, T_NEAR);
    }
    for (int64_t u = 0; u < s.count % unroll; ++u)
      emit_step(c, s, reg_loop_x, u * ci_bytes(), reg_loop_dz, u * dz_step, vectors, masked);
  }

  // One input voxel: its x vectors times the dz value of every valid row.
  void emit_step(const RowTileClass& c, const KgWSegment& s, const Xbyak::Reg64& x, int64_t x_offset,
                 const Xbyak::Reg64& dz, int64_t dz_offset, int vectors, bool masked) {
    const AxisGeometry& w = plan_.geometry.axes[2];
    if (masked) load_tail_mask();
    for (int v = 0; v < vectors; ++v) {
      const Xbyak::Address at = ptr[x + x_offset + 4 * v * plan_.lanes];
      if (masked && v == vectors - 1)
        masked_load(x_vector(v), at);
      else
        vmovups(x_vector(v), at);
    }
    for (int kk = 0; kk < c.kw_count; ++kk) {
      if (!s.kw_valid[static_cast<size_t>(kk)]) continue;
      const int64_t tap = ((c.kw_first + kk) * w.dilation - w.crop_begin) * co_bytes();
      for (int col = 0; col < c.co_count; ++col) {
        const int r = kk * c.co_count + col;
        const int64_t at = dz_offset + tap + 4 * col;
        if (Traits::kHasOpmask && vectors == 1) {
          if (plan_.bf16())
            vdpbf16ps(accumulator(r, 0), x_vector(0), ptr_b[dz + at]);
          else
            vfmadd231ps(accumulator(r, 0), x_vector(0), ptr_b[dz + at]);  // one use: no register needed
        } else {
          vbroadcastss(scratch(), ptr[dz + at]);  // bf16: the dz pair, as one 32-bit value
          for (int v = 0; v < vectors; ++v) {
            if (plan_.bf16())
              vdpbf16ps(accumulator(r, v), x_vector(v), scratch());
            else
              vfmadd231ps(accumulator(r, v), x_vector(v), scratch());
          }
        }
      }
    }
  }

  void load_tail_mask() {
    if constexpr (!Traits::kHasOpmask) vmovups(scratch(), ptr[rip + tail_mask_]);
  }

  // The valid lanes of the last ci vector, the others zero (AVX2: the mask is
  // in scratch(), see load_tail_mask).
  void masked_load(const Vmm& to, const Xbyak::Address& at) {
    if constexpr (Traits::kHasOpmask)
      vmovups(to | tail_opmask | T_z, at);
    else
      vmaskmovps(to, scratch(), at);
  }

  const codegen::KernelGradientPlan& plan_;
  Xbyak::Label tail_mask_;
};

}  // namespace

CompiledCode emit_kernel_gradient_kernel(const codegen::KernelGradientPlan& plan) {
  try {
    if (plan.isa == Isa::kAvx512) return KernelGradientEmitter<Avx512Traits>(plan).generate();
    if (plan.isa == Isa::kAvx2) return KernelGradientEmitter<Avx2Traits>(plan).generate();
  } catch (const Xbyak::Error& e) {
    throw Error("xbyak", std::string("code generation failed: ") + e.what());
  }
  throw Error("isa", "the xbyak emitter needs avx2 or avx512, got " + to_string(plan.isa));
}

}  // namespace tconv3d::x64
