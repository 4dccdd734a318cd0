// Ahead-of-time objects: `tconv3d aot` rejects bad input with exit code 2 and
// leaves no file behind; objects from both backends link into a C program
// that matches the reference; the hand-written ELF writer produces objects
// the system linker accepts, with a non-executable stack.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/cpu_features.hpp"
#include "core/file_io.hpp"
#include "runtime/aot.hpp"
#include "runtime/object_writer.hpp"
#include "tconv3d/error.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& tag) { return testing::fresh_temp_dir("aot_" + tag); }

using testing::have_c_compiler;
using testing::run_shell;

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

const char* kLayerJson =
    R"({"filters": 6, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "same", "activation": "tanh"})";

class AotCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir("cli");
    std::ofstream(dir_ / "layer.json") << kLayerJson;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `tconv3d aot` with the common flags plus `extra`; returns the exit code.
  int aot(const std::string& extra, std::string* output = nullptr) {
    const std::string command = std::string(TCONV3D_CLI_PATH) + " aot --layer " + (dir_ / "layer.json").string() +
                                " --input-shape 1,3,4,5,7 " + extra;
    return run_shell(command, output);
  }
  fs::path dir_;
};

TEST_F(AotCli, BadInputExitsTwoAndLeavesNoFile) {
  const std::string out = " -o " + (dir_ / "k.o").string() + " --header " + (dir_ / "k.h").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--symbol 1abc" + out, "--symbol"},
      {"--symbol has-dash" + out, "--symbol"},
      {"--symbol int" + out, "--symbol"},
      {"--symbol ok --target sparc-nonsense-xyz" + out, "--target"},
      {"--symbol ok --target riscv64-linux-gnu" + out, "--target"},
      {"--symbol ok --target aarch64-linux-gnu --isa avx512" + out, "--isa"},
      {"--symbol ok --target aarch64-linux-gnu --backend xbyak" + out, "--backend"},
      {"--symbol ok --backend generic" + out, "--backend"},
      {"--symbol ok -o /nonexistent-dir/k.o", "-o"},
      {"--symbol ok -o " + (dir_ / "k.o").string() + " --header /nonexistent-dir/k.h", "--header"},
      {"--symbol ok", "-o"},
      {"--symbol ok --bias b.npy" + out, "--bias"},
  };
  for (const auto& [flags, argument] : cases) {
    std::string output;
    EXPECT_EQ(aot(flags, &output), 2) << flags << "\n" << output;
    EXPECT_NE(output.find(argument), std::string::npos) << flags << "\n" << output;
    EXPECT_EQ(files_in(dir_), std::vector<std::string>{"layer.json"}) << flags << ": a file was left behind";
  }
}

TEST_F(AotCli, WritesObjectAndSelfContainedHeader) {
  std::string output;
  ASSERT_EQ(aot("--symbol up7 -o " + (dir_ / "up7.o").string() + " --header " + (dir_ / "up7.h").string(), &output), 0)
      << output;
  ASSERT_TRUE(fs::exists(dir_ / "up7.o"));
  std::string symbols;
  ASSERT_EQ(run_shell("nm " + (dir_ / "up7.o").string(), &symbols), 0);
  for (const char* name : {" T up7\n", " T up7_pack\n", " T up7_packed_size\n", " T up7_workspace_size\n"})
    EXPECT_NE(symbols.find(name), std::string::npos) << name << " missing in\n" << symbols;
  EXPECT_EQ(symbols.find(" U "), std::string::npos) << "the object needs no other library:\n" << symbols;
  if (!have_c_compiler()) GTEST_SKIP() << "no C compiler (cc) to check the header";
  // The header compiles on its own, as C and as C++.
  std::ofstream(dir_ / "use.c") << "#include \"up7.h\"\nint main(void) { return (int)up7_workspace_size(); }\n";
  EXPECT_EQ(run_shell("cc -std=c99 -Wall -Werror -pedantic -c -o /dev/null -I " + dir_.string() + " " +
                      (dir_ / "use.c").string(), &output), 0) << output;
  EXPECT_EQ(run_shell("c++ -x c++ -Wall -Werror -c -o /dev/null -I " + dir_.string() + " " + (dir_ / "use.c").string(),
                      &output), 0) << output;
}

// Builds examples/aot/main.c against two objects of one layer (baked weights
// and run-time packed) and runs it against the reference's output.
void check_linked_program(Backend backend, Isa isa, const char* json, const std::vector<int64_t>& input_shape) {
  const fs::path dir = fresh_dir(std::string("link_") + to_string(backend) + "_" + to_string(isa));
  const LayerConfig config = parse_layer_config(json);
  const ConvGeometry g = resolve_geometry(config, input_shape);
  std::mt19937_64 rng(31);
  const std::vector<float> input = testing::random_tensor(g.input_elements(), rng);
  const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
  const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                       g.in_channels};
  LayerOptions reference_options;
  reference_options.backend = Backend::kReference;
  const Layer reference = Layer::create(config, input_shape, ConstTensor{kernel.data(), kshape},
                                        ConstTensor{bias.data(), {g.out_channels}}, reference_options);
  std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
  reference.forward(input.data(), expected.data());
  write_npy((dir / "input.npy").string(), input_shape, input.data());
  write_npy((dir / "kernel.npy").string(), kshape, kernel.data());
  write_npy((dir / "bias.npy").string(), {g.out_channels}, bias.data());
  const Shape5 out_shape = reference.output_shape();
  write_npy((dir / "expected.npy").string(), std::vector<int64_t>(out_shape.begin(), out_shape.end()),
            expected.data());

  for (const bool baked : {true, false}) {
    AotRequest request;
    request.config = config;
    request.input_shape = input_shape;
    request.symbol = baked ? "up_baked" : "up_packed";
    request.object_path = (dir / (request.symbol + ".o")).string();
    request.header_path = (dir / (request.symbol + ".h")).string();
    request.backend = backend;
    request.isa = isa;
    if (baked) {
      request.kernel = kernel.data();
      request.bias = bias.data();
    }
    const AotResult result = write_aot(request);
    EXPECT_EQ(result.baked_weights, baked);
  }
  const std::string examples = std::string(TCONV3D_SOURCE_DIR) + "/examples/aot/";
  std::string output;
  ASSERT_EQ(run_shell("cc -O1 -std=c99 -I " + dir.string() + " -o " + (dir / "example").string() + " " + examples +
                          "main.c " + examples + "npy_io.c " + (dir / "up_baked.o").string() + " " +
                          (dir / "up_packed.o").string() + " -lm",
                      &output),
            0)
      << output;
  EXPECT_EQ(run_shell((dir / "example").string() + " " + dir.string(), &output), 0) << output;
  EXPECT_NE(output.find("OK"), std::string::npos) << output;
  fs::remove_all(dir);
}

const char* kChannelsLast =
    R"({"filters": 11, "kernel_size": [3, 3, 2], "strides": [2, 2, 2], "padding": "same",
        "output_padding": [1, 0, 1], "activation": "silu"})";
const char* kChannelsFirst =
    R"({"filters": 5, "kernel_size": [2, 2, 3], "strides": [1, 2, 3], "padding": "valid",
        "data_format": "channels_first", "activation": "relu"})";

// Both layouts on AVX2, and channels_last on AVX-512 where the CPU has it.
void check_linked_programs(Backend backend) {
  check_linked_program(backend, Isa::kAvx2, kChannelsLast, {2, 3, 4, 5, 9});
  check_linked_program(backend, Isa::kAvx2, kChannelsFirst, {1, 7, 3, 4, 5});
  if (cpu_features().avx512) check_linked_program(backend, Isa::kAvx512, kChannelsLast, {1, 4, 3, 6, 17});
}

TEST(AotLink, LlvmObjectsMatchTheReference) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "x86 objects need AVX2+FMA to run here";
  if (!have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  check_linked_programs(Backend::kLlvm);
}

#ifdef TCONV3D_HAVE_XBYAK
TEST(AotLink, XbyakObjectsMatchTheReference) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "x86 objects need AVX2+FMA to run here";
  if (!have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  check_linked_programs(Backend::kXbyak);
}
#endif

// LLVM objects fuse elementwise activations only; xbyak objects apply axis
// activations in their driver (aot_native_test).
TEST(AotApi, AxisActivationsAreRefusedByLlvmObjects) {
  AotRequest request;
  request.backend = Backend::kLlvm;
  request.config = parse_layer_config(R"({"filters": 4, "kernel_size": 2, "activation": "softmax"})");
  request.input_shape = {1, 2, 2, 2, 3};
  request.symbol = "soft";
  request.object_path = (fs::temp_directory_path() / "tconv3d_never_written.o").string();
  EXPECT_THROW(write_aot(request), Error);
  EXPECT_FALSE(fs::exists(request.object_path));
}

TEST(AotApi, CIdentifiers) {
  for (const char* good : {"a", "_x", "up1", "Layer_2b"}) EXPECT_TRUE(is_c_identifier(good)) << good;
  for (const char* bad : {"", "1a", "a-b", "a b", "int", "while", "é", "a.b"}) EXPECT_FALSE(is_c_identifier(bad)) << bad;
  EXPECT_FALSE(is_c_identifier(std::string(201, 'a')));
}

// The ELF writer: a function returning a constant, and one returning the
// address of a .rodata table through a PC-relative relocation.
TEST(ObjectWriter, LinksIntoACProgramWithANonExecutableStack) {
  if (!have_c_compiler()) GTEST_SKIP() << "no C compiler (cc)";
  const fs::path dir = fresh_dir("elf");
  ObjectImage image;
  // answer: mov eax, 42; ret
  image.text = {0xb8, 42, 0, 0, 0, 0xc3};
  image.symbols.push_back({"tc3d_answer", ObjectSection::kText, 0, 6, true, true});
  // table_at: lea rax, [rip + table]; ret   (disp32 at offset 3 of the lea)
  while (image.text.size() % 16) image.text.push_back(0xcc);
  const uint64_t lea = image.text.size();
  image.text.insert(image.text.end(), {0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3});
  image.symbols.push_back({"tc3d_table_at", ObjectSection::kText, lea, 8, true, true});
  image.rodata = {7, 0, 0, 0, 11, 0, 0, 0, 13, 0, 0, 0};
  image.symbols.push_back({"tc3d_table", ObjectSection::kRodata, 0, 12, false, false});
  image.relocations.push_back({lea + 3, "tc3d_table", -4});
  const std::vector<uint8_t> bytes = write_elf_x86_64_object(image);
  write_file_atomically((dir / "gen.o").string(), "-o", bytes.data(), bytes.size());

  std::ofstream(dir / "main.c") << "extern int tc3d_answer(void);\nextern const int* tc3d_table_at(void);\n"
                                   "int main(void) { const int* t = tc3d_table_at();\n"
                                   "  return tc3d_answer() == 42 && t[0] == 7 && t[1] == 11 && t[2] == 13 ? 0 : 1; }\n";
  std::string output;
  ASSERT_EQ(run_shell("cc -o " + (dir / "prog").string() + " " + (dir / "main.c").string() + " " +
                      (dir / "gen.o").string(), &output), 0) << output;
  EXPECT_EQ(output.find("executable stack"), std::string::npos) << output;
  EXPECT_EQ(run_shell((dir / "prog").string()), 0);
  std::string segments;
  if (run_shell("readelf -lW " + (dir / "prog").string(), &segments) == 0) {
    const size_t stack = segments.find("GNU_STACK");
    ASSERT_NE(stack, std::string::npos);
    EXPECT_EQ(segments.substr(stack, segments.find('\n', stack) - stack).find("RWE"), std::string::npos)
        << segments;
  }
  fs::remove_all(dir);

  ObjectImage bad = image;
  bad.relocations.push_back({0, "no_such_symbol", 0});
  EXPECT_THROW(write_elf_x86_64_object(bad), Error);
  bad = image;
  bad.symbols.push_back(bad.symbols.front());
  EXPECT_THROW(write_elf_x86_64_object(bad), Error);
}

}  // namespace
}  // namespace tconv3d
