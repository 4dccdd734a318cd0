// Ahead-of-time objects assembled without LLVM (runtime/aot_native.hpp): Xbyak
// row kernels plus an Xbyak driver (channels_first transposes, axis
// activations, run-time packing), written by our own ELF writer. The objects
// link into a C program with nothing else, have no undefined symbols, match
// the reference and, on every Keras golden case, the JIT bit for bit. Runs in
// builds with and without LLVM; without it, other targets are clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/cpu_features.hpp"
#include "plan/plan.hpp"
#include "runtime/aot.hpp"
#include "tconv3d/error.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

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
  const Shape5 out_shape = activated_output_shape(g, config.activation);
  const int64_t out_elements = out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * out_shape[4];

  std::string output;
  EXPECT_EQ(testing::run_shell("nm -u " + request.object_path, &output), 0);
  EXPECT_EQ(output, "") << "the object needs nothing from outside";
  std::ofstream(dir / "main.c") << "#include <stdio.h>\n#include <stdlib.h>\n#include \"layer.h\"\n"
                                << "int main(void) {\n"
                                << "  const size_t in = " << g.input_elements() << ", out = " << out_elements
                                << ";\n  float* x = malloc(4 * in); float* y = malloc(4 * out);\n"
                                << "  FILE* f = fopen(\"" << (dir / "input.bin").string() << "\", \"rb\");\n"
                                << "  if (!f || fread(x, 4, in, f) != in) return 3;\n  fclose(f);\n"
                                << "  void* ws = " << request.symbol << "_workspace_size() ? malloc("
                                << request.symbol << "_workspace_size()) : NULL;\n"
                                << "  " << request.symbol << "(x, y, ws);\n"
                                << "  f = fopen(\"" << (dir / "output.bin").string() << "\", \"wb\");\n"
                                << "  fwrite(y, 4, out, f);\n  fclose(f);\n  return 0;\n}\n";
  write_floats(dir / "input.bin", input);
  EXPECT_EQ(testing::run_shell("cc -O1 -std=c99 -Wall -Werror -I " + dir.string() + " -o " + (dir / "run").string() +
                                   " " + (dir / "main.c").string() + " " + request.object_path,
                               &output),
            0)
      << output;
  EXPECT_EQ(testing::run_shell((dir / "run").string(), &output), 0) << output;
  const std::vector<float> actual = read_floats(dir / "output.bin", static_cast<size_t>(out_elements));

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
      // Both data formats, any activation (axis ones too).
      const testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/false);
      const double error = linked_object_error(c.config, c.input_shape, isa, to_string(isa) + std::to_string(i));
      ASSERT_LE(error, 2e-5) << to_string(isa) << " case " << i << ": " << c.describe();
    }
  }
}

// --- Every Keras golden case, through a linked object ------------------------

// One C program runs every case of an ISA, so the whole suite costs one
// compile and link: per case it calls a baked-weights object (cN_b) and a
// run-time-packed one (cN_r) of the same layer. The packed buffer starts as
// NaNs: NAME_pack must write every float.
const char* const kGoldenRunner = R"(
static float* load(const char* dir, const char* name, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  float* data = malloc(4 * n + 4);
  FILE* f = fopen(path, "rb");
  if (!data || !f || fread(data, 4, n, f) != n) exit(3);
  fclose(f);
  return data;
}
static void save(const char* dir, const char* name, const float* data, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(data, 4, n, f) != n) exit(4);
  fclose(f);
}
static void run_case(const struct Case* c) {
  float* x = load(c->dir, "input.bin", c->in);
  float* kernel = load(c->dir, "kernel.bin", c->kernel);
  float* bias = c->bias ? load(c->dir, "bias.bin", c->bias) : NULL;
  float* y = malloc(4 * c->out + 4);
  size_t ws = c->workspace_b();
  void* workspace = ws ? malloc(ws) : NULL;
  c->run_b(x, y, workspace);
  save(c->dir, "baked.bin", y, c->out);
  free(workspace);
  float* packed = malloc(4 * c->packed_size());
  memset(packed, 0xff, 4 * c->packed_size());
  c->pack(kernel, bias, packed);
  ws = c->workspace_r();
  workspace = ws ? malloc(ws) : NULL;
  memset(y, 0, 4 * c->out);
  c->run_r(x, y, packed, workspace);
  save(c->dir, "packed.bin", y, c->out);
  free(workspace);
  free(packed);
  free(y);
  free(bias);
  free(kernel);
  free(x);
}
int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) run_case(&cases[i]);
  return 0;
}
)";

struct GoldenCase {
  std::string name;
  LayerConfig config;
  NpyArray input, kernel, bias, expected;
  bool has_bias = false;
};

GoldenCase load_golden(const nlohmann::json& entry) {
  const std::string dir = std::string(TCONV3D_TEST_DATA_DIR) + "/keras/" + entry["name"].get<std::string>() + "/";
  GoldenCase c;
  c.name = entry["name"].get<std::string>();
  std::ifstream config(dir + "config.json");
  c.config = parse_layer_config(std::string(std::istreambuf_iterator<char>(config), {}));
  c.input = read_npy(dir + "input.npy");
  c.kernel = read_npy(dir + "kernel.npy");
  c.expected = read_npy(dir + entry.value("expected_output", std::string("output.npy")));
  c.has_bias = fs::exists(dir + "bias.npy");
  if (c.has_bias) c.bias = read_npy(dir + "bias.npy");
  return c;
}

// The JIT's output with one thread on `isa`.
std::vector<float> jit_output(const GoldenCase& c, Isa isa, Backend backend) {
  LayerOptions options;
  options.backend = backend;
  options.isa = isa;
  options.threads = 1;
  const Layer layer = Layer::create(c.config, c.input.shape, {c.kernel.data.data(), c.kernel.shape},
                                    c.has_bias ? ConstTensor{c.bias.data.data(), c.bias.shape} : ConstTensor{}, options);
  std::vector<float> y(static_cast<size_t>(layer.output_elements()));
  layer.forward(c.input.data.data(), y.data());
  return y;
}

// Writes case `i`'s baked (cI_b) and run-time-packed (cI_r) objects and data
// into `dir`; returns its entry of the runner's case table.
std::string write_golden_case(const GoldenCase& c, Isa isa, Backend backend, int i, const fs::path& dir) {
  const std::string id = "c" + std::to_string(i);
  AotRequest request;
  request.config = c.config;
  request.input_shape = c.input.shape;
  request.backend = backend;
  request.isa = isa;
  request.symbol = id + "_r";
  request.object_path = (dir / (id + "_r.o")).string();
  EXPECT_EQ(write_aot(request).backend, to_string(backend));
  request.symbol = id + "_b";
  request.object_path = (dir / (id + "_b.o")).string();
  request.kernel = c.kernel.data.data();
  request.bias = c.has_bias ? c.bias.data.data() : nullptr;
  EXPECT_EQ(write_aot(request).backend, to_string(backend));
  fs::create_directory(dir / id);
  write_floats(dir / id / "input.bin", c.input.data);
  write_floats(dir / id / "kernel.bin", c.kernel.data);
  if (c.has_bias) write_floats(dir / id / "bias.bin", c.bias.data);
  std::ostringstream entry;
  entry << "  {\"" << (dir / id).string() << "\", " << c.input.data.size() << ", " << c.expected.data.size() << ", "
        << c.kernel.data.size() << ", " << (c.has_bias ? c.bias.data.size() : 0) << ", " << id << "_b_workspace_size, "
        << id << "_b, " << id << "_r_workspace_size, " << id << "_r_packed_size, " << id << "_r_pack, " << id << "_r},\n";
  return entry.str();
}

std::string golden_declarations(int cases) {
  std::ostringstream out;
  out << "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n";
  for (int i = 0; i < cases; ++i) {
    const std::string id = "c" + std::to_string(i);
    out << "size_t " << id << "_b_workspace_size(void);\nvoid " << id << "_b(const float*, float*, void*);\n"
        << "size_t " << id << "_r_workspace_size(void);\nsize_t " << id << "_r_packed_size(void);\n"
        << "void " << id << "_r_pack(const float*, const float*, float*);\nvoid " << id
        << "_r(const float*, float*, const float*, void*);\n";
  }
  out << "struct Case {\n  const char* dir;\n  size_t in, out, kernel, bias;\n  size_t (*workspace_b)(void);\n"
      << "  void (*run_b)(const float*, float*, void*);\n  size_t (*workspace_r)(void);\n"
      << "  size_t (*packed_size)(void);\n  void (*pack)(const float*, const float*, float*);\n"
      << "  void (*run_r)(const float*, float*, const float*, void*);\n};\n";
  return out.str();
}

// Every case on one ISA: objects, one program, one run, then the checks.
// tolerance: of the scaled error against the expected output.
void check_golden_cases(const std::vector<GoldenCase>& cases, Isa isa, double tolerance = 1e-5,
                        Backend backend = Backend::kXbyak) {
  SCOPED_TRACE(to_string(backend) + " " + to_string(isa));
  const fs::path dir = fresh_dir("golden_" + to_string(backend) + to_string(isa));
  std::string table;
  for (size_t i = 0; i < cases.size(); ++i) table += write_golden_case(cases[i], isa, backend, static_cast<int>(i), dir);
  std::string output;
  ASSERT_EQ(testing::run_shell("nm -u -A " + dir.string() + "/*.o", &output), 0);
  EXPECT_EQ(output, "") << "the objects need nothing from outside";
  std::ofstream(dir / "main.c") << golden_declarations(static_cast<int>(cases.size()))
                                << "static const struct Case cases[] = {\n" << table << "};\n" << kGoldenRunner;
  ASSERT_EQ(testing::run_shell("cc -std=c99 -Wall -Werror -o " + (dir / "run").string() + " " +
                                   (dir / "main.c").string() + " " + dir.string() + "/*.o",
                               &output),
            0)
      << output;
  ASSERT_EQ(testing::run_shell((dir / "run").string(), &output), 0) << output;
  for (size_t i = 0; i < cases.size(); ++i) {
    const GoldenCase& c = cases[i];
    SCOPED_TRACE(c.name);
    const std::vector<float> jit = jit_output(c, isa, backend);
    const size_t out = c.expected.data.size();
    ASSERT_EQ(jit.size(), out);
    for (const char* which : {"baked.bin", "packed.bin"}) {
      const std::vector<float> actual = read_floats(dir / ("c" + std::to_string(i)) / which, out);
      EXPECT_LE(testing::scaled_max_error(actual, c.expected.data), tolerance) << which << " against the expected output";
      EXPECT_EQ(std::memcmp(actual.data(), jit.data(), 4 * out), 0) << which << " is not bitwise the JIT's output";
    }
  }
  fs::remove_all(dir);
}

std::vector<GoldenCase> all_golden_cases() {
  std::ifstream index(std::string(TCONV3D_TEST_DATA_DIR) + "/keras/index.json");
  std::vector<GoldenCase> cases;
  const nlohmann::json fixtures = nlohmann::json::parse(index);
  for (const nlohmann::json& entry : fixtures["cases"]) cases.push_back(load_golden(entry));
  return cases;
}

TEST(AotNativeGolden, EveryKerasCaseLinksRunsAndMatchesTheJitBitwise) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "x86 objects need AVX2+FMA to run here";
  if (!testing::have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  const std::vector<GoldenCase> cases = all_golden_cases();
  ASSERT_GE(cases.size(), 100u);
  check_golden_cases(cases, Isa::kAvx2);
  if (cpu_features().avx512) check_golden_cases(cases, Isa::kAvx512);
}

#ifdef TCONV3D_HAVE_LLVM
// The same for LLVM objects and the LLVM JIT (elementwise activations: LLVM
// objects have no axis activations), on AVX2.
TEST(AotLlvmGolden, ElementwiseKerasCasesMatchTheLlvmJitBitwise) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "x86 objects need AVX2+FMA to run here";
  if (!testing::have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  std::vector<GoldenCase> cases;
  for (GoldenCase& c : all_golden_cases())
    if (c.config.activation.is_elementwise()) cases.push_back(std::move(c));
  ASSERT_GE(cases.size(), 90u);
  check_golden_cases(cases, Isa::kAvx2, 1e-5, Backend::kLlvm);
}
#endif

// A layer on random data, with the reference's output as the expectation.
GoldenCase random_golden(const std::string& name, const std::string& config_json,
                         const std::vector<int64_t>& input_shape) {
  GoldenCase c;
  c.name = name;
  c.config = parse_layer_config(config_json);
  const ConvGeometry g = resolve_geometry(c.config, input_shape);
  std::mt19937_64 rng(31);
  c.input = {input_shape, testing::random_tensor(g.input_elements(), rng)};
  c.kernel = {{g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels},
              testing::random_tensor(g.kernel_elements(), rng)};
  c.has_bias = c.config.use_bias;
  if (c.has_bias) c.bias = {{g.out_channels}, testing::random_tensor(g.out_channels, rng)};
  LayerOptions options;
  options.backend = Backend::kReference;
  const Layer reference = Layer::create(c.config, input_shape, {c.kernel.data.data(), c.kernel.shape},
                                        c.has_bias ? ConstTensor{c.bias.data.data(), c.bias.shape} : ConstTensor{},
                                        options);
  c.expected.data.resize(static_cast<size_t>(reference.output_elements()));
  reference.forward(c.input.data.data(), c.expected.data.data());
  return c;
}

codegen::KernelPlan xbyak_plan(const GoldenCase& c, Isa isa) {
  const Problem problem = make_problem(resolve_geometry(c.config, c.input.shape), c.config.use_bias,
                                       c.config.activation);
  return codegen::plan_for_backend(problem, isa, Backend::kXbyak);
}

// The plan features the golden cases are too small for: one row kernel per
// channel group, and lane-packed W (with an axis activation and channels_first).
TEST(AotNative, SplitGroupsAndLanePackingMatchTheJitBitwise) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "x86 objects need AVX2+FMA to run here";
  if (!testing::have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  const std::vector<GoldenCase> cases = {
      random_golden("split_groups", R"({"filters": 200, "kernel_size": 3, "activation": "tanh"})", {1, 2, 2, 3, 160}),
      random_golden("lane_packed",
                    R"({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "softmax"})",
                    {2, 3, 2, 5, 3}),
      random_golden("lane_packed_cf",
                    R"({"filters": 3, "kernel_size": 3, "strides": [1, 1, 2], "data_format": "channels_first",
                        "activation": "log_softmax"})",
                    {1, 5, 2, 3, 6})};
  std::vector<Isa> isas = {Isa::kAvx2};
  if (cpu_features().avx512) isas.push_back(Isa::kAvx512);
  for (Isa isa : isas) {
    ASSERT_TRUE(xbyak_plan(cases[0], isa).split_groups) << xbyak_plan(cases[0], isa).to_string();
    ASSERT_GT(xbyak_plan(cases[1], isa).w_pack, 1) << xbyak_plan(cases[1], isa).to_string();
    ASSERT_GT(xbyak_plan(cases[2], isa).w_pack, 1) << xbyak_plan(cases[2], isa).to_string();
    // 4320-term float sums (160 channels x 27 taps) in the split-group layer.
    check_golden_cases(cases, isa, 1e-4);
  }
#ifdef TCONV3D_HAVE_LLVM
  // LLVM objects run the LLVM JIT's per-group kernels too.
  check_golden_cases({cases[0]}, Isa::kAvx2, 1e-4, Backend::kLlvm);
#endif
}

#ifndef TCONV3D_HAVE_LLVM
// Without LLVM: what only LLVM can build (the llvm backend, other targets) is
// refused by name, and no file is left.
TEST(AotNative, WithoutLlvmOtherTargetsAreClearErrors) {
  const fs::path dir = fresh_dir("errors");
  AotRequest request;
  request.config = parse_layer_config(R"({"filters": 4, "kernel_size": 2, "strides": 2})");
  request.input_shape = {1, 2, 2, 2, 3};
  request.symbol = "refused";
  request.object_path = (dir / "refused.o").string();
  request.backend = Backend::kXbyak;
  request.triple = "aarch64-linux-gnu";
  try {
    write_aot(request);
    ADD_FAILURE() << "an aarch64 object was written without LLVM";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LLVM"), std::string::npos) << e.what();
  }
  request.triple.clear();
  request.backend = Backend::kLlvm;
  EXPECT_THROW(write_aot(request), Error);
  EXPECT_FALSE(fs::exists(request.object_path));
  request.backend = Backend::kAuto;  // without LLVM: xbyak
  EXPECT_EQ(write_aot(request).backend, "xbyak");
  fs::remove_all(dir);
}
#endif

#else
TEST(AotNative, NeedsXbyak) { GTEST_SKIP() << "this build has no xbyak"; }
#endif  // TCONV3D_HAVE_XBYAK

}  // namespace
}  // namespace tconv3d
