// tconv3d: Keras Conv3DTranspose layers as specialized machine code.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"
#include "tools/commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: tconv3d <command> [options]\n"
    "\n"
    "commands:\n"
    "  run        --layer L.json --input X.npy [--kernel K.npy [--bias B.npy] | --seed S] --output Y.npy\n"
    "             [--backend auto|generic|reference|xbyak|llvm] [--isa auto|avx2|avx512] [--threads N]\n"
    "             [--keras-flavor keras3|tf_keras2] [--losses] [--dtype float32|bf16]\n"
    "             --dtype bf16: X.npy and Y.npy hold bf16 raw bits ('<u2', or ml_dtypes bfloat16\n"
    "             saved as '<V2'/'|V2'; Y is written '<u2'), K/B stay float32; needs AVX512_BF16\n"
    "  backward   --layer L.json --input X.npy --kernel K.npy [--bias B.npy] --grad-output DY.npy\n"
    "             --grad-input DX.npy [--grad-kernel DK.npy] [--grad-bias DB.npy] [--backend ...] [--isa ...]\n"
    "             [--threads N] [--keras-flavor ...] [--dtype float32|bf16]   gradients for the output gradient DY\n"
    "             --dtype bf16: X, DY and DX bf16 raw bits (as run), K, B, DK, DB float32\n"
    "  shape      --layer L.json --input-shape N,D,H,W,C [--keras-flavor ...]\n"
    "  constrain  --layer L.json --kernel K.npy [--bias B.npy] --output-kernel K2.npy [--output-bias B2.npy]\n"
    "  bench      (--layer L.json --input-shape ... | --suite layers.json) [--backend ...] [--isa ...]\n"
    "             [--threads N] [--json] [--min-time SECONDS] [--pass forward|backward|forward+backward]\n"
    "             [--dtype bf16: forward (or --pass backward) in bf16 and its float32 twin alternated, ratio]\n"
    "  plan       --layer L.json --input-shape N,D,H,W,C [--isa auto|avx2|avx512] [--keras-flavor ...]\n"
    "             [--dtype bf16]\n"
    "             prints the xbyak kernel plan (phases, register tile, border tiles, cache key)\n"
    "  demo       [MODEL_FILE | LAYERS.json] [--threads N] [--min-time SECONDS]\n"
    "             specialize the bundled 3D U-Net decoder's layers (or a file's), check, time\n"
    "  peak       [--threads N] [--json]   measured fp32 FMA peak (ymm, and zmm with AVX-512), 1 and N threads\n"
    "  aot        --layer L.json --input-shape N,D,H,W,C --symbol NAME -o NAME.o [--header NAME.h]\n"
    "             [--kernel K.npy [--bias B.npy]] [--backend llvm|xbyak] [--isa avx2|avx512] [--target TRIPLE]\n"
    "             relocatable ELF object defining the layer as the C function NAME (see the header)\n"
    "  model      inspect|run|bench FILE   Keras .keras/.h5 or ONNX: every 3D transposed convolution,\n"
    "             specialized at load (tconv3d model --help)\n"
    "\n"
    "Exit codes: 0 success, 2 bad input (the error is on stderr), 1 internal failure.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  try {
    if (command == "run") return tconv3d::cli::run_command(rest);
    if (command == "backward") return tconv3d::cli::backward_command(rest);
    if (command == "shape") return tconv3d::cli::shape_command(rest);
    if (command == "constrain") return tconv3d::cli::constrain_command(rest);
    if (command == "bench") return tconv3d::cli::bench_command(rest);
    if (command == "peak") return tconv3d::cli::peak_command(rest);
    if (command == "model") return tconv3d::cli::model_command(rest);
    if (command == "plan") return tconv3d::cli::plan_command(rest);
    if (command == "demo") return tconv3d::cli::demo_command(rest);
    if (command == "aot") return tconv3d::cli::aot_command(rest);
    std::fprintf(stderr, "tconv3d: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const tconv3d::Error& e) {
    std::fprintf(stderr, "tconv3d %s: error: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tconv3d %s: error: out of memory\n", command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tconv3d %s: internal error: %s\n", command.c_str(), e.what());
    return 1;
  }
}
