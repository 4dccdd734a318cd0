// tconv3d aot: writes a relocatable object (and a C header) that computes one
// layer with no tconv3d runtime. See runtime/aot.hpp.
#include <cstdio>

#include "runtime/aot.hpp"
#include "tconv3d/error.hpp"
#include "tools/commands.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d::cli {
namespace {

NpyArray read_weights(const std::string& path, const std::string& flag) {
  try {
    return read_npy(path);
  } catch (const Error& e) {
    throw Error(flag, e.what());
  }
}

// The shared parser knows only --flags; -o is the compiler-style spelling of --output.
std::vector<std::string> spell_out_short_flags(std::vector<std::string> argv) {
  for (std::string& a : argv) {
    if (a == "-o") a = "--output";
    else if (a.rfind("-o=", 0) == 0) a = "--output=" + a.substr(3);
  }
  return argv;
}

}  // namespace

int aot_command(const std::vector<std::string>& raw_argv) {
  const std::vector<std::string> argv = spell_out_short_flags(raw_argv);
  const Args args(argv,
                  {"--layer", "--input-shape", "--symbol", "--output", "--header", "--kernel", "--bias", "--backend",
                   "--isa", "--target", "--keras-flavor"},
                  {});
  args.reject_positional();
  AotRequest request;
  request.symbol = args.require("--symbol");
  if (!is_c_identifier(request.symbol))
    throw Error("--symbol", "'" + request.symbol + "' is not a valid C identifier ([A-Za-z_][A-Za-z0-9_]*, not a keyword)");
  request.object_path = args.get("--output").value_or("");
  if (request.object_path.empty()) throw Error("-o", "an output object path is required (-o NAME.o)");
  request.header_path = args.get("--header").value_or("");
  std::vector<std::string> warnings;
  request.config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  request.input_shape = parse_shape(args.require("--input-shape"), "--input-shape");
  if (auto text = args.get("--backend")) request.backend = parse_backend(*text);
  if (auto text = args.get("--isa")) request.isa = parse_isa(*text);
  request.triple = args.get("--target").value_or("");

  NpyArray kernel, bias;
  if (args.get("--bias") && !args.get("--kernel")) throw Error("--bias", "given without --kernel");
  if (auto path = args.get("--kernel")) {
    kernel = read_weights(*path, "--kernel");
    const ConvGeometry g = resolve_geometry(request.config, request.input_shape);
    const std::vector<int64_t> expected = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                           g.in_channels};
    if (kernel.shape != expected)
      throw Error("--kernel", "shape " + shape_to_string(kernel.shape) + " does not match the layer: expected " +
                                  shape_to_string(expected));
    request.kernel = kernel.data.data();
    if (auto bias_path = args.get("--bias")) {
      bias = read_weights(*bias_path, "--bias");
      if (bias.shape != std::vector<int64_t>{g.out_channels})
        throw Error("--bias", "shape " + shape_to_string(bias.shape) + " does not match the layer: expected (" +
                                  std::to_string(g.out_channels) + ",)");
      request.bias = bias.data.data();
    }
  }

  const AotResult result = write_aot(request);
  warnings.insert(warnings.end(), result.warnings.begin(), result.warnings.end());
  print_warnings(warnings);
  std::printf("wrote %s (%zu bytes): %s, row kernel from %s for %s (%s), %s weights, workspace %lld bytes%s\n",
              request.object_path.c_str(), result.object_bytes, request.symbol.c_str(), result.backend.c_str(),
              result.triple.c_str(), result.isa.c_str(), result.baked_weights ? "baked" : "run-time packed",
              static_cast<long long>(result.workspace_bytes),
              request.header_path.empty() ? "" : (", header " + request.header_path).c_str());
  return 0;
}

}  // namespace tconv3d::cli
