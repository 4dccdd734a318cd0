#include "runtime/aot.hpp"

#include <cctype>
#include <cstdio>
#include <set>
#include <sstream>

#include "core/file_io.hpp"
#include "plan/plan.hpp"
#include "plan/weight_pack.hpp"
#include "runtime/aot_native.hpp"
#include "runtime/object_writer.hpp"
#include "tconv3d/error.hpp"
#ifdef TCONV3D_HAVE_LLVM
#include "emit/llvm/aot_module.hpp"
#include "emit/llvm/llvm_target.hpp"
#endif
#ifdef TCONV3D_HAVE_XBYAK
#include "emit/x64/tconv_emitter.hpp"
#endif

namespace tconv3d {
namespace {

const std::set<std::string>& c_keywords() {
  static const std::set<std::string> words = {
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
      "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
      "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Bool",
      "_Complex", "_Imaginary", "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn", "_Static_assert",
      "_Thread_local", "bool", "true", "false", "nullptr", "alignas", "alignof", "static_assert", "thread_local",
      "typeof", "constexpr"};
  return words;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string dims(const Shape5& shape, DataFormat format) {
  const char* names = format == DataFormat::kChannelsLast ? "NDHWC" : "NCDHW";
  std::ostringstream out;
  out << "[";
  for (int i = 0; i < 5; ++i) out << (i ? "][" : "") << names[i] << "=" << shape[static_cast<size_t>(i)];
  out << "]";
  return out.str();
}

struct Prepared {
  Backend backend = Backend::kLlvm;
  ConvGeometry geometry;
  Problem problem;
};

Prepared prepare(const AotRequest& r, AotResult& result) {
  if (!is_c_identifier(r.symbol))
    throw Error("--symbol", "'" + r.symbol + "' is not a valid C identifier ([A-Za-z_][A-Za-z0-9_]*, not a keyword)");
  if (r.object_path.empty()) throw Error("-o", "an output object path is required");
  if (r.object_path == r.header_path) throw Error("--header", "must differ from the object path");
  Prepared p;
  switch (r.backend) {
#ifdef TCONV3D_HAVE_LLVM
    case Backend::kAuto:
#endif
    case Backend::kLlvm: p.backend = Backend::kLlvm; break;
#ifndef TCONV3D_HAVE_LLVM
    case Backend::kAuto:  // without LLVM, the objects the Xbyak path can write alone
#endif
    case Backend::kXbyak: p.backend = Backend::kXbyak; break;
    default:
      throw Error("--backend", to_string(r.backend) + " cannot write objects; use llvm or xbyak");
  }
  validate(r.config);
  p.geometry = resolve_geometry(r.config, r.input_shape, &result.warnings);
  // Axis activations run in the Xbyak driver after the rows; the LLVM module has none.
  if (!r.config.activation.is_elementwise() && p.backend != Backend::kXbyak)
    throw Error("activation", r.config.activation.name +
                                  " works along the last axis; only --backend xbyak objects apply it (llvm objects "
                                  "take elementwise activations only)");
  if (r.config.activation.kind == ActivationKind::kGlu && p.geometry.output_shape()[4] % 2 != 0)
    throw Error("activation", "glu splits the last axis in two halves, but the output's last axis has odd size " +
                                  std::to_string(p.geometry.output_shape()[4]));
  if (r.kernel && r.config.use_bias && !r.bias) throw Error("--bias", "use_bias is true but no bias was given");
  if (r.bias && !r.kernel) throw Error("--bias", "a bias needs --kernel too");
  if (r.bias && !r.config.use_bias) throw Error("--bias", "a bias was given but use_bias is false");
  p.problem = make_problem(p.geometry, r.config.use_bias, r.config.activation);
  return p;
}

}  // namespace

bool is_c_identifier(const std::string& name) {
  if (name.empty() || name.size() > 200) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return c_keywords().count(name) == 0;
}

std::string aot_header_text(const AotRequest& r, const AotResult& result) {
  const ConvGeometry g = resolve_geometry(r.config, r.input_shape);
  const std::string& s = r.symbol;
  const std::string guard = upper(s) + "_TCONV3D_H";
  const Shape5 in = g.input_shape(), out = activated_output_shape(g, r.config.activation);
  std::ostringstream h;
  h << "/* " << s << ": a Keras Conv3DTranspose layer compiled ahead of time by `tconv3d aot`.\n"
    << " *\n"
    << " * filters " << r.config.filters << ", kernel_size (" << r.config.kernel_size[0] << ", "
    << r.config.kernel_size[1] << ", " << r.config.kernel_size[2] << "), strides (" << r.config.strides[0] << ", "
    << r.config.strides[1] << ", " << r.config.strides[2] << "), dilation_rate (" << r.config.dilation_rate[0]
    << ", " << r.config.dilation_rate[1] << ", " << r.config.dilation_rate[2] << "), padding "
    << to_string(r.config.padding) << ", " << to_string(r.config.data_format) << ", activation "
    << r.config.activation.name << ", use_bias " << (r.config.use_bias ? "true" : "false") << ".\n"
    << " * Target " << result.triple << " (" << result.isa << "), row kernel from " << result.backend << ".\n"
    << " *\n"
    << " * input:  float32 " << dims(in, g.data_format) << ", dense, C order (" << g.input_elements()
    << " floats)\n"
    << " * output: float32 " << dims(out, g.data_format) << ", dense, C order ("
    << out[0] * out[1] * out[2] * out[3] * out[4] << " floats)\n"
    << " * Any alignment works; 64-byte alignment is fastest. Input and output must not overlap.\n"
    << " * " << s << " runs on the calling thread (no threads are created); calls on different\n"
    << " * outputs may run concurrently from several threads, each with its own workspace.\n"
    << " * The object needs no library at all (activations are computed inline, no libm).\n";
  if (result.isa == "avx2" || result.isa == "avx512")
    h << " * It executes " << (result.isa == "avx512" ? "AVX-512 F/BW/DQ/VL" : "AVX2 + FMA")
      << " instructions: call it only on CPUs that have them.\n";
  h << " */\n"
    << "#ifndef " << guard << "\n#define " << guard << "\n\n#include <stddef.h>\n\n"
    << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
    << "#define " << upper(s) << "_INPUT_ELEMENTS " << g.input_elements() << "\n"
    << "#define " << upper(s) << "_OUTPUT_ELEMENTS " << out[0] * out[1] * out[2] * out[3] * out[4] << "\n"
    << "#define " << upper(s) << "_WORKSPACE_BYTES " << result.workspace_bytes << "\n";
  if (!result.baked_weights) h << "#define " << upper(s) << "_PACKED_FLOATS " << result.packed_floats << "\n";
  h << "\n/* Bytes of scratch memory " << s << " needs (" << result.workspace_bytes
    << "; nonzero only for channels_first, where the data is transposed\n * around the kernel, and for glu and sparsemax, which need room for a row or the whole\n * pre-activation output). */\n"
    << "size_t " << s << "_workspace_size(void);\n\n";
  if (result.baked_weights) {
    h << "/* output = layer(input). The weights are baked into the object.\n"
      << " * workspace: " << s << "_workspace_size() bytes, or NULL when that is 0. */\n"
      << "void " << s << "(const float* input, float* output, void* workspace);\n";
  } else {
    h << "/* Floats of the packed weight buffer " << s << "_pack fills (" << result.packed_floats << "). */\n"
      << "size_t " << s << "_packed_size(void);\n\n"
      << "/* Packs Keras-layout weights once: kernel is float32 [kd][kh][kw][filters][in_channels] =\n"
      << " * [" << g.axes[0].kernel << "][" << g.axes[1].kernel << "][" << g.axes[2].kernel << "][" << g.out_channels
      << "][" << g.in_channels << "] (layer.get_weights()[0]); bias is float32 [filters] = [" << g.out_channels
      << "],\n * or NULL " << (r.config.use_bias ? "(treated as zeros)" : "(this layer has no bias)")
      << ". packed holds " << s << "_packed_size() floats. */\n"
      << "void " << s << "_pack(const float* kernel, const float* bias, float* packed);\n\n"
      << "/* output = layer(input) with weights packed by " << s << "_pack.\n"
      << " * workspace: " << s << "_workspace_size() bytes, or NULL when that is 0. */\n"
      << "void " << s << "(const float* input, float* output, const float* packed, void* workspace);\n";
  }
  h << "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* " << guard << " */\n";
  return h.str();
}

namespace {

// An x86-64 ELF target: the host's (no triple) or an x86_64 Linux triple.
bool elf_x86_64(const std::string& triple) {
  return triple.empty() || (triple.rfind("x86_64", 0) == 0 && triple.find("linux") != std::string::npos);
}

// Whether the object can be assembled without LLVM (runtime/aot_native.hpp):
// every Xbyak object for x86-64 ELF.
bool native_object(const AotRequest& r, const Prepared& p) {
#ifdef TCONV3D_HAVE_XBYAK
  return p.backend == Backend::kXbyak && elf_x86_64(r.triple);
#else
  (void)r;
  (void)p;
  return false;
#endif
}

std::vector<uint8_t> write_native(const AotRequest& r, const Prepared& p, AotResult& result) {
  const Isa isa = r.isa == Isa::kAuto ? Isa::kAvx2 : r.isa;
  if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
    throw Error("--isa", "xbyak objects are avx2 or avx512, got " + to_string(isa));
  const codegen::KernelPlan plan = codegen::plan_for_backend(p.problem, isa, Backend::kXbyak);
  const Activation axis_activation = r.config.activation.is_elementwise() ? Activation{} : r.config.activation;
  NativeAotObject object =
      build_native_aot_object(plan, axis_activation, r.kernel, r.config.use_bias ? r.bias : nullptr, r.symbol);
  result.triple = r.triple.empty() ? "x86_64-linux-gnu" : r.triple;
  result.isa = to_string(isa);
  result.backend = "xbyak";
  result.baked_weights = r.kernel != nullptr;
  result.workspace_bytes = object.workspace_bytes;
  result.packed_floats = object.packed_floats;
  return std::move(object.bytes);
}

// Everything else: the driver (and the packing function) come from LLVM.
std::vector<uint8_t> write_with_llvm(const AotRequest& r, const Prepared& p, AotResult& result) {
#ifndef TCONV3D_HAVE_LLVM
  (void)r;
  (void)p;
  (void)result;
  throw Error("--backend", std::string("this build has no LLVM (apt: llvm-dev); without it objects are written "
                                       "by --backend xbyak, for x86-64 Linux targets only"));
#else
  if (!r.config.activation.is_elementwise())
    throw Error("activation", r.config.activation.name + " needs an xbyak object for x86-64 Linux; target '" +
                                  r.triple + "' goes through LLVM, whose objects take elementwise activations only");
  const llvm_backend::LlvmTarget target = llvm_backend::aot_target(r.triple, r.isa, "--target");
  result.triple = target.triple;
  result.isa = target.isa_name;
  result.backend = p.backend == Backend::kXbyak ? "xbyak" : "llvm";
  if (p.backend == Backend::kXbyak && !target.x86)
    throw Error("--backend", "xbyak emits x86-64 code only; target '" + target.triple + "' needs --backend llvm");
#ifndef TCONV3D_HAVE_XBYAK
  if (p.backend == Backend::kXbyak) throw Error("--backend", "xbyak is not available in this build");
#endif
  // aarch64 takes the 8-lane plan: LLVM splits each vector into two NEON registers,
  // which keeps the register tile the plan sized (16 x 8 lanes = 32 x 4 lanes).
  const Isa plan_isa = target.vector_floats == 16 ? Isa::kAvx512 : Isa::kAvx2;
  const codegen::KernelPlan plan = codegen::plan_for_backend(p.problem, plan_isa, p.backend);

  llvm_backend::AotModuleRequest module;
  module.plan = &plan;
  module.target = target;
  module.symbol = r.symbol;
  if (r.kernel) {
    const AlignedFloats weights = pack_weights(plan, r.kernel);
    const AlignedFloats bias = pack_bias(plan, r.config.use_bias ? r.bias : nullptr);
    module.packed_weights.assign(weights.data(), weights.data() + weights.size());
    module.packed_bias.assign(bias.data(), bias.data() + bias.size());
    result.baked_weights = true;
  } else {
    result.packed_floats = plan.packed_weight_count() + plan.padded_out_channels();
  }
#ifdef TCONV3D_HAVE_XBYAK
  if (p.backend == Backend::kXbyak) {
    const int kernels = plan.split_groups ? plan.oc_groups : 1;
    for (int k = 0; k < kernels; ++k)
      module.row_kernel_bytes.push_back(x64::emit_tconv_kernel(plan.split_groups ? plan.for_group(k) : plan).bytes);
  }
#endif
  if (plan.transpose_channels_first)
    result.workspace_bytes = 4 * ((p.geometry.input_elements() + 15) / 16 * 16 + p.geometry.output_elements());
  return llvm_backend::build_aot_object(module);
#endif
}

}  // namespace

AotResult write_aot(const AotRequest& r) {
  AotResult result;
  const Prepared p = prepare(r, result);
  const std::vector<uint8_t> object = native_object(r, p) ? write_native(r, p, result) : write_with_llvm(r, p, result);
  result.object_bytes = object.size();

  write_file_atomically(r.object_path, "-o", object.data(), object.size());
  if (!r.header_path.empty()) {
    try {
      const std::string header = aot_header_text(r, result);
      write_file_atomically(r.header_path, "--header", header.data(), header.size());
    } catch (...) {
      std::remove(r.object_path.c_str());  // both files or neither
      throw;
    }
  }
  return result;
}

}  // namespace tconv3d
