// Random damage to real model files (tests/data/models, made by real Keras,
// tf.keras and PyTorch's ONNX exporter): every damaged copy must load, or
// fail with tconv3d::Error, within seconds. A crash fails the test process,
// a hang trips the watchdog. Deterministic: the same mutants every run.
#include <gtest/gtest.h>

#ifdef TCONV3D_HAVE_MODELS

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "runtime/model/file_bytes.hpp"
#include "runtime/model/zip_archive.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/model.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const fs::path kModels = fs::path(TCONV3D_TEST_DATA_DIR) / "models";
constexpr int kMutantsPerFile = 100;
constexpr double kMaxSecondsPerLoad = 5.0;

// Ends the process (a test failure) if one load runs longer than 20 s: a hang
// would otherwise only end at ctest's timeout, without saying which mutant.
class Watchdog {
 public:
  Watchdog() : thread_([this] { watch(); }) {}
  ~Watchdog() {
    done_ = true;
    thread_.join();
  }
  void start(const std::string& what) {
    std::snprintf(what_, sizeof what_, "%s", what.c_str());
    started_ = Clock::now().time_since_epoch().count();
  }
  void stop() { started_ = 0; }

 private:
  void watch() {
    while (!done_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto started = started_.load();
      if (started && Clock::now().time_since_epoch().count() - started > std::chrono::nanoseconds(20'000'000'000).count()) {
        std::fprintf(stderr, "hang: %s still loading after 20 s\n", what_);
        std::_Exit(3);
      }
    }
  }
  std::atomic<bool> done_{false};
  std::atomic<Clock::rep> started_{0};
  char what_[512] = {};
  std::thread thread_;
};

// 1-8 changed bytes (random values, or bit flips), or a truncation.
std::string mutate(const std::string& bytes, std::mt19937_64& rng, std::string* how) {
  std::string out = bytes;
  const int kind = int(rng() % 4);
  if (kind == 0) {
    const size_t cut = rng() % out.size();
    out.resize(cut);
    *how = "cut at " + std::to_string(cut);
    return out;
  }
  const int changes = 1 + int(rng() % 8);
  *how = std::to_string(changes) + " bytes changed:";
  for (int i = 0; i < changes; ++i) {
    const size_t at = rng() % out.size();
    if (kind == 1) {
      out[at] = char(rng());
    } else if (kind == 2) {
      out[at] ^= char(1u << (rng() % 8));
    } else {  // the values that most often become lengths and addresses
      const char extremes[] = {'\0', '\xff', '\x7f', '\x80', '\x01'};
      out[at] = extremes[rng() % sizeof extremes];
    }
    *how += " " + std::to_string(at);
  }
  return out;
}

class ModelDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tconv3d_damage_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Loads kMutantsPerFile damaged copies of `bytes` (saved as `name`).
  void damage(const std::string& name, const std::string& bytes, const ModelOptions& options, uint64_t seed) {
    std::mt19937_64 rng(seed);
    ModelOptions opts = options;
    opts.specialize_at_load = false;  // the parsers are under test, not the JIT
    int loaded = 0, refused = 0;
    for (int i = 0; i < kMutantsPerFile; ++i) {
      std::string how;
      const std::string mutant = mutate(bytes, rng, &how);
      const std::string path = (dir_ / name).string();
      std::ofstream(path, std::ios::binary | std::ios::trunc) << mutant;
      SCOPED_TRACE(name + " mutant " + std::to_string(i) + ": " + how);
      watchdog_.start(name + " mutant " + std::to_string(i) + ": " + how);
      const auto start = Clock::now();
      try {
        Model::load(path, opts);
        ++loaded;
      } catch (const Error& e) {
        ++refused;
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << "the error names the file: " << e.what();
      }
      watchdog_.stop();
      EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), kMaxSecondsPerLoad);
    }
    EXPECT_EQ(loaded + refused, kMutantsPerFile);
    EXPECT_GT(refused, 0) << "no mutant of " << name << " was refused: is the damage reaching the parser?";
  }

  fs::path dir_;
  Watchdog watchdog_;
};

TEST_F(ModelDamage, TfKerasH5Files) {
  uint64_t seed = 1;
  for (const char* name : {"tfk_gan_generator.h5", "k3_unet_decoder.h5", "tfk_nested_legacy_weights.h5"}) {
    ModelOptions options;
    if (std::string(name).find("legacy_weights") != std::string::npos)
      options.config_path = (kModels / "tfk_nested.config.json").string();
    damage(name, model::read_file_bytes((kModels / name).string()), options, seed++);
  }
}

// The weights inside a .keras zip, damaged after unzipping (damage to the zip
// itself mostly stops at its checksums), loaded with the zip's own config.
TEST_F(ModelDamage, WeightsInsideKerasZips) {
  uint64_t seed = 100;
  for (const char* model : {"k3_nested", "tfk_video"}) {
    const std::string zip_path = (kModels / (std::string(model) + ".keras")).string();
    const auto members = model::read_zip_members(model::read_file_bytes(zip_path), zip_path);
    const std::string config = (dir_ / "config.json").string();
    std::ofstream(config, std::ios::binary | std::ios::trunc) << members.at("config.json");
    ModelOptions options;
    options.config_path = config;
    damage(std::string(model) + ".weights.h5", members.at("model.weights.h5"), options, seed++);
  }
}

TEST_F(ModelDamage, KerasZipsAndOnnxFiles) {
  uint64_t seed = 200;
  for (const char* name : {"k3_unet_decoder.keras", "onnx_torch_pad1_outpad1.onnx", "onnx_chain_no_shapes.onnx"})
    damage(name, model::read_file_bytes((kModels / name).string()), {}, seed++);
}

// Deep nesting would exhaust the stack in code that copies or walks the JSON.
TEST_F(ModelDamage, DeeplyNestedConfigJsonIsRefused) {
  const std::string config = (dir_ / "deep.json").string();
  std::ofstream(config, std::ios::binary | std::ios::trunc) << std::string(200000, '[') << std::string(200000, ']');
  ModelOptions options;
  options.config_path = config;
  try {
    Model::load((kModels / "k3_nested.weights.h5").string(), options);
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deep.json: invalid JSON: nested deeper than"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tconv3d

#else

TEST(ModelDamage, NotBuilt) { GTEST_SKIP() << "built without model loading"; }

#endif
