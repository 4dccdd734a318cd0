// Ahead-of-time objects assembled without LLVM (runtime/aot_native.hpp): an
// Xbyak row kernel plus an Xbyak driver, baked weights and tables, written by
// our own ELF writer. The object links into a C program with nothing else,
// has no undefined symbols, and matches the reference. Runs in builds with
// and without LLVM; without it, the layers that need LLVM are clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/cpu_features.hpp"
#include "runtime/aot.hpp"
#include "tconv3d/error.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_XBYAK

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& tag) { return testing::fresh_temp_dir("aot_native_" + tag); }

void write_floats(const fs::path& path, const std::vector<float>& values) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * 4));
}

std::vector<float> read_floats(const fs::path& path, size_t count) {
  std::vector<float> values(count);
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * 4));
  return values;
}

// Writes the object for `config` on `input_shape`, links it with a C main
// that reads the input and writes the output as raw floats, runs it, and
// returns the scaled error against the reference.
double linked_object_error(const LayerConfig& config, const std::vector<int64_t>& input_shape, Isa isa,
                           const std::string& tag) {
  const fs::path dir = fresh_dir(tag);
  const ConvGeometry g = resolve_geometry(config, input_shape);
  std::mt19937_64 rng(5);
  const std::vector<float> input = testing::random_tensor(g.input_elements(), rng);
  const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
  AotRequest request;
  request.config = config;
  request.input_shape = input_shape;
  request.symbol = "layer_" + tag;
  request.object_path = (dir / "layer.o").string();
  request.header_path = (dir / "layer.h").string();
  request.backend = Backend::kXbyak;
  request.isa = isa;
  request.kernel = kernel.data();
  request.bias = config.use_bias ? bias.data() : nullptr;
  const AotResult result = write_aot(request);
  EXPECT_EQ(result.backend, "xbyak");
  EXPECT_TRUE(result.baked_weights);

  std::string output;
  EXPECT_EQ(testing::run_shell("nm -u " + request.object_path, &output), 0);
  EXPECT_EQ(output, "") << "the object needs nothing from outside";
  std::ofstream(dir / "main.c") << "#include <stdio.h>\n#include <stdlib.h>\n#include \"layer.h\"\n"
                                << "int main(void) {\n"
                                << "  const size_t in = " << g.input_elements() << ", out = " << g.output_elements()
                                << ";\n  float* x = malloc(4 * in); float* y = malloc(4 * out);\n"
                                << "  FILE* f = fopen(\"" << (dir / "input.bin").string() << "\", \"rb\");\n"
                                << "  if (!f || fread(x, 4, in, f) != in) return 3;\n  fclose(f);\n"
                                << "  if (" << request.symbol << "_workspace_size() != 0) return 4;\n"
                                << "  " << request.symbol << "(x, y, NULL);\n"
                                << "  f = fopen(\"" << (dir / "output.bin").string() << "\", \"wb\");\n"
                                << "  fwrite(y, 4, out, f);\n  fclose(f);\n  return 0;\n}\n";
  write_floats(dir / "input.bin", input);
  EXPECT_EQ(testing::run_shell("cc -O1 -std=c99 -Wall -Werror -I " + dir.string() + " -o " + (dir / "run").string() +
                                   " " + (dir / "main.c").string() + " " + request.object_path,
                               &output),
            0)
      << output;
  EXPECT_EQ(testing::run_shell((dir / "run").string(), &output), 0) << output;
  const std::vector<float> actual = read_floats(dir / "output.bin", static_cast<size_t>(g.output_elements()));

  LayerOptions reference_options;
  reference_options.backend = Backend::kReference;
  const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                       g.in_channels};
  const Layer reference = Layer::create(config, input_shape, {kernel.data(), kshape},
                                        config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{},
                                        reference_options);
  std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
  reference.forward(input.data(), expected.data());
  fs::remove_all(dir);
  return testing::scaled_max_error(actual, expected);
}

TEST(AotNative, LinkedObjectsMatchTheReference) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "x86 objects need AVX2+FMA to run here";
  if (!testing::have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  std::vector<Isa> isas = {Isa::kAvx2};
  if (cpu_features().avx512) isas.push_back(Isa::kAvx512);
  std::mt19937_64 rng(77);
  for (Isa isa : isas) {
    for (int i = 0; i < 12; ++i) {
      testing::RandomCase c = testing::random_case(rng);
      if (c.config.data_format == DataFormat::kChannelsFirst) {
        const std::vector<int64_t>& s = c.input_shape;
        c.input_shape = {s[0], s[2], s[3], s[4], s[1]};
        c.config.data_format = DataFormat::kChannelsLast;
      }
      const double error = linked_object_error(c.config, c.input_shape, isa, to_string(isa) + std::to_string(i));
      ASSERT_LE(error, 2e-5) << to_string(isa) << " case " << i << ": " << c.describe();
    }
  }
}

#ifndef TCONV3D_HAVE_LLVM
// Without LLVM: what only LLVM can build is refused by name, and no file is left.
TEST(AotNative, WithoutLlvmOtherLayersAreClearErrors) {
  const fs::path dir = fresh_dir("errors");
  AotRequest request;
  request.config = parse_layer_config(R"({"filters": 4, "kernel_size": 2, "strides": 2})");
  request.input_shape = {1, 2, 2, 2, 3};
  request.symbol = "refused";
  request.object_path = (dir / "refused.o").string();
  request.backend = Backend::kXbyak;
  try {
    write_aot(request);  // no --kernel: run-time packing needs LLVM
    ADD_FAILURE() << "an object without baked weights was written without LLVM";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LLVM"), std::string::npos) << e.what();
  }
  request.backend = Backend::kLlvm;
  EXPECT_THROW(write_aot(request), Error);
  EXPECT_FALSE(fs::exists(request.object_path));
  fs::remove_all(dir);
}
#endif

#else
TEST(AotNative, NeedsXbyak) { GTEST_SKIP() << "this build has no xbyak"; }
#endif  // TCONV3D_HAVE_XBYAK

}  // namespace
}  // namespace tconv3d
