// The tconv3d CLI end to end: the built binary on temporary files. Results
// are checked against the library computed in-process; every bad input must
// exit with code 2, name the problem on stderr, and leave no output behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cpu_features.hpp"
#include "core/weights.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;

using testing::CliResult;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tconv3d_cli_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  CliResult run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) const {
    return testing::run_cli(args, dir_.string(), env);
  }

  // Runs, expecting exit code 2 with `needle` on stderr (and nothing but the
  // error there: no sanitizer report, no crash), and no file at `output`.
  void expect_bad_input(const std::vector<std::string>& args, const std::string& needle,
                        const std::vector<std::string>& outputs = {}, const std::vector<std::string>& env = {}) const {
    std::string joined;
    for (const std::string& a : env) joined += a + " ";
    joined += "tconv3d";
    for (const std::string& a : args) joined += " " + a;
    SCOPED_TRACE(joined);
    const CliResult r = run(args, env);
    EXPECT_EQ(r.exit_code, 2) << "stderr: " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr lacks '" << needle << "': " << r.err;
    EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << r.err;
    for (const std::string& output : outputs) {
      EXPECT_FALSE(fs::exists(output)) << output << " left behind";
      EXPECT_FALSE(fs::exists(output + ".tmp")) << output << ".tmp left behind";
    }
  }

  // Writes a float32 .npy of `shape` with seeded random values.
  std::vector<float> write_random(const std::string& name, const std::vector<int64_t>& shape, uint64_t seed) const {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::mt19937_64 rng(seed);
    const std::vector<float> values = testing::random_tensor(count, rng);
    write_npy(path(name), shape, values.data());
    return values;
  }

  // A hand-written .npy with an arbitrary header dict and payload.
  void write_raw_npy(const std::string& name, const std::string& dict, const std::string& payload) const {
    std::string header = dict;
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string bytes = "\x93NUMPY";
    bytes += char(1);
    bytes += char(0);
    bytes += char(header.size() & 0xff);
    bytes += char(header.size() >> 8);
    write_text(path(name), bytes + header + payload);
  }

  fs::path dir_;
};

// A small layer: even and odd kernel sizes, stride > 1, same padding, bias, relu.
constexpr const char* kLayer =
    R"({"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 3], "padding": "same",
        "activation": "relu", "use_bias": true})";
const std::vector<int64_t> kInputShape = {2, 3, 4, 3, 6};
const std::vector<int64_t> kKernelShape = {3, 2, 3, 5, 6};

class CliRun : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    write_text(path("layer.json"), kLayer);
    input_ = write_random("x.npy", kInputShape, 1);
    kernel_ = write_random("k.npy", kKernelShape, 2);
    bias_ = write_random("b.npy", {5}, 3);
  }

  std::vector<std::string> run_args(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"run", "--layer", path("layer.json"), "--input", path("x.npy"),
                                     "--kernel", path("k.npy"), "--bias", path("b.npy"), "--output", path("y.npy")};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::vector<float> expected_output(const char* json) const {
    LayerOptions options;
    options.backend = Backend::kReference;
    const Layer layer = Layer::create(parse_layer_config(json), kInputShape, {kernel_.data(), kKernelShape},
                                      {bias_.data(), {5}}, options);
    std::vector<float> out(static_cast<size_t>(layer.output_elements()));
    layer.forward(input_.data(), out.data());
    return out;
  }

  std::vector<float> input_, kernel_, bias_;
};

TEST_F(CliRun, MatchesTheReference) {
  const std::vector<float> expected = expected_output(kLayer);
  for (const std::vector<std::string>& extra :
       std::vector<std::vector<std::string>>{{}, {"--backend", "generic", "--threads", "1"},
                                             {"--backend", "generic", "--threads", "2"},
                                             {"--backend=reference"}, {"--keras-flavor", "keras3"}}) {
    const CliResult r = run(run_args(extra));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "");
    const NpyArray y = read_npy(path("y.npy"));
    EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 6, 4, 9, 5}));
    EXPECT_LE(testing::scaled_max_error(y.data, expected), 1e-5);
    EXPECT_FALSE(fs::exists(path("y.npy.tmp")));
    fs::remove(path("y.npy"));
  }
}

TEST_F(CliRun, ChannelsFirstWithoutBias) {
  const char* json = R"({"filters": 4, "kernel_size": 2, "strides": 2, "data_format": "channels_first",
                         "use_bias": false, "output_padding": [1, 0, 1]})";
  write_text(path("cf.json"), json);
  const std::vector<float> x = write_random("xcf.npy", {1, 3, 2, 3, 2}, 4);
  const std::vector<float> k = write_random("kcf.npy", {2, 2, 2, 4, 3}, 5);
  const CliResult r = run({"run", "--layer", path("cf.json"), "--input", path("xcf.npy"), "--kernel",
                           path("kcf.npy"), "--output", path("ycf.npy")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  LayerOptions options;
  options.backend = Backend::kReference;
  const Layer layer = Layer::create(parse_layer_config(json), {1, 3, 2, 3, 2}, {k.data(), {2, 2, 2, 4, 3}}, {},
                                    options);
  std::vector<float> expected(static_cast<size_t>(layer.output_elements()));
  layer.forward(x.data(), expected.data());
  const NpyArray y = read_npy(path("ycf.npy"));
  EXPECT_EQ(y.shape, (std::vector<int64_t>{1, 4, 5, 6, 5}));
  EXPECT_LE(testing::scaled_max_error(y.data, expected), 1e-5);
}

TEST_F(CliRun, SeededWeightsAreReproducible) {
  auto run_seed = [&](const std::string& seed, const std::string& out) {
    std::vector<std::string> args = {"run", "--layer", path("layer.json"), "--input", path("x.npy"), "--output",
                                     path(out)};
    if (!seed.empty()) {
      args.push_back("--seed");
      args.push_back(seed);
    }
    const CliResult r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return read_npy(path(out)).data;
  };
  const std::vector<float> a = run_seed("7", "a.npy"), b = run_seed("7", "b.npy"), c = run_seed("8", "c.npy");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // The same weights as the library draws for that seed.
  const Layer layer = Layer::create_initialized(parse_layer_config(kLayer), kInputShape, 7);
  std::vector<float> expected(static_cast<size_t>(layer.output_elements()));
  layer.forward(input_.data(), expected.data());
  EXPECT_LE(testing::scaled_max_error(a, expected), 1e-5);
  // No --seed means seed 0, still reproducible.
  EXPECT_EQ(run_seed("", "d.npy"), run_seed("0", "e.npy"));
}

TEST_F(CliRun, LossesPrintOneJsonLine) {
  const char* json = R"({"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 3], "padding": "same",
                         "activation": "relu",
                         "kernel_regularizer": {"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}},
                         "bias_regularizer": {"class_name": "L2", "config": {"l2": 0.5}},
                         "activity_regularizer": {"class_name": "L1", "config": {"l1": 0.1}}})";
  write_text(path("reg.json"), json);
  std::vector<std::string> args = run_args({"--losses"});
  args[2] = path("reg.json");
  const CliResult r = run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "expected exactly one line: " << r.out;
  const nlohmann::json line = nlohmann::json::parse(r.out);
  const Layer layer = Layer::create(parse_layer_config(json), kInputShape, {kernel_.data(), kKernelShape},
                                    {bias_.data(), {5}});
  const NpyArray y = read_npy(path("y.npy"));
  const Layer::Losses expected = layer.losses(y.data.data());
  ASSERT_TRUE(line.contains("kernel_regularization") && line.contains("bias_regularization") &&
              line.contains("activity_regularization"))
      << r.out;
  EXPECT_EQ(line.size(), 3u) << r.out;
  EXPECT_NEAR(line["kernel_regularization"].get<double>(), expected.kernel, 1e-9 * expected.kernel);
  EXPECT_NEAR(line["bias_regularization"].get<double>(), expected.bias, 1e-9 * expected.bias);
  EXPECT_NEAR(line["activity_regularization"].get<double>(), expected.activity, 1e-9 * expected.activity);
  EXPECT_GT(expected.kernel, 0);
  EXPECT_GT(expected.bias, 0);
  EXPECT_GT(expected.activity, 0);

  // No regularizers: three zeros.
  const CliResult plain = run(run_args({"--losses"}));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const nlohmann::json zeros = nlohmann::json::parse(plain.out);
  EXPECT_EQ(zeros["kernel_regularization"].get<double>(), 0.0);
  EXPECT_EQ(zeros["bias_regularization"].get<double>(), 0.0);
  EXPECT_EQ(zeros["activity_regularization"].get<double>(), 0.0);
}

TEST_F(CliTest, ShapePrintsTheOutputShape) {
  write_text(path("l.json"), kLayer);
  CliResult r = run({"shape", "--layer", path("l.json"), "--input-shape", "2,3,4,3,6"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2,6,4,9,5\n");
  // channels_first, valid, in a model file's wrapping.
  write_text(path("cf.json"),
             R"({"class_name": "Conv3DTranspose", "config": {"filters": 8, "kernel_size": 3, "strides": 2,
                 "data_format": "channels_first"}})");
  r = run({"shape", "--layer", path("cf.json"), "--input-shape", "1,4,5,6,7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1,8,11,13,15\n");
  // glu halves the last axis.
  write_text(path("glu.json"), R"({"filters": 6, "kernel_size": 1, "activation": "glu"})");
  r = run({"shape", "--layer", path("glu.json"), "--input-shape", "1,2,2,2,3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1,2,2,2,3\n");
  // tf.keras 2.x ignores dilation: a warning on stderr, and its shape.
  write_text(path("dil.json"), R"({"filters": 2, "kernel_size": 3, "dilation_rate": 2})");
  r = run({"shape", "--layer", path("dil.json"), "--input-shape", "1,4,4,4,1", "--keras-flavor", "tf_keras2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1,6,6,6,2\n");
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  r = run({"shape", "--layer", path("dil.json"), "--input-shape", "1,4,4,4,1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1,8,8,8,2\n");
}

TEST_F(CliTest, ConstrainAppliesKerasConstraints) {
  const char* json = R"({"filters": 3, "kernel_size": 2,
                         "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 0.5, "axis": [0, 1, 2]}},
                         "bias_constraint": {"class_name": "NonNeg", "config": {}}})";
  write_text(path("c.json"), json);
  const std::vector<int64_t> kshape = {2, 2, 2, 3, 4};
  std::vector<float> kernel = write_random("k.npy", kshape, 9);
  for (float& v : kernel) v *= 3.0f;  // large enough that max_norm bites
  write_npy(path("k.npy"), kshape, kernel.data());
  std::vector<float> bias = {-1.0f, 0.5f, -0.25f};
  write_npy(path("b.npy"), {3}, bias.data());

  CliResult r = run({"constrain", "--layer", path("c.json"), "--kernel", path("k.npy"), "--bias", path("b.npy"),
                     "--output-kernel", path("k2.npy"), "--output-bias", path("b2.npy")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Constraint max_norm = *parse_layer_config(json).kernel_constraint;
  std::vector<float> expected_kernel = kernel;
  apply_constraint(max_norm, expected_kernel.data(), kshape);
  const NpyArray k2 = read_npy(path("k2.npy"));
  EXPECT_EQ(k2.shape, kshape);
  EXPECT_EQ(k2.data, expected_kernel);
  EXPECT_NE(k2.data, kernel);
  const NpyArray b2 = read_npy(path("b2.npy"));
  EXPECT_EQ(b2.data, (std::vector<float>{0.0f, 0.5f, 0.0f}));

  // Without a bias: only the kernel is written.
  r = run({"constrain", "--layer", path("c.json"), "--kernel", path("k.npy"), "--output-kernel", path("k3.npy")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_npy(path("k3.npy")).data, expected_kernel);
}

TEST_F(CliTest, BenchPrintsJsonLines) {
  write_text(path("l.json"), R"({"filters": 4, "kernel_size": 2, "strides": 2, "name": "tiny"})");
  CliResult r = run({"bench", "--layer", path("l.json"), "--input-shape", "1,2,2,2,3", "--json", "--min-time", "0",
                     "--threads", "1", "--backend", "generic"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string text;
  int count = 0;
  while (std::getline(lines, text)) {
    ++count;
    const nlohmann::json line = nlohmann::json::parse(text);
    EXPECT_EQ(line["name"], "tiny");
    EXPECT_EQ(line["backend"], "generic");
    EXPECT_TRUE(line["isa"].is_string());
    EXPECT_EQ(line["threads"], 1);
    EXPECT_GT(line["ms"].get<double>(), 0.0);
    EXPECT_GT(line["gflops"].get<double>(), 0.0);
  }
  EXPECT_EQ(count, 1) << r.out;

  // Without --json: one human-readable line.
  r = run({"bench", "--layer", path("l.json"), "--input-shape", "1,2,2,2,3", "--min-time", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("GFLOP/s"), std::string::npos) << r.out;
}

TEST_F(CliTest, BenchRunsASuite) {
  write_text(path("suite.json"), R"({"layers": [
      {"name": "a_k2s2", "input_shape": [1, 2, 2, 2, 4], "config": {"filters": 3, "kernel_size": 2, "strides": 2}},
      {"name": "b_k3same", "input_shape": [1, 3, 3, 3, 2],
       "config": {"filters": 5, "kernel_size": 3, "padding": "same", "activation": "relu"}}]})");
  const CliResult r = run({"bench", "--suite", path("suite.json"), "--json", "--min-time", "0", "--backend",
                           "reference", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string text;
  std::vector<std::string> names;
  while (std::getline(lines, text)) {
    const nlohmann::json line = nlohmann::json::parse(text);
    names.push_back(line["name"].get<std::string>());
    EXPECT_EQ(line["backend"], "reference");
    EXPECT_EQ(line["threads"], 2);
    for (const char* key : {"isa", "ms", "gflops"}) EXPECT_TRUE(line.contains(key)) << text;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"a_k2s2", "b_k3same"}));
  EXPECT_NE(r.err.find("[2/2] b_k3same"), std::string::npos) << "progress on stderr: " << r.err;
}

// ---- Bad input: exit code 2, the problem named on stderr, no output left. ----

TEST_F(CliTest, UsageErrors) {
  expect_bad_input({}, "usage");
  expect_bad_input({"frobnicate"}, "unknown command 'frobnicate'");
  write_text(path("l.json"), kLayer);
  expect_bad_input({"shape", "--input-shape", "1,2,2,2,6"}, "--layer: is required");
  expect_bad_input({"shape", "--layer", path("l.json")}, "--input-shape: is required");
  expect_bad_input({"shape", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6", "--frobnicate", "1"},
                   "--frobnicate: unknown option");
  expect_bad_input({"shape", "--layer", path("l.json"), "--input-shape"}, "--input-shape: needs a value");
  expect_bad_input({"shape", "--layer", path("l.json"), "--input-shape", "1,2,x,2,6"}, "--input-shape");
  expect_bad_input({"shape", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6", "stray"}, "stray");
  expect_bad_input({"bench", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6", "--json=yes"},
                   "--json: takes no value");
}

TEST_F(CliTest, LayerFileErrors) {
  const std::string missing = path("missing.json");
  expect_bad_input({"shape", "--layer", missing, "--input-shape", "1,2,2,2,6"}, missing);
  expect_bad_input({"shape", "--layer", dir_.string(), "--input-shape", "1,2,2,2,6"}, "is a directory");
  write_text(path("bad.json"), "{\"filters\": 4, \"kernel_size\": ");
  expect_bad_input({"shape", "--layer", path("bad.json"), "--input-shape", "1,2,2,2,6"}, "invalid JSON");
  write_text(path("empty.json"), "");
  expect_bad_input({"shape", "--layer", path("empty.json"), "--input-shape", "1,2,2,2,6"}, "invalid JSON");
  write_text(path("list.json"), "[1, 2, 3]");
  expect_bad_input({"shape", "--layer", path("list.json"), "--input-shape", "1,2,2,2,6"}, path("list.json"));
}

TEST_F(CliTest, InvalidConfigs) {
  const std::map<std::string, std::string> cases = {
      {R"({"filters": 0, "kernel_size": 3})", "filters"},
      {R"({"filters": 4})", "kernel_size"},
      {R"({"filters": 4, "kernel_size": [3, 3]})", "kernel_size"},
      {R"({"filters": 4, "kernel_size": 3, "padding": "circular"})", "circular"},
      {R"({"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2})", "dilation"},
      {R"({"filters": 4, "kernel_size": 3, "strides": 2, "output_padding": 2})", "output_padding"},
      {R"({"filters": 4, "kernel_size": 3, "activation": "threshold"})", "threshold"},
      {R"({"filters": 4, "kernel_size": 3, "activation": "no_such_thing"})", "no_such_thing"},
      {R"({"filters": 4, "kernel_size": 3, "data_format": "channels_middle"})", "channels_middle"},
      {R"({"filters": 4, "kernel_size": 3, "kernel_initializer": "bogus_init"})", "bogus_init"},
      {R"({"filters": 4, "kernel_size": 3, "kernel_regularizer": {"class_name": "L3", "config": {}}})", "L3"},
      {R"({"filters": 4, "kernel_size": 3, "bias_constraint": "squash"})", "squash"},
      {R"({"filters": "four", "kernel_size": 3})", "filters"},
      {R"({"class_name": "Conv2DTranspose", "config": {"filters": 4, "kernel_size": 3}})", "Conv2DTranspose"},
  };
  int i = 0;
  for (const auto& [json, needle] : cases) {
    const std::string file = path("bad" + std::to_string(i++) + ".json");
    write_text(file, json);
    expect_bad_input({"shape", "--layer", file, "--input-shape", "1,4,4,4,2"}, needle);
  }
}

TEST_F(CliTest, ShapeInputErrors) {
  write_text(path("l.json"), kLayer);
  const std::string l = path("l.json");
  expect_bad_input({"shape", "--layer", l, "--input-shape", "1,4,4,4"}, "rank 4");
  expect_bad_input({"shape", "--layer", l, "--input-shape", "1,4,0,4,2"}, "input_shape");
  expect_bad_input({"shape", "--layer", l, "--input-shape", "1,4,-4,4,2"}, "input_shape");
  // Element counts that overflow, and a number beyond int64.
  expect_bad_input({"shape", "--layer", l, "--input-shape", "1000000,1000000,1000000,1000000,1000000"}, "overflow");
  expect_bad_input({"shape", "--layer", l, "--input-shape", "1,4611686018427387904,4,4,2"}, "input_shape");
  expect_bad_input({"shape", "--layer", l, "--input-shape", "1,99999999999999999999999,4,4,2"}, "--input-shape");
}

TEST_F(CliTest, OptionValueErrors) {
  write_text(path("l.json"), kLayer);
  const std::vector<std::string> base = {"bench", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6",
                                         "--min-time", "0"};
  auto with = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra);
    return args;
  };
  expect_bad_input(with({"--threads", "abc"}), "--threads: expected a non-negative integer, got 'abc'");
  expect_bad_input(with({"--threads", "-2"}), "--threads");
  expect_bad_input(with({"--threads", "4x"}), "--threads");
  expect_bad_input(with({"--backend", "foo"}), "--backend: expected auto, reference, generic");
  expect_bad_input(with({"--isa", "foo"}), "--isa: expected auto, avx2 or avx512, got 'foo'");
  expect_bad_input(with({"--keras-flavor", "foo"}), "--keras-flavor: expected keras3 or tf_keras2, got 'foo'");
  expect_bad_input(with({"--min-time", "soon"}), "--min-time");
  expect_bad_input(with({"--min-time", "-1"}), "--min-time");
  expect_bad_input({"shape", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6", "--keras-flavor", "keras4"},
                   "'keras4'");
}

// TCONV3D_CPU_MASK hides AVX-512 (and, with avx2, every vector ISA) in the
// child, so the refusal is checked on every host.
TEST_F(CliTest, ForcedIsaTheCpuLacks) {
  write_text(path("l.json"), kLayer);
  const std::vector<std::string> bench = {"bench", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6",
                                          "--min-time", "0", "--isa"};
  auto with_isa = [&](const std::string& isa) {
    std::vector<std::string> args = bench;
    args.push_back(isa);
    return args;
  };
  expect_bad_input(with_isa("avx512"), "avx512", {}, {"TCONV3D_CPU_MASK=avx512"});
  expect_bad_input(with_isa("avx2"), "avx2", {}, {"TCONV3D_CPU_MASK=avx2"});
  expect_bad_input(with_isa("avx512"), "avx512", {}, {"TCONV3D_CPU_MASK=avx2"});
  // TCONV3D_ISA is refused the same way.
  expect_bad_input({"bench", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6", "--min-time", "0"}, "avx512",
                   {}, {"TCONV3D_CPU_MASK=avx512", "TCONV3D_ISA=avx512"});
}

TEST_F(CliTest, CpuMaskHidesOnlyWhatItNames) {
  write_text(path("l.json"), kLayer);
  const std::vector<std::string> plan = {"plan", "--layer", path("l.json"), "--input-shape", "1,2,2,2,6"};
  if (cpu_features().avx512) {
    const CliResult unmasked = run(plan);
    EXPECT_NE(unmasked.out.find("avx512"), std::string::npos) << unmasked.out;
  }
  if (cpu_features().avx2_fma) {
    // With AVX-512 hidden the auto choice is AVX2.
    const CliResult masked = run(plan, {"TCONV3D_CPU_MASK=avx512"});
    EXPECT_EQ(masked.exit_code, 0) << masked.err;
    EXPECT_NE(masked.out.find("avx2"), std::string::npos) << masked.out;
    EXPECT_EQ(masked.out.find("avx512"), std::string::npos) << masked.out;
  }
  // An empty mask hides nothing; a misspelt one is an error naming the variable.
  EXPECT_EQ(run(plan, {"TCONV3D_CPU_MASK="}).exit_code, 0);
  expect_bad_input(plan, "TCONV3D_CPU_MASK", {}, {"TCONV3D_CPU_MASK=avx-512"});
}

TEST_F(CliTest, BenchSuiteErrors) {
  write_text(path("l.json"), kLayer);
  expect_bad_input({"bench", "--suite", path("none.json")}, path("none.json"));
  expect_bad_input({"bench", "--suite", dir_.string()}, "is a directory");
  write_text(path("s1.json"), "{\"layers\": [");
  expect_bad_input({"bench", "--suite", path("s1.json")}, "invalid JSON");
  write_text(path("s2.json"), "{\"layers\": []}");
  expect_bad_input({"bench", "--suite", path("s2.json")}, "no layers");
  write_text(path("s3.json"), R"({"layers": [{"name": "x", "input_shape": [1, 2, 2, 2, 2],
                                              "config": {"filters": 0, "kernel_size": 2}}]})");
  expect_bad_input({"bench", "--suite", path("s3.json")}, "filters");
  write_text(path("s4.json"), R"({"layers": [{"name": "x", "config": {"filters": 1, "kernel_size": 2}}]})");
  expect_bad_input({"bench", "--suite", path("s4.json")}, "input_shape");
  expect_bad_input({"bench", "--suite", path("s2.json"), "--layer", path("l.json")}, "not both");
  expect_bad_input({"bench", "--input-shape", "1,2,2,2,6"}, "--layer");
}

TEST_F(CliRun, NpyInputErrors) {
  const std::string y = path("y.npy");
  auto with_input = [&](const std::string& name) {
    std::vector<std::string> args = run_args();
    args[4] = path(name);
    return args;
  };
  expect_bad_input(with_input("missing.npy"), "--input", {y});
  expect_bad_input(with_input("missing.npy"), "missing.npy", {y});
  expect_bad_input(with_input(""), "--input", {y});
  {
    std::vector<std::string> args = run_args();
    args[4] = dir_.string();
    expect_bad_input(args, "is a directory", {y});
  }
  // Run arguments reading an input of the right shape in another dtype or order.
  auto with_input_stored_as = [&](const std::string& file, const std::string& descr, const std::string& fortran_order,
                                  size_t item_bytes) {
    write_raw_npy(file,
                  "{'descr': '" + descr + "', 'fortran_order': " + fortran_order + ", 'shape': (2, 3, 4, 3, 6), }",
                  std::string(2 * 3 * 4 * 3 * 6 * item_bytes, '\0'));
    return with_input(file);
  };
  expect_bad_input(with_input_stored_as("f8.npy", "<f8", "False", 8), "'<f8' is not float32", {y});
  expect_bad_input(with_input_stored_as("i4.npy", "<i4", "False", 4), "'<i4' is not float32", {y});
  expect_bad_input(with_input_stored_as("be.npy", ">f4", "False", 4), "'>f4'", {y});
  expect_bad_input(with_input_stored_as("fo.npy", "<f4", "True", 4), "Fortran order", {y});
  const std::string whole = [&] {
    std::ifstream in(path("x.npy"), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }();
  write_text(path("trunc.npy"), whole.substr(0, whole.size() - 10));
  expect_bad_input(with_input("trunc.npy"), "truncated", {y});
  write_text(path("garbage.npy"), "this is not numpy at all");
  expect_bad_input(with_input("garbage.npy"), "magic", {y});
  write_raw_npy("absurd.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 1000000), }", "");
  expect_bad_input(with_input("absurd.npy"), "too large", {y});
}

TEST_F(CliRun, ShapeMismatchErrors) {
  const std::string y = path("y.npy");
  auto with = [&](int index, const std::string& name) {
    std::vector<std::string> args = run_args();
    args[size_t(index)] = path(name);
    return args;
  };
  write_random("x4d.npy", {2, 3, 4, 3}, 10);
  expect_bad_input(with(4, "x4d.npy"), "rank 4", {y});
  // Input channels (7) differ from the kernel's (6).
  write_random("x7.npy", {2, 3, 4, 3, 7}, 11);
  expect_bad_input(with(4, "x7.npy"), "input channels 7", {y});
  // Kernel of the wrong size, and of the wrong rank.
  write_random("kbad.npy", {3, 3, 3, 5, 6}, 12);
  expect_bad_input(with(6, "kbad.npy"), "kernel: shape (3, 3, 3, 5, 6)", {y});
  write_random("k4d.npy", {3, 2, 3, 30}, 13);
  expect_bad_input(with(6, "k4d.npy"), "kernel", {y});
  // Bias of the wrong length.
  write_random("b4.npy", {4}, 14);
  expect_bad_input(with(8, "b4.npy"), "bias: shape", {y});
  // The kernel file itself is bad.
  write_raw_npy("kf8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 5, 6), }",
                std::string(3 * 2 * 3 * 5 * 6 * 8, '\0'));
  expect_bad_input(with(6, "kf8.npy"), "--kernel", {y});
  expect_bad_input(with(8, "missing_bias.npy"), "--bias", {y});
}

TEST_F(CliRun, BiasRuleErrors) {
  const std::string y = path("y.npy");
  // use_bias true, kernel given, no bias.
  expect_bad_input({"run", "--layer", path("layer.json"), "--input", path("x.npy"), "--kernel", path("k.npy"),
                    "--output", y},
                   "use_bias is true but no bias was given", {y});
  // use_bias false, bias given.
  write_text(path("nobias.json"), R"({"filters": 5, "kernel_size": [3, 2, 3], "use_bias": false})");
  std::vector<std::string> args = run_args();
  args[2] = path("nobias.json");
  expect_bad_input(args, "a bias was given but use_bias is false", {y});
  // --bias without --kernel; --seed with --kernel.
  expect_bad_input({"run", "--layer", path("layer.json"), "--input", path("x.npy"), "--bias", path("b.npy"),
                    "--output", y},
                   "--bias: given without --kernel", {y});
  expect_bad_input(run_args({"--seed", "3"}), "--seed", {y});
  expect_bad_input({"run", "--layer", path("layer.json"), "--input", path("x.npy"), "--output", y, "--seed", "-1"},
                   "--seed", {y});
  expect_bad_input({"run", "--layer", path("layer.json"), "--input", path("x.npy"), "--kernel", path("k.npy"),
                    "--bias", path("b.npy")},
                   "--output: is required", {y});
}

TEST_F(CliRun, OutputErrorsLeaveNothingBehind) {
  expect_bad_input({"run", "--layer", path("layer.json"), "--input", path("x.npy"), "--kernel", path("k.npy"),
                    "--bias", path("b.npy"), "--output", "/nonexistent-dir/y.npy"},
                   "/nonexistent-dir/y.npy", {"/nonexistent-dir/y.npy"});
  // The output path is a directory.
  fs::create_directory(path("out_dir"));
  expect_bad_input(run_args({"--output", path("out_dir")}), path("out_dir"), {});
  EXPECT_TRUE(fs::is_directory(path("out_dir")));
  EXPECT_FALSE(fs::exists(path("out_dir.tmp")));
  // A failed run does not clobber an existing output file.
  const std::vector<float> previous = {42.0f};
  write_npy(path("keep.npy"), {1}, previous.data());
  write_random("x7.npy", {2, 3, 4, 3, 7}, 11);
  std::vector<std::string> args = run_args({"--output", path("keep.npy")});
  args[4] = path("x7.npy");
  expect_bad_input(args, "kernel", {});
  EXPECT_EQ(read_npy(path("keep.npy")).data, previous);
  // constrain: unwritable outputs, bias flags out of step.
  expect_bad_input({"constrain", "--layer", path("layer.json"), "--kernel", path("k.npy"), "--output-kernel",
                    "/nonexistent-dir/k2.npy"},
                   "/nonexistent-dir/k2.npy", {"/nonexistent-dir/k2.npy"});
  expect_bad_input({"constrain", "--layer", path("layer.json"), "--kernel", path("k.npy"), "--output-kernel",
                    path("k2.npy"), "--output-bias", path("b2.npy")},
                   "--output-bias", {path("k2.npy"), path("b2.npy")});
  expect_bad_input({"constrain", "--layer", path("layer.json"), "--kernel", path("k.npy"), "--bias", path("b.npy"),
                    "--output-kernel", path("k2.npy")},
                   "--output-bias", {path("k2.npy")});
  expect_bad_input({"constrain", "--layer", path("layer.json"), "--kernel", path("x.npy"), "--output-kernel",
                    path("k2.npy")},
                   "--kernel", {path("k2.npy")});
  // The bias cannot be written: the kernel written just before is removed again.
  expect_bad_input({"constrain", "--layer", path("layer.json"), "--kernel", path("k.npy"), "--bias", path("b.npy"),
                    "--output-kernel", path("k2.npy"), "--output-bias", "/nonexistent-dir/b2.npy"},
                   "/nonexistent-dir/b2.npy", {path("k2.npy")});
  write_random("b4.npy", {4}, 14);
  expect_bad_input({"constrain", "--layer", path("layer.json"), "--kernel", path("k.npy"), "--bias", path("b4.npy"),
                    "--output-kernel", path("k2.npy"), "--output-bias", path("b2.npy")},
                   "--bias", {path("k2.npy"), path("b2.npy")});
}

}  // namespace
}  // namespace tconv3d
