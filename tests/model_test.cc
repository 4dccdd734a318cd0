// Model loading: every fixture in tests/data/models (made by
// scripts/make_model_fixtures.py with real Keras 3, tf_keras and
// onnxruntime) loads, and each transposed convolution reproduces the
// framework's recorded output; broken files give clear errors, never crashes.
#include <gtest/gtest.h>

#ifdef TCONV3D_HAVE_MODELS

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "runtime/model/file_bytes.hpp"
#include "runtime/model/zip_archive.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/model.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

extern char** environ;

namespace tconv3d {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kModels = fs::path(TCONV3D_TEST_DATA_DIR) / "models";

std::string fixture(const std::string& name) { return (kModels / name).string(); }

// The arrays of a .npz file by key (without ".npy").
std::map<std::string, NpyArray> read_npz(const std::string& path) {
  std::map<std::string, NpyArray> arrays;
  for (const auto& [name, bytes] : model::read_zip_members(model::read_file_bytes(path), path)) {
    const std::string key = name.substr(0, name.size() - 4);
    arrays[key] = parse_npy(bytes, path + ":" + name);
  }
  return arrays;
}

json manifest() {
  std::ifstream in(kModels / "manifest.json");
  return json::parse(in);
}

// Loads `file` and checks every recorded layer against the framework's output.
void check_model_file(const json& entry, const json& file) {
  SCOPED_TRACE(file["file"].get<std::string>());
  ModelOptions options;
  if (file.contains("config")) options.config_path = fixture(file["config"].get<std::string>());
  const Model m = Model::load(fixture(file["file"].get<std::string>()), options);
  const std::string flavor = entry["flavor"].get<std::string>();
  EXPECT_EQ(m.format().rfind(flavor, 0), 0u) << "read as " << m.format();
  ASSERT_EQ(m.layers().size(), entry["layers"].size());
  const auto io = read_npz(fixture(entry["io"].get<std::string>()));
  for (const json& name_json : entry["layers"]) {
    const std::string name = name_json.get<std::string>();
    SCOPED_TRACE("layer " + name);
    const ModelLayer& layer = m.layer(name);
    const NpyArray& x = io.at(name + ":in");
    const NpyArray& y = io.at(name + ":out");
    std::vector<float> out;
    std::vector<int64_t> out_shape;
    layer.forward(x.data.data(), x.shape, out, out_shape);
    EXPECT_EQ(out_shape, y.shape);
    ASSERT_EQ(out.size(), y.data.size());
    EXPECT_LE(testing::scaled_max_error(out, y.data), 1e-5);
  }
}

TEST(ModelFixtures, EveryLayerOfEveryFileMatchesTheFramework) {
  const json models = manifest();
  ASSERT_GE(models.size(), 10u);
  size_t files = 0;
  for (const json& entry : models) {
    for (const json& file : entry["files"]) {
      check_model_file(entry, file);
      ++files;
    }
  }
  EXPECT_GE(files, 25u);
}

TEST(ModelNames, NestedLayersAreNamedByTheirPath) {
  for (const char* file : {"k3_nested.keras", "k3_nested.h5", "tfk_nested.h5", "tfk_nested.keras"}) {
    SCOPED_TRACE(file);
    const Model m = Model::load(fixture(file));
    std::vector<std::string> names;
    for (const auto& l : m.layers()) names.push_back(l.name());
    EXPECT_EQ(names, (std::vector<std::string>{"decoder/up1", "decoder/up2", "refine/up1", "up1"}));
    // Same leaf name, different weights: matched by path, not by name or order.
    EXPECT_NE(m.layer("up1").info().weight_bytes, m.layer("refine/up1").info().weight_bytes);
  }
}

TEST(ModelFlavor, ComesFromTheFilesVersionRecord) {
  EXPECT_EQ(Model::load(fixture("tfk_video.h5")).format(), "tf_keras2 .h5");
  EXPECT_EQ(Model::load(fixture("tfk_video.keras")).format(), "tf_keras2 .keras");
  EXPECT_EQ(Model::load(fixture("k3_video.keras")).format(), "keras3 .keras");
  EXPECT_EQ(Model::load(fixture("k3_video.h5")).format(), "keras3 .h5");
  ModelOptions forced;
  forced.flavor = Flavor::kKeras3;
  EXPECT_EQ(Model::load(fixture("tfk_video.h5"), forced).format(), "keras3 .h5");
  const Model tfk = Model::load(fixture("tfk_video.keras"));
  for (const auto& l : tfk.layers()) {
    const auto shapes = l.specialized_shapes();
    ASSERT_FALSE(shapes.empty()) << l.name();
    EXPECT_EQ(l.layer_for(shapes[0]).config().flavor, Flavor::kTfKeras2);
  }
}

TEST(ModelShapes, LoadTimeSpecializationAndNoRecompileForANewBatch) {
  const Model m = Model::load(fixture("k3_unet_decoder.keras"));
  for (const auto& l : m.layers()) {
    ASSERT_TRUE(l.specialization().has_value()) << l.name();
    EXPECT_EQ(l.specialization()->input_shape[0], 1) << "a free batch is specialized as 1";
    EXPECT_GE(l.specialization()->compile_ms, 0.0);
    EXPECT_FALSE(l.specialization()->backend.empty());
  }
  const ModelLayer& up1 = m.layer("up1");
  std::vector<int64_t> shape = up1.specialization()->input_shape;
  shape[0] = 3;
  std::vector<float> x(size_t(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]), 0.25f), y;
  std::vector<int64_t> y_shape;
  up1.forward(x.data(), shape, y, y_shape);
  EXPECT_EQ(y_shape[0], 3);
  EXPECT_EQ(up1.specialized_shapes().size(), 1u) << "batch 3 reused the batch-1 kernel";
  shape[2] += 1;  // a new spatial size is specialized on the call
  x.assign(size_t(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]), 0.25f);
  up1.forward(x.data(), shape, y, y_shape);
  EXPECT_EQ(up1.specialized_shapes().size(), 2u);
}

TEST(ModelShapes, UnknownShapesWaitForTheFirstCallAndUserShapesAreUsed) {
  const Model m = Model::load(fixture("onnx_chain_no_shapes.onnx"));
  EXPECT_TRUE(m.layer("first").specialization().has_value());
  EXPECT_FALSE(m.layer("ConvTranspose_1").specialization().has_value());
  EXPECT_TRUE(m.layer("ConvTranspose_1").info().input_shape.empty());
  ModelOptions options;
  options.input_shapes["ConvTranspose_1"] = {2, 3, 4, 6, 4};
  const Model given = Model::load(fixture("onnx_chain_no_shapes.onnx"), options);
  ASSERT_TRUE(given.layer("ConvTranspose_1").specialization().has_value());
  EXPECT_EQ(given.layer("ConvTranspose_1").specialization()->input_shape, (std::vector<int64_t>{2, 3, 4, 6, 4}));
  options.input_shapes = {{"nope", {1, 2, 3, 4, 5}}};
  EXPECT_THROW(Model::load(fixture("onnx_chain_no_shapes.onnx"), options), Error);
}

// The error names the file, and `needle` (the layer or the problem).
void expect_load_error(const std::string& path, const std::string& needle, const ModelOptions& options = {}) {
  SCOPED_TRACE(path);
  try {
    Model::load(path, options);
    ADD_FAILURE() << "loaded without error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fs::path(path).filename().string()), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << "'" << needle << "' not in: " << message;
  }
}

TEST(ModelErrors, BrokenFilesNameTheFileTheLayerAndTheProblem) {
  expect_load_error(fixture("bad_missing_weights.keras"), "layer 'decoder/up1'");
  expect_load_error(fixture("bad_wrong_shape.keras"), "layer 'up1': kernel: shape");
  expect_load_error(fixture("bad_float64.keras"), "layer 'up1': dataset 'layers/conv3d_transpose/vars/0' holds float64");
  expect_load_error(fixture("bad_unsupported.keras"), "padding");
  expect_load_error(fixture("bad_no_tconv.keras"), "no 3D transposed convolution");
  expect_load_error(fixture("bad_onnx_grouped.onnx"), "group");
  expect_load_error(fixture("k3_nested.weights.h5"), "--config");
  expect_load_error(fixture("does_not_exist.keras"), "no such file");
  ModelOptions wrong_config;
  wrong_config.config_path = fixture("k3_video.config.json");
  expect_load_error(fixture("k3_nested.weights.h5"), "layer 'st_up'", wrong_config);
}

class ModelCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tconv3d_model_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  fs::path dir_;
};

TEST_F(ModelCorruption, TruncatedAndFlippedFilesAreErrorsNotCrashes) {
  for (const char* name : {"k3_unet_decoder.keras", "tfk_gan_generator.h5", "onnx_torch_pad1_outpad1.onnx",
                           "k3_nested.h5", "tfk_nested.keras"}) {
    const std::string bytes = model::read_file_bytes(fixture(name));
    const std::string ext = fs::path(name).extension().string();
    // Truncations at many points, including inside every container's header.
    for (size_t cut : {size_t(0), size_t(3), size_t(10), size_t(40), size_t(100), bytes.size() / 3,
                       bytes.size() / 2, bytes.size() - 100, bytes.size() - 1}) {
      if (cut >= bytes.size()) continue;
      SCOPED_TRACE(std::string(name) + " cut at " + std::to_string(cut));
      EXPECT_THROW(Model::load(write(std::string("cut") + ext, bytes.substr(0, cut))), Error);
    }
    // Byte flips: an Error or a successful load, never a crash.
    std::mt19937_64 rng(42);
    for (int i = 0; i < 40; ++i) {
      std::string flipped = bytes;
      for (int k = 0; k < 4; ++k) flipped[rng() % flipped.size()] ^= char(1 + rng() % 255);
      try {
        Model::load(write(std::string("flip") + ext, flipped));
      } catch (const Error&) {
      }
    }
  }
}

TEST_F(ModelCorruption, OnnxExternalDataMustExistAndStayInTheModelsFolder) {
  const std::string model = model::read_file_bytes(fixture("onnx_output_shape.onnx"));
  // Without its weights file next to it.
  expect_load_error(write("onnx_output_shape.onnx", model), "onnx_output_shape.weights");
  // With a truncated weights file.
  const std::string weights = model::read_file_bytes(fixture("onnx_output_shape.weights"));
  write("onnx_output_shape.weights", weights.substr(0, weights.size() / 2));
  expect_load_error((dir_ / "onnx_output_shape.onnx").string(), "too short");
}

// The CLI: inspect prints the table; run writes the layer's output; bad files exit 2.
struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

CliRun run_cli(const std::vector<std::string>& args, const fs::path& dir) {
  const std::string out_path = (dir / "stdout").string(), err_path = (dir / "stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> storage = {TCONV3D_CLI_PATH};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  CliRun r;
  if (posix_spawn(&pid, TCONV3D_CLI_PATH, &actions, nullptr, argv.data(), environ) != 0) return r;
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1000;
  r.out = model::read_file_bytes(out_path);
  r.err = model::read_file_bytes(err_path);
  return r;
}

TEST_F(ModelCorruption, CliInspectRunAndBadInput) {
  const CliRun inspect = run_cli({"model", "inspect", fixture("k3_nested.keras")}, dir_);
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("decoder/up1"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("(?,2,3,3,4) -> (?,4,6,6,3)"), std::string::npos) << inspect.out;

  const auto io = read_npz(fixture("onnx_torch_pad1_outpad1.io.npz"));
  const NpyArray& x = io.at("/up1/ConvTranspose:in");
  const NpyArray& y = io.at("/up1/ConvTranspose:out");
  const std::string in_path = (dir_ / "x.npy").string(), out_path = (dir_ / "y.npy").string();
  write_npy(in_path, x.shape, x.data.data());
  const CliRun run = run_cli({"model", "run", fixture("onnx_torch_pad1_outpad1.onnx"), "--layer",
                              "/up1/ConvTranspose", "--input", in_path, "--output", out_path}, dir_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const NpyArray got = read_npy(out_path);
  EXPECT_EQ(got.shape, y.shape);
  EXPECT_LE(testing::scaled_max_error(got.data, y.data), 1e-5);

  const CliRun missing_layer = run_cli({"model", "run", fixture("k3_nested.keras"), "--layer", "nope", "--input",
                                        in_path, "--output", out_path}, dir_);
  EXPECT_EQ(missing_layer.exit_code, 2);
  EXPECT_NE(missing_layer.err.find("decoder/up1"), std::string::npos) << "lists the layers: " << missing_layer.err;
  const CliRun bad = run_cli({"model", "inspect", write("bad.h5", "\x89HDF\r\n\x1a\n garbage")}, dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.h5"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace tconv3d

#else

TEST(Model, NotBuilt) { GTEST_SKIP() << "built without libzip: no model loading"; }

#endif
