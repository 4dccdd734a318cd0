// The C API (tconv3d.h): results equal the C++ Layer's, every error path
// returns its status and a message naming the argument, nothing throws.
#include "tconv3d/tconv3d.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cpu_features.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

extern "C" int tconv3d_c_api_smoke_from_c(char* why, size_t why_size);

namespace tconv3d {
namespace {

// A small layer with an even kernel, stride > 1 and same padding, channels_last.
constexpr const char* kConfig =
    R"({"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 3], "padding": "same",
        "activation": "relu", "use_bias": true})";

struct Weights {
  std::vector<int64_t> input_shape;
  std::vector<int64_t> kernel_shape;
  std::vector<float> input, kernel, bias;
};

Weights make_weights(std::vector<int64_t> input_shape, std::vector<int64_t> kernel_shape, int64_t filters,
                     uint64_t seed) {
  std::mt19937_64 rng(seed);
  Weights w;
  int64_t in_count = 1, k_count = 1;
  for (int64_t d : input_shape) in_count *= d;
  for (int64_t d : kernel_shape) k_count *= d;
  w.input = testing::random_tensor(in_count, rng);
  w.kernel = testing::random_tensor(k_count, rng);
  w.bias = testing::random_tensor(filters, rng);
  w.input_shape = std::move(input_shape);
  w.kernel_shape = std::move(kernel_shape);
  return w;
}

Weights default_weights() { return make_weights({2, 3, 4, 5, 6}, {3, 2, 3, 5, 6}, 5, 11); }

// The C API's create, failing the test with its message on error.
tconv3d_layer* create(const char* json, const Weights& w, const tconv3d_options* opts = nullptr) {
  tconv3d_layer* layer = nullptr;
  char err[512];
  const tconv3d_status status = tconv3d_layer_create_from_json(
      json, w.input_shape.data(), int(w.input_shape.size()), w.kernel.data(), w.kernel_shape.data(),
      int(w.kernel_shape.size()), w.bias.data(), int64_t(w.bias.size()), opts, &layer, err, sizeof err);
  EXPECT_EQ(status, TCONV3D_OK) << err;
  return layer;
}

std::vector<float> reference_output(const char* json, const Weights& w) {
  LayerOptions options;
  options.backend = Backend::kReference;
  const Layer layer = Layer::create(parse_layer_config(json), w.input_shape, {w.kernel.data(), w.kernel_shape},
                                    {w.bias.data(), {int64_t(w.bias.size())}}, options);
  std::vector<float> out(size_t(layer.output_elements()));
  layer.forward(w.input.data(), out.data());
  return out;
}

// Calls create with one argument spoiled and returns (status, message); checks
// that a failed create leaves *out NULL.
struct Failure {
  tconv3d_status status;
  std::string message;
};

Failure create_failure(const char* json, const int64_t* input_shape, int input_rank, const float* kernel,
                       const int64_t* kernel_shape, int kernel_rank, const float* bias, int64_t bias_len,
                       const tconv3d_options* opts = nullptr) {
  tconv3d_layer* layer = reinterpret_cast<tconv3d_layer*>(0x1);  // must be overwritten with NULL
  char err[512];
  std::memset(err, 'x', sizeof err);
  const tconv3d_status status = tconv3d_layer_create_from_json(json, input_shape, input_rank, kernel, kernel_shape,
                                                               kernel_rank, bias, bias_len, opts, &layer, err,
                                                               sizeof err);
  EXPECT_EQ(layer, nullptr);
  if (status == TCONV3D_OK) tconv3d_layer_destroy(layer);
  EXPECT_NE(std::memchr(err, '\0', sizeof err), nullptr) << "message not NUL-terminated";
  return {status, std::string(err)};
}

Failure create_failure(const char* json, const Weights& w, const tconv3d_options* opts = nullptr) {
  return create_failure(json, w.input_shape.data(), int(w.input_shape.size()), w.kernel.data(),
                        w.kernel_shape.data(), int(w.kernel_shape.size()), w.bias.data(), int64_t(w.bias.size()),
                        opts);
}

// A buffer of the layer's output size; empty (and the test failed) if the
// size query fails, so that a later forward into it is refused, not a crash.
std::vector<float> output_buffer(const tconv3d_layer* layer) {
  int64_t count = 0;
  EXPECT_EQ(tconv3d_layer_output_elements(layer, &count), TCONV3D_OK);
  return std::vector<float>(static_cast<size_t>(count));
}

// A failure with `status` and a non-empty message containing `needle`.
void expect_failure(const Failure& f, tconv3d_status status, const std::string& needle) {
  EXPECT_EQ(f.status, status) << f.message;
  EXPECT_FALSE(f.message.empty());
  EXPECT_NE(f.message.find(needle), std::string::npos) << "'" << f.message << "' lacks '" << needle << "'";
}

TEST(CApi, HeaderCompilesAndWorksFromC) {
  char why[512] = "";
  EXPECT_EQ(tconv3d_c_api_smoke_from_c(why, sizeof why), 0) << why;
}

TEST(CApi, ForwardMatchesReference) {
  const Weights w = default_weights();
  for (tconv3d_backend backend : {TCONV3D_BACKEND_AUTO, TCONV3D_BACKEND_GENERIC, TCONV3D_BACKEND_REFERENCE}) {
    for (int threads : {0, 1, 2}) {
      tconv3d_options opts;
      tconv3d_options_init(&opts);
      opts.backend = backend;
      opts.threads = threads;
      tconv3d_layer* layer = create(kConfig, w, &opts);
      ASSERT_NE(layer, nullptr);
      int64_t shape[5], in_shape[5], count = 0;
      ASSERT_EQ(tconv3d_layer_output_shape(layer, shape), TCONV3D_OK);
      ASSERT_EQ(tconv3d_layer_input_shape(layer, in_shape), TCONV3D_OK);
      ASSERT_EQ(tconv3d_layer_output_elements(layer, &count), TCONV3D_OK);
      // same padding: out = in * stride.
      EXPECT_EQ(std::vector<int64_t>(shape, shape + 5), (std::vector<int64_t>{2, 6, 4, 15, 5}));
      EXPECT_EQ(std::vector<int64_t>(in_shape, in_shape + 5), w.input_shape);
      EXPECT_EQ(count, 2 * 6 * 4 * 15 * 5);
      if (threads > 0) EXPECT_EQ(tconv3d_layer_threads(layer), threads);
      if (backend == TCONV3D_BACKEND_REFERENCE) EXPECT_STREQ(tconv3d_layer_backend(layer), "reference");
      if (backend == TCONV3D_BACKEND_GENERIC) EXPECT_STREQ(tconv3d_layer_backend(layer), "generic");
      EXPECT_STRNE(tconv3d_layer_kernel_name(layer), "");
      EXPECT_STRNE(tconv3d_layer_isa(layer), "");

      std::vector<float> out(size_t(count), NAN);
      char err[256];
      ASSERT_EQ(tconv3d_layer_forward(layer, w.input.data(), out.data(), err, sizeof err), TCONV3D_OK) << err;
      EXPECT_STREQ(err, "");
      EXPECT_LE(testing::scaled_max_error(out, reference_output(kConfig, w)), 1e-5)
          << "backend " << backend << " threads " << threads;
      tconv3d_layer_destroy(layer);
    }
  }
}

TEST(CApi, ChannelsFirstAndAxisActivation) {
  const char* json =
      R"({"class_name": "Conv3DTranspose", "config": {"filters": 6, "kernel_size": 2, "strides": 2,
          "data_format": "channels_first", "activation": "softmax", "use_bias": true}})";
  const Weights w = make_weights({1, 3, 2, 3, 4}, {2, 2, 2, 6, 3}, 6, 5);
  tconv3d_layer* layer = create(json, w);
  ASSERT_NE(layer, nullptr);
  int64_t shape[5];
  ASSERT_EQ(tconv3d_layer_output_shape(layer, shape), TCONV3D_OK);
  EXPECT_EQ(std::vector<int64_t>(shape, shape + 5), (std::vector<int64_t>{1, 6, 4, 6, 8}));
  std::vector<float> out(6 * 4 * 6 * 8);
  ASSERT_EQ(tconv3d_layer_forward(layer, w.input.data(), out.data(), nullptr, 0), TCONV3D_OK);
  EXPECT_LE(testing::scaled_max_error(out, reference_output(json, w)), 1e-5);
  tconv3d_layer_destroy(layer);
}

TEST(CApi, GluHalvesTheLastAxis) {
  const char* json = R"({"filters": 4, "kernel_size": 1, "activation": "glu"})";
  const Weights w = make_weights({1, 2, 2, 2, 3}, {1, 1, 1, 4, 3}, 4, 6);
  tconv3d_layer* layer = create(json, w);
  ASSERT_NE(layer, nullptr);
  int64_t shape[5], count = 0;
  ASSERT_EQ(tconv3d_layer_output_shape(layer, shape), TCONV3D_OK);
  ASSERT_EQ(tconv3d_layer_output_elements(layer, &count), TCONV3D_OK);
  EXPECT_EQ(shape[4], 2);
  EXPECT_EQ(count, 16);
  std::vector<float> out(static_cast<size_t>(count));
  ASSERT_EQ(tconv3d_layer_forward(layer, w.input.data(), out.data(), nullptr, 0), TCONV3D_OK);
  EXPECT_LE(testing::scaled_max_error(out, reference_output(json, w)), 1e-5);
  tconv3d_layer_destroy(layer);
}

TEST(CApi, InitializedLayersAreReproducible) {
  const int64_t input_shape[5] = {1, 3, 3, 3, 4};
  std::mt19937_64 rng(3);
  const std::vector<float> input = testing::random_tensor(3 * 3 * 3 * 4, rng);
  const char* json = R"({"filters": 3, "kernel_size": 3, "strides": 2, "bias_initializer": "ones"})";
  auto run = [&](uint64_t seed) {
    tconv3d_layer* layer = nullptr;
    char err[256];
    EXPECT_EQ(tconv3d_layer_create_initialized_from_json(json, input_shape, 5, seed, nullptr, &layer, err,
                                                         sizeof err),
              TCONV3D_OK)
        << err;
    std::vector<float> out = output_buffer(layer);
    EXPECT_EQ(tconv3d_layer_forward(layer, input.data(), out.data(), err, sizeof err), TCONV3D_OK) << err;
    tconv3d_layer_destroy(layer);
    return out;
  };
  const std::vector<float> a = run(42), b = run(42), c = run(43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Same weights as the C++ API draws for that seed.
  const Layer cpp = Layer::create_initialized(parse_layer_config(json), {1, 3, 3, 3, 4}, 42);
  std::vector<float> expected(static_cast<size_t>(cpp.output_elements()));
  cpp.forward(input.data(), expected.data());
  EXPECT_EQ(a, expected);
}

TEST(CApi, LossesMatchTheCppLayer) {
  const char* json =
      R"({"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 3], "padding": "same",
          "kernel_regularizer": {"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}},
          "bias_regularizer": "l2", "activity_regularizer": {"class_name": "L1", "config": {"l1": 0.5}}})";
  const Weights w = default_weights();
  tconv3d_layer* layer = create(json, w);
  ASSERT_NE(layer, nullptr);
  std::vector<float> out = output_buffer(layer);
  ASSERT_EQ(tconv3d_layer_forward(layer, w.input.data(), out.data(), nullptr, 0), TCONV3D_OK);
  double k = -1, b = -1, a = -1;
  ASSERT_EQ(tconv3d_layer_losses(layer, out.data(), &k, &b, &a), TCONV3D_OK);
  const Layer cpp = Layer::create(parse_layer_config(json), w.input_shape, {w.kernel.data(), w.kernel_shape},
                                  {w.bias.data(), {5}});
  const Layer::Losses expected = cpp.losses(out.data());
  EXPECT_GT(k, 0);
  EXPECT_GT(b, 0);
  EXPECT_GT(a, 0);
  EXPECT_DOUBLE_EQ(k, expected.kernel);
  EXPECT_DOUBLE_EQ(b, expected.bias);
  EXPECT_DOUBLE_EQ(a, expected.activity);
  ASSERT_EQ(tconv3d_layer_losses(layer, nullptr, &k, &b, &a), TCONV3D_OK);
  EXPECT_EQ(a, 0.0);
  EXPECT_EQ(tconv3d_layer_losses(layer, out.data(), nullptr, &b, &a), TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(tconv3d_layer_losses(nullptr, out.data(), &k, &b, &a), TCONV3D_INVALID_ARGUMENT);
  tconv3d_layer_destroy(layer);
}

TEST(CApi, WarningsAndFlavors) {
  // tf.keras 2.x dialect (groups, no dilation_rate): detected, and said so.
  const char* tf2 = R"({"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 3], "padding": "same",
                        "groups": 1})";
  const Weights w = default_weights();
  tconv3d_layer* layer = create(tf2, w);
  ASSERT_NE(layer, nullptr);
  ASSERT_GE(tconv3d_layer_warning_count(layer), 1);
  EXPECT_NE(std::string(tconv3d_layer_warning(layer, 0)).find("tf_keras2"), std::string::npos);
  EXPECT_EQ(tconv3d_layer_warning(layer, -1), nullptr);
  EXPECT_EQ(tconv3d_layer_warning(layer, tconv3d_layer_warning_count(layer)), nullptr);
  tconv3d_layer_destroy(layer);

  // A dilation tf.keras 2.x ignores: a warning, never a silent change.
  const char* dilated = R"({"filters": 5, "kernel_size": [3, 2, 3], "dilation_rate": 2})";
  tconv3d_options opts;
  tconv3d_options_init(&opts);
  opts.flavor = TCONV3D_FLAVOR_TF_KERAS2;
  layer = create(dilated, w, &opts);
  ASSERT_NE(layer, nullptr);
  ASSERT_EQ(tconv3d_layer_warning_count(layer), 1);
  EXPECT_NE(std::string(tconv3d_layer_warning(layer, 0)).find("dilation_rate"), std::string::npos);
  int64_t shape[5];
  ASSERT_EQ(tconv3d_layer_output_shape(layer, shape), TCONV3D_OK);
  EXPECT_EQ(shape[1], 3 + 3 - 1);  // valid, dilation ignored
  tconv3d_layer_destroy(layer);

  opts.flavor = TCONV3D_FLAVOR_KERAS3;
  layer = create(dilated, w, &opts);
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(tconv3d_layer_warning_count(layer), 0);
  ASSERT_EQ(tconv3d_layer_output_shape(layer, shape), TCONV3D_OK);
  EXPECT_EQ(shape[1], 3 + 2 * 2);  // valid, dilation 2: effective kernel 5
  tconv3d_layer_destroy(layer);
}

TEST(CApi, ConfigErrors) {
  const Weights w = default_weights();
  const std::pair<const char*, const char*> cases[] = {
      {"{\"filters\": 5, ", "invalid JSON"},
      {R"({"filters": 5, "kernel_size": 3, "padding": "circular"})", "padding"},
      {R"({"filters": 0, "kernel_size": 3})", "filters"},
      {R"({"filters": 5, "kernel_size": 3, "strides": 2, "dilation_rate": 2})", ""},  // any message
      {nullptr, "config_json"},
  };
  for (const auto& [json, needle] : cases) {
    SCOPED_TRACE(json ? json : "NULL");
    expect_failure(create_failure(json, w), TCONV3D_INVALID_ARGUMENT, needle);
  }
}

TEST(CApi, ShapeAndWeightErrors) {
  const Weights w = default_weights();
  const int64_t* in = w.input_shape.data();
  const int64_t* ks = w.kernel_shape.data();
  // Input shape: NULL, wrong rank, absurd rank, channel mismatch, zero size.
  expect_failure(create_failure(kConfig, nullptr, 5, w.kernel.data(), ks, 5, w.bias.data(), 5),
                 TCONV3D_INVALID_ARGUMENT, "input_shape");
  expect_failure(create_failure(kConfig, in, 4, w.kernel.data(), ks, 5, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT,
                 "rank 4");
  expect_failure(create_failure(kConfig, in, -1, w.kernel.data(), ks, 5, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT,
                 "input_shape");
  expect_failure(create_failure(kConfig, in, 1000, w.kernel.data(), ks, 5, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT,
                 "input_shape");
  const int64_t other_channels[5] = {2, 3, 4, 5, 7};
  expect_failure(create_failure(kConfig, other_channels, 5, w.kernel.data(), ks, 5, w.bias.data(), 5),
                 TCONV3D_INVALID_ARGUMENT, "kernel");
  const int64_t zero[5] = {2, 0, 4, 5, 6};
  expect_failure(create_failure(kConfig, zero, 5, w.kernel.data(), ks, 5, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT,
                 "input_shape");
  // Kernel: NULL data, NULL shape, wrong shape, wrong rank.
  expect_failure(create_failure(kConfig, in, 5, nullptr, ks, 5, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT, "kernel");
  expect_failure(create_failure(kConfig, in, 5, w.kernel.data(), nullptr, 5, w.bias.data(), 5),
                 TCONV3D_INVALID_ARGUMENT, "kernel_shape");
  const int64_t swapped[5] = {3, 2, 3, 6, 5};
  expect_failure(create_failure(kConfig, in, 5, w.kernel.data(), swapped, 5, w.bias.data(), 5),
                 TCONV3D_INVALID_ARGUMENT, "kernel");
  expect_failure(create_failure(kConfig, in, 5, w.kernel.data(), ks, 4, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT,
                 "kernel");
  // Bias: missing with use_bias true, given with use_bias false, wrong length, NULL with a length.
  expect_failure(create_failure(kConfig, in, 5, w.kernel.data(), ks, 5, nullptr, 0), TCONV3D_INVALID_ARGUMENT,
                 "use_bias is true");
  const char* no_bias = R"({"filters": 5, "kernel_size": [3, 2, 3], "use_bias": false})";
  expect_failure(create_failure(no_bias, in, 5, w.kernel.data(), ks, 5, w.bias.data(), 5), TCONV3D_INVALID_ARGUMENT,
                 "use_bias is false");
  expect_failure(create_failure(kConfig, in, 5, w.kernel.data(), ks, 5, w.bias.data(), 4), TCONV3D_INVALID_ARGUMENT,
                 "bias");
  expect_failure(create_failure(kConfig, in, 5, w.kernel.data(), ks, 5, nullptr, 5), TCONV3D_INVALID_ARGUMENT, "bias");
  // The output pointer itself.
  char err[256];
  EXPECT_EQ(tconv3d_layer_create_from_json(kConfig, in, 5, w.kernel.data(), ks, 5, w.bias.data(), 5, nullptr,
                                           nullptr, err, sizeof err),
            TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("out"), std::string::npos) << err;
}

// Stores an int into an enum field the way a C caller may, without a C++
// conversion to an out-of-range enum value (undefined behaviour).
template <typename Enum>
void set_raw(Enum& field, int value) {
  static_assert(sizeof(Enum) == sizeof(int));
  std::memcpy(&field, &value, sizeof value);
}

TEST(CApi, OptionErrors) {
  const Weights w = default_weights();
  // Each case spoils one field of otherwise default options.
  const std::pair<void (*)(tconv3d_options&), const char*> cases[] = {
      {[](tconv3d_options& o) { o.threads = -1; }, "threads"},
      {[](tconv3d_options& o) { set_raw(o.backend, 42); }, "backend"},
      {[](tconv3d_options& o) { set_raw(o.isa, -3); }, "isa"},
      {[](tconv3d_options& o) { set_raw(o.flavor, 9); }, "flavor"},
  };
  for (const auto& [spoil, needle] : cases) {
    SCOPED_TRACE(needle);
    tconv3d_options opts;
    tconv3d_options_init(&opts);
    spoil(opts);
    expect_failure(create_failure(kConfig, w, &opts), TCONV3D_INVALID_ARGUMENT, needle);
  }
}

TEST(CApi, UnavailableIsaIsUnsupported) {
  const Weights w = default_weights();
  tconv3d_options opts;
  tconv3d_options_init(&opts);
  opts.isa = TCONV3D_ISA_AVX512;
  opts.backend = TCONV3D_BACKEND_GENERIC;
  if (cpu_features().avx512) {  // where the CPU runs it, forcing it works
    tconv3d_layer* layer = create(kConfig, w, &opts);
    EXPECT_NE(layer, nullptr);
    tconv3d_layer_destroy(layer);
  }
  // As on a CPU without AVX-512: forcing it is refused, whatever this host has.
  const ScopedCpuFeatureMask no_avx512(CpuFeature::kAvx512);
  expect_failure(create_failure(kConfig, w, &opts), TCONV3D_UNSUPPORTED, "avx512");
}

TEST(CApi, BackendMissingFromTheBuildIsUnsupported) {
  // Each optional backend is either built in (and then works) or reported as
  // UNSUPPORTED, never as a bad argument or an internal error.
  const Weights w = default_weights();
  for (tconv3d_backend backend : {TCONV3D_BACKEND_XBYAK, TCONV3D_BACKEND_LLVM}) {
    tconv3d_options opts;
    tconv3d_options_init(&opts);
    opts.backend = backend;
    tconv3d_layer* layer = nullptr;
    char err[512];
    const tconv3d_status status =
        tconv3d_layer_create_from_json(kConfig, w.input_shape.data(), 5, w.kernel.data(), w.kernel_shape.data(), 5,
                                       w.bias.data(), 5, &opts, &layer, err, sizeof err);
    if (status == TCONV3D_OK) {
      std::vector<float> out = output_buffer(layer);
      ASSERT_EQ(tconv3d_layer_forward(layer, w.input.data(), out.data(), err, sizeof err), TCONV3D_OK) << err;
      EXPECT_LE(testing::scaled_max_error(out, reference_output(kConfig, w)), 1e-5) << tconv3d_layer_backend(layer);
      tconv3d_layer_destroy(layer);
    } else {
      EXPECT_EQ(status, TCONV3D_UNSUPPORTED) << err;
      EXPECT_NE(std::string(err).find("backend"), std::string::npos) << err;
      EXPECT_EQ(layer, nullptr);
    }
  }
}

TEST(CApi, TooLargeIsOutOfMemoryNotACrash) {
  // 4000^3 input samples and 16 filters: a 4 TB output, under the 2^40
  // element limit but beyond any machine's memory.
  const char* json = R"({"filters": 16, "kernel_size": 1, "use_bias": false})";
  const int64_t input_shape[5] = {1, 4000, 4000, 4000, 1};
  const int64_t kernel_shape[5] = {1, 1, 1, 16, 1};
  const std::vector<float> kernel(16, 1.0f);
  expect_failure(create_failure(json, input_shape, 5, kernel.data(), kernel_shape, 5, nullptr, 0),
                 TCONV3D_OUT_OF_MEMORY, "memory");

  // Beyond 2^40 elements: refused as an invalid size.
  const int64_t huge[5] = {1000, 1000000, 1000000, 1000000, 1};
  expect_failure(create_failure(json, huge, 5, kernel.data(), kernel_shape, 5, nullptr, 0), TCONV3D_INVALID_ARGUMENT,
                 "overflows");
}

TEST(CApi, ForwardErrors) {
  const Weights w = default_weights();
  tconv3d_layer* layer = create(kConfig, w);
  ASSERT_NE(layer, nullptr);
  std::vector<float> out = output_buffer(layer);
  ASSERT_FALSE(out.empty());
  char err[256];
  EXPECT_EQ(tconv3d_layer_forward(layer, nullptr, out.data(), err, sizeof err), TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("input"), std::string::npos) << err;
  EXPECT_EQ(tconv3d_layer_forward(layer, w.input.data(), nullptr, err, sizeof err), TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("output"), std::string::npos) << err;
  EXPECT_EQ(tconv3d_layer_forward(nullptr, w.input.data(), out.data(), err, sizeof err), TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("layer"), std::string::npos) << err;
  // In-place is refused: the output overlaps the input.
  std::vector<float> shared(out.size() + w.input.size());
  EXPECT_EQ(tconv3d_layer_forward(layer, shared.data(), shared.data() + 8, err, sizeof err),
            TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("overlaps"), std::string::npos) << err;
  // Adjacent but disjoint buffers are fine.
  std::copy(w.input.begin(), w.input.end(), shared.begin());
  EXPECT_EQ(tconv3d_layer_forward(layer, shared.data(), shared.data() + w.input.size(), err, sizeof err),
            TCONV3D_OK)
      << err;
  // The shape queries refuse NULL too.
  int64_t shape[5];
  EXPECT_EQ(tconv3d_layer_output_shape(nullptr, shape), TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(tconv3d_layer_output_shape(layer, nullptr), TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(tconv3d_layer_input_shape(nullptr, shape), TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(tconv3d_layer_output_elements(layer, nullptr), TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(tconv3d_layer_warning_count(nullptr), 0);
  EXPECT_STREQ(tconv3d_layer_backend(nullptr), "");
  tconv3d_layer_destroy(layer);
  tconv3d_layer_destroy(nullptr);
}

TEST(CApi, MessagesAreTruncatedAndOptional) {
  const Weights w = default_weights();
  char small[8];
  std::memset(small, 'x', sizeof small);
  const Failure full = create_failure("not json", w);
  tconv3d_layer* layer = nullptr;
  EXPECT_EQ(tconv3d_layer_create_from_json("not json", w.input_shape.data(), 5, w.kernel.data(),
                                           w.kernel_shape.data(), 5, w.bias.data(), 5, nullptr, &layer, small,
                                           sizeof small),
            TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(std::strlen(small), sizeof small - 1);
  EXPECT_EQ(std::string(small), full.message.substr(0, sizeof small - 1));
  // No buffer at all: the status alone.
  EXPECT_EQ(tconv3d_layer_create_from_json("not json", w.input_shape.data(), 5, w.kernel.data(),
                                           w.kernel_shape.data(), 5, w.bias.data(), 5, nullptr, &layer, nullptr, 0),
            TCONV3D_INVALID_ARGUMENT);
  // A buffer of size 0 is never written.
  char untouched = 'u';
  EXPECT_EQ(tconv3d_layer_create_from_json("not json", w.input_shape.data(), 5, w.kernel.data(),
                                           w.kernel_shape.data(), 5, w.bias.data(), 5, nullptr, &layer, &untouched,
                                           0),
            TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(untouched, 'u');
}

TEST(CApi, StatusNames) {
  EXPECT_STREQ(tconv3d_status_name(TCONV3D_OK), "OK");
  EXPECT_STREQ(tconv3d_status_name(TCONV3D_INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_STREQ(tconv3d_status_name(TCONV3D_UNSUPPORTED), "UNSUPPORTED");
  EXPECT_STREQ(tconv3d_status_name(TCONV3D_OUT_OF_MEMORY), "OUT_OF_MEMORY");
  EXPECT_STREQ(tconv3d_status_name(TCONV3D_INTERNAL), "INTERNAL");
}

TEST(CApi, ConcurrentCallsKeepTheirOwnMessagesAndResults) {
  // No shared error state: each thread's failure message lands in its own
  // buffer, while other threads run the same layer.
  const Weights w = default_weights();
  tconv3d_options opts;
  tconv3d_options_init(&opts);
  opts.threads = 1;
  tconv3d_layer* layer = create(kConfig, w, &opts);
  ASSERT_NE(layer, nullptr);
  const std::vector<float> expected = reference_output(kConfig, w);
  std::vector<std::string> messages(4);
  std::vector<double> errors(4, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      char err[256];
      for (int i = 0; i < 5; ++i) {
        if (t % 2) {
          const std::string json = "{\"filters\": " + std::to_string(-t) + ", \"kernel_size\": 1}";
          tconv3d_layer* bad = nullptr;
          tconv3d_layer_create_from_json(json.c_str(), w.input_shape.data(), 5, w.kernel.data(),
                                         w.kernel_shape.data(), 5, w.bias.data(), 5, nullptr, &bad, err, sizeof err);
          messages[size_t(t)] = err;
        } else {
          std::vector<float> out(expected.size());
          tconv3d_layer_forward(layer, w.input.data(), out.data(), err, sizeof err);
          errors[size_t(t)] = testing::scaled_max_error(out, expected);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_NE(messages[1].find("filters=-1"), std::string::npos) << messages[1];
  EXPECT_NE(messages[3].find("filters=-3"), std::string::npos) << messages[3];
  EXPECT_LE(errors[0], 1e-5);
  EXPECT_LE(errors[2], 1e-5);
  tconv3d_layer_destroy(layer);
}

}  // namespace
}  // namespace tconv3d
