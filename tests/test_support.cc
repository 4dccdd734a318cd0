#include "tests/test_support.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/activation.hpp"
#include "tconv3d/geometry.hpp"
#include "tools/support/accuracy.hpp"

extern char** environ;

namespace tconv3d::testing {

namespace {

std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

namespace {

// This process's environment with `extra` ("NAME=value") added or replacing.
std::vector<std::string> child_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const bool replaced = std::any_of(extra.begin(), extra.end(),
                                      [&](const std::string& x) { return name_of(x) == name_of(entry); });
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

}  // namespace

CliResult run_cli(const std::vector<std::string>& args, const std::string& capture_dir,
                  const std::vector<std::string>& env) {
  // A fresh folder per call: tests that share a capture_dir (the temp dir)
  // run in parallel under ctest -j.
  std::string folder = capture_dir + "/cli-XXXXXX";
  if (!mkdtemp(folder.data())) {
    ADD_FAILURE() << "cannot create a capture folder in " << capture_dir << ": " << std::strerror(errno);
    return {};
  }
  const std::string out_path = folder + "/stdout.txt", err_path = folder + "/stderr.txt";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> storage = {TCONV3D_CLI_PATH};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = child_environment(env);
  std::vector<char*> envp;
  for (std::string& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  CliResult result;
  const int spawned = posix_spawn(&pid, TCONV3D_CLI_PATH, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    ADD_FAILURE() << "cannot start " << TCONV3D_CLI_PATH << ": " << std::strerror(spawned);
    return result;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  result.out = slurp_file(out_path);
  result.err = slurp_file(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  rmdir(folder.c_str());
  return result;
}

int run_shell(const std::string& command, std::string* output) {
  std::string text;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  const int status = pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool have_c_compiler() { return run_shell("command -v cc") == 0; }

ScopedEnv::ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
  if (const char* old = std::getenv(name)) old_ = old;
  if (value) setenv(name, value->c_str(), 1);
  else unsetenv(name);
}

ScopedEnv::~ScopedEnv() {
  if (old_) setenv(name_, old_->c_str(), 1);
  else unsetenv(name_);
}

std::filesystem::path fresh_temp_dir(const std::string& tag) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tconv3d_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<float> random_tensor(int64_t count, std::mt19937_64& rng, float low, float high) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = dist(rng);
  return v;
}

double scaled_max_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  return tconv3d::scaled_max_error(actual.data(), expected.data(), expected.size());
}

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint32_t bits_of(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

LayerConfig config_of(int64_t filters, int64_t k, int64_t s, Padding padding) {
  LayerConfig c;
  c.filters = filters;
  c.kernel_size = {k, k, k};
  c.strides = {s, s, s};
  c.padding = padding;
  return c;
}

RandomLayerData random_layer_data(const ConvGeometry& g, std::mt19937_64& rng) {
  RandomLayerData d;
  d.kernel_shape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels};
  d.kernel = random_tensor(g.kernel_elements(), rng);
  d.bias = random_tensor(g.out_channels, rng);
  d.input = random_tensor(g.input_elements(), rng);
  return d;
}

std::string RandomCase::describe() const {
  std::ostringstream out;
  const LayerConfig& c = config;
  out << "input=" << shape_to_string(input_shape) << " filters=" << c.filters << " k=(" << c.kernel_size[0] << ","
      << c.kernel_size[1] << "," << c.kernel_size[2] << ") s=(" << c.strides[0] << "," << c.strides[1] << ","
      << c.strides[2] << ") d=(" << c.dilation_rate[0] << "," << c.dilation_rate[1] << "," << c.dilation_rate[2]
      << ") pad=" << to_string(c.padding) << " op=";
  if (c.output_padding)
    out << "(" << (*c.output_padding)[0] << "," << (*c.output_padding)[1] << "," << (*c.output_padding)[2] << ")";
  else
    out << "None";
  out << " fmt=" << to_string(c.data_format) << " act=" << c.activation.name << " bias=" << c.use_bias
      << " flavor=" << to_string(c.flavor);
  return out.str();
}

RandomCase random_case(std::mt19937_64& rng, bool elementwise_activation_only) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  static const char* kActivations[] = {"linear", "relu", "sigmoid", "elu", "tanh", "gelu", "silu",
                                       "leaky_relu", "hard_sigmoid", "softplus", "mish", "relu6"};
  static const char* kAxisActivations[] = {"softmax", "log_softmax", "glu", "sparsemax"};
  for (;;) {
    RandomCase rc;
    LayerConfig& c = rc.config;
    c.filters = pick(1, 40);
    const bool dilated = pick(0, 4) == 0;
    for (int a = 0; a < 3; ++a) {
      c.kernel_size[a] = pick(1, 5);
      c.strides[a] = dilated ? 1 : pick(1, 3);
      c.dilation_rate[a] = dilated ? pick(1, 3) : 1;
    }
    c.padding = pick(0, 1) ? Padding::kSame : Padding::kValid;
    if (pick(0, 2) == 0) {
      Triple op;
      for (int a = 0; a < 3; ++a) op[a] = pick(0, c.strides[a] - 1);
      c.output_padding = op;
    }
    c.data_format = pick(0, 3) == 0 ? DataFormat::kChannelsFirst : DataFormat::kChannelsLast;
    c.use_bias = pick(0, 4) != 0;
    if (!elementwise_activation_only && pick(0, 5) == 0) {
      c.activation = parse_activation_name(kAxisActivations[pick(0, 3)], Flavor::kKeras3);
    } else {
      c.activation = parse_activation_name(kActivations[pick(0, 11)], Flavor::kKeras3);
    }
    const int64_t batch = pick(0, 3) == 0 ? pick(2, 3) : 1;
    const int64_t channels = pick(1, 37);
    int64_t spatial[3];
    for (int a = 0; a < 3; ++a) spatial[a] = pick(1, 7);
    if (c.data_format == DataFormat::kChannelsLast)
      rc.input_shape = {batch, spatial[0], spatial[1], spatial[2], channels};
    else
      rc.input_shape = {batch, channels, spatial[0], spatial[1], spatial[2]};
    try {
      const ConvGeometry g = resolve_geometry(c, rc.input_shape);
      if (c.activation.kind == ActivationKind::kGlu && g.output_shape()[4] % 2) continue;
      if (g.output_elements() > 400000 || g.flops() > 4e7) continue;
    } catch (const std::exception&) {
      continue;
    }
    return rc;
  }
}

std::optional<RandomCase> random_lane_packed_case(std::mt19937_64& rng, int64_t lanes) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  RandomCase c = random_case(rng);
  LayerConfig& config = c.config;
  config.dilation_rate = {1, 1, 1};
  config.strides[2] = pick(2, 4);
  config.filters = pick(1, std::max<int64_t>(1, lanes / config.strides[2]));
  config.kernel_size[2] = pick(1, 6);
  if (config.output_padding) {
    Triple& op = *config.output_padding;
    op[2] = pick(0, config.strides[2] - 1);
    for (int a = 0; a < 2; ++a)
      if (op[a] >= config.strides[a]) op[a] = 0;
  }
  c.input_shape[config.data_format == DataFormat::kChannelsLast ? 3 : 4] = pick(1, 12);
  try {
    resolve_geometry(config, c.input_shape);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return c;
}

double compare_with_reference(const RandomCase& c, const LayerOptions& options, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  const RandomLayerData d = random_layer_data(g, rng);
  const ConstTensor k{d.kernel.data(), d.kernel_shape};
  const ConstTensor b = c.config.use_bias ? ConstTensor{d.bias.data(), {g.out_channels}} : ConstTensor{};
  LayerOptions ref_options;
  ref_options.backend = Backend::kReference;
  const Layer reference = Layer::create(c.config, c.input_shape, k, b, ref_options);
  const Layer tested = Layer::create(c.config, c.input_shape, k, b, options);
  std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
  std::vector<float> actual(static_cast<size_t>(tested.output_elements()), NAN);
  reference.forward(d.input.data(), expected.data());
  tested.forward(d.input.data(), actual.data());
  return scaled_max_error(actual, expected);
}

}  // namespace tconv3d::testing
