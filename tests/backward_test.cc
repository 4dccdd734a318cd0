// Layer::backward on the portable backends: the generic kernels against the
// reference on hundreds of random layers, bitwise identity across thread
// counts, skipped outputs, bad input, the C API and the CLI.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/activation.hpp"
#include "core/activation_gradient.hpp"
#include "core/cpu_features.hpp"
#include "runtime/kernels/generic_backward.hpp"
#include "runtime/kernels/reference_backward.hpp"
#include "tconv3d/layer.hpp"
#include "tconv3d/tconv3d.h"
#include "tests/backward_test_support.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;

const std::vector<const char*> kActivations = {
    "linear", "relu", "leaky_relu", "relu6", "elu", "celu", "selu", "softplus", "softsign", "squareplus",
    "soft_shrink", "hard_shrink", "sparse_plus", "silu", "hard_silu", "gelu", "tanh", "tanh_shrink", "hard_tanh",
    "sigmoid", "hard_sigmoid", "sparse_sigmoid", "log_sigmoid", "exponential", "mish", "softmax", "log_softmax",
    "glu", "sparsemax"};

using testing::backward;
using testing::BackwardData;
using testing::Grads;
using testing::make_backward_data;
using testing::make_layer;

// A random layer small enough for the reference, with any activation.
testing::RandomCase backward_case(std::mt19937_64& rng) {
  return testing::backward_case(rng, kActivations);
}

TEST(GenericBackward, MatchesTheReferenceOnRandomLayers) {
  std::mt19937_64 rng(16);
  for (int i = 0; i < 300; ++i) {
    const testing::RandomCase c = backward_case(rng);
    SCOPED_TRACE(c.describe());
    const BackwardData p = make_backward_data(c, rng);
    const Grads want = backward(make_layer(c, p, Backend::kReference, 1), p);
    for (Backend backend : {Backend::kGeneric, Backend::kAuto}) {
      const Grads got = backward(make_layer(c, p, backend, 2), p);
      EXPECT_LE(testing::scaled_max_error(got.dx, want.dx), 2e-5) << to_string(backend);
      EXPECT_LE(testing::scaled_max_error(got.dk, want.dk), 2e-5) << to_string(backend);
      // The bias gradient does not depend on the backend's kernels, only on z's recompute.
      EXPECT_LE(testing::scaled_max_error(got.db, want.db), 2e-5) << to_string(backend);
    }
    if (HasFailure()) break;
  }
}

// The generic loops' instruction sets this CPU runs (an ISA it lacks is
// reported, not silently passed).
std::vector<generic::GenericIsa> runnable_isas() {
  std::vector<generic::GenericIsa> isas = {generic::GenericIsa::kSse2};
  const CpuFeatures cpu = cpu_features();
  if (cpu.avx2_fma) isas.push_back(generic::GenericIsa::kAvx2);
  else std::printf("this CPU has no AVX2+FMA: the generic backward's AVX2 code is not tested here\n");
  if (cpu.avx512) isas.push_back(generic::GenericIsa::kAvx512);
  else std::printf("this CPU has no AVX-512: the generic backward's AVX-512 code is not tested here\n");
  return isas;
}

// The kernels alone, without the layer: straight against the reference loops.
TEST(GenericBackward, KernelsMatchTheReferenceLoops) {
  std::mt19937_64 rng(99);
  for (int i = 0; i < 100; ++i) {
    testing::RandomCase c = backward_case(rng);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    SCOPED_TRACE(c.describe());
    const std::vector<float> x = testing::random_tensor(g.input_elements(), rng);
    const std::vector<float> k = testing::random_tensor(g.kernel_elements(), rng);
    const std::vector<float> dz = testing::random_tensor(g.output_elements(), rng);
    std::vector<float> dx_ref(x.size()), dk_ref(k.size());
    reference_input_gradient(g, k.data(), dz.data(), dx_ref.data());
    reference_kernel_gradient(g, x.data(), dz.data(), dk_ref.data());
    for (generic::GenericIsa isa : runnable_isas()) {
      SCOPED_TRACE(generic::to_string(isa));
      std::vector<float> dx(x.size()), dk(k.size()), dx1(x.size()), dk1(k.size());
      generic_input_gradient(g, k.data(), dz.data(), dx.data(), 3, isa);
      generic_kernel_gradient(g, x.data(), dz.data(), dk.data(), 3, isa);
      EXPECT_LE(testing::scaled_max_error(dx, dx_ref), 2e-5);
      EXPECT_LE(testing::scaled_max_error(dk, dk_ref), 2e-5);
      // Each ISA's code is bitwise independent of the thread count.
      generic_input_gradient(g, k.data(), dz.data(), dx1.data(), 1, isa);
      generic_kernel_gradient(g, x.data(), dz.data(), dk1.data(), 1, isa);
      EXPECT_EQ(std::memcmp(dx.data(), dx1.data(), dx.size() * sizeof(float)), 0);
      EXPECT_EQ(std::memcmp(dk.data(), dk1.data(), dk.size() * sizeof(float)), 0);
    }
  }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST(GenericBackward, BitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 25; ++i) {
    const testing::RandomCase c = backward_case(rng);
    SCOPED_TRACE(c.describe());
    const BackwardData p = make_backward_data(c, rng);
    for (Backend backend : {Backend::kGeneric, Backend::kAuto}) {
      const Grads one = backward(make_layer(c, p, backend, 1), p);
      for (int threads : {2, 3, 7}) {
        const Grads many = backward(make_layer(c, p, backend, threads), p);
        EXPECT_TRUE(same_bits(one.dx, many.dx)) << threads << " threads, dx";
        EXPECT_TRUE(same_bits(one.dk, many.dk)) << threads << " threads, dk";
        EXPECT_TRUE(same_bits(one.db, many.db)) << threads << " threads, db";
      }
    }
  }
}

// A fixed layer for the API tests: channels_first exercises the transposes.
testing::RandomCase fixed_case(const char* activation, DataFormat format = DataFormat::kChannelsFirst,
                               bool bias = true) {
  testing::RandomCase c;
  c.config.filters = 6;
  c.config.kernel_size = {3, 2, 3};
  c.config.strides = {2, 1, 2};
  c.config.padding = Padding::kSame;
  c.config.data_format = format;
  c.config.use_bias = bias;
  c.config.activation = parse_activation_name(activation, Flavor::kKeras3);
  c.input_shape = format == DataFormat::kChannelsFirst ? std::vector<int64_t>{2, 5, 3, 4, 3}
                                                       : std::vector<int64_t>{2, 3, 4, 3, 5};
  return c;
}

TEST(LayerBackward, SkippedOutputsGiveTheSameValues) {
  std::mt19937_64 rng(3);
  for (const char* act : {"linear", "relu", "silu", "softmax", "glu"}) {
    for (DataFormat format : {DataFormat::kChannelsFirst, DataFormat::kChannelsLast}) {
      const testing::RandomCase c = fixed_case(act, format);
      SCOPED_TRACE(c.describe());
      const BackwardData p = make_backward_data(c, rng);
      const Layer layer = make_layer(c, p, Backend::kGeneric, 2);
      const Grads all = backward(layer, p);
      Grads alone{std::vector<float>(p.x.size()), std::vector<float>(p.k.size()), std::vector<float>(p.b.size())};
      // dx alone: x only where the activation needs z, y only where it reads y.
      const Activation& a = c.config.activation;
      layer.backward(needs_preactivation(a) ? p.x.data() : nullptr, needs_output(a) ? p.y.data() : nullptr,
                     p.dy.data(), alone.dx.data(), nullptr, nullptr);
      layer.backward(p.x.data(), p.y.data(), p.dy.data(), nullptr, alone.dk.data(), nullptr);
      layer.backward(needs_preactivation(a) ? p.x.data() : nullptr, needs_output(a) ? p.y.data() : nullptr,
                     p.dy.data(), nullptr, nullptr, alone.db.data());
      EXPECT_TRUE(same_bits(all.dx, alone.dx));
      EXPECT_TRUE(same_bits(all.dk, alone.dk));
      EXPECT_TRUE(same_bits(all.db, alone.db));
      // Nothing asked: nothing computed, no error.
      layer.backward(nullptr, nullptr, p.dy.data(), nullptr, nullptr, nullptr);
    }
  }
}

TEST(LayerBackward, ChannelsFirstMatchesChannelsLast) {
  // The same layer in both formats: gradients are transposes of each other.
  std::mt19937_64 rng(5);
  for (const char* act : {"tanh", "gelu", "log_softmax"}) {
    const testing::RandomCase last = fixed_case(act, DataFormat::kChannelsLast);
    const BackwardData p = make_backward_data(last, rng);
    const Grads want = backward(make_layer(last, p, Backend::kGeneric, 2), p);
    // Softmax-like activations act on the last axis, which differs between
    // formats: only elementwise ones map over.
    if (!last.config.activation.is_elementwise()) continue;
    testing::RandomCase first = last;
    first.config.data_format = DataFormat::kChannelsFirst;
    first.input_shape = {2, 5, 3, 4, 3};
    auto to_first = [](const std::vector<float>& v, int64_t n, int64_t s, int64_t ch) {
      std::vector<float> out(v.size());
      for (int64_t b = 0; b < n; ++b)
        for (int64_t i = 0; i < s; ++i)
          for (int64_t c = 0; c < ch; ++c) out[(b * ch + c) * s + i] = v[(b * s + i) * ch + c];
      return out;
    };
    BackwardData q = p;
    const Layer layer_first = make_layer(first, p, Backend::kGeneric, 2);
    const Shape5 out = layer_first.output_shape();
    const int64_t out_spatial = out[2] * out[3] * out[4];
    q.x = to_first(p.x, 2, 3 * 4 * 3, 5);
    q.y = to_first(p.y, 2, out_spatial, 6);
    q.dy = to_first(p.dy, 2, out_spatial, 6);
    const Grads got = backward(layer_first, q);
    EXPECT_LE(testing::scaled_max_error(got.dx, to_first(want.dx, 2, 3 * 4 * 3, 5)), 1e-6) << act;
    EXPECT_LE(testing::scaled_max_error(got.dk, want.dk), 1e-5) << act;
    EXPECT_LE(testing::scaled_max_error(got.db, want.db), 1e-5) << act;
  }
}

void expect_error(const std::function<void()>& f, const std::string& argument) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one naming " << argument;
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
  }
}

TEST(LayerBackward, BadInputNamesTheArgument) {
  std::mt19937_64 rng(9);
  const testing::RandomCase relu = fixed_case("relu");
  const BackwardData p = make_backward_data(relu, rng);
  const Layer layer = make_layer(relu, p, Backend::kGeneric, 1);
  Grads g{std::vector<float>(p.x.size()), std::vector<float>(p.k.size()), std::vector<float>(p.b.size())};
  expect_error([&] { layer.backward(p.x.data(), p.y.data(), nullptr, g.dx.data(), nullptr, nullptr); }, "dy");
  expect_error([&] { layer.backward(nullptr, p.y.data(), p.dy.data(), nullptr, g.dk.data(), nullptr); }, "x");
  expect_error([&] { layer.backward(p.x.data(), nullptr, p.dy.data(), g.dx.data(), nullptr, nullptr); }, "y");
  // Output overlapping an input, or another output.
  std::vector<float> shared(p.dy);
  expect_error([&] { layer.backward(p.x.data(), p.y.data(), shared.data(), shared.data(), nullptr, nullptr); }, "dx");
  expect_error([&] { layer.backward(p.x.data(), p.y.data(), p.dy.data(), g.dk.data(), g.dk.data(), nullptr); }, "dx");

  const testing::RandomCase silu = fixed_case("silu");
  const BackwardData q = make_backward_data(silu, rng);
  const Layer needs_z = make_layer(silu, q, Backend::kGeneric, 1);
  expect_error([&] { needs_z.backward(nullptr, q.y.data(), q.dy.data(), g.dx.data(), nullptr, nullptr); }, "x");

  const testing::RandomCase no_bias = fixed_case("linear", DataFormat::kChannelsLast, false);
  const BackwardData r = make_backward_data(no_bias, rng);
  const Layer unbiased = make_layer(no_bias, r, Backend::kGeneric, 1);
  std::vector<float> db(6);
  expect_error([&] { unbiased.backward(r.x.data(), r.y.data(), r.dy.data(), nullptr, nullptr, db.data()); }, "db");
}

TEST(LayerBackward, CApiMatchesTheCppApiAndReportsErrors) {
  std::mt19937_64 rng(12);
  const testing::RandomCase c = fixed_case("elu");
  const BackwardData p = make_backward_data(c, rng);
  const std::string json = R"({"filters": 6, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "same",
                               "data_format": "channels_first", "activation": "elu"})";
  tconv3d_options options;
  tconv3d_options_init(&options);
  options.backend = TCONV3D_BACKEND_GENERIC;
  options.threads = 2;
  tconv3d_layer* layer = nullptr;
  char err[512];
  ASSERT_EQ(tconv3d_layer_create_from_json(json.c_str(), c.input_shape.data(), 5, p.k.data(), p.kshape.data(), 5,
                                           p.b.data(), int64_t(p.b.size()), &options, &layer, err, sizeof err),
            TCONV3D_OK)
      << err;
  const Grads want = backward(make_layer(c, p, Backend::kGeneric, 2), p);
  Grads got{std::vector<float>(p.x.size()), std::vector<float>(p.k.size()), std::vector<float>(p.b.size())};
  ASSERT_EQ(tconv3d_layer_backward(layer, p.x.data(), p.y.data(), p.dy.data(), got.dx.data(), got.dk.data(),
                                   got.db.data(), err, sizeof err),
            TCONV3D_OK)
      << err;
  EXPECT_STREQ(err, "");
  EXPECT_TRUE(same_bits(want.dx, got.dx));
  EXPECT_TRUE(same_bits(want.dk, got.dk));
  EXPECT_TRUE(same_bits(want.db, got.db));

  EXPECT_EQ(tconv3d_layer_backward(layer, p.x.data(), p.y.data(), nullptr, got.dx.data(), nullptr, nullptr, err,
                                   sizeof err),
            TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("dy"), std::string::npos) << err;
  EXPECT_EQ(tconv3d_layer_backward(nullptr, p.x.data(), p.y.data(), p.dy.data(), got.dx.data(), nullptr, nullptr,
                                   err, sizeof err),
            TCONV3D_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("layer"), std::string::npos) << err;
  tconv3d_layer_destroy(layer);
}

TEST(LayerBackward, CliRoundTrip) {
  std::mt19937_64 rng(21);
  const testing::RandomCase c = fixed_case("sigmoid");
  const BackwardData p = make_backward_data(c, rng);
  const fs::path dir = testing::fresh_temp_dir("backward_cli");
  const std::string layer_json = (dir / "layer.json").string();
  {
    std::ofstream out(layer_json);
    out << R"({"filters": 6, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "same",
               "data_format": "channels_first", "activation": "sigmoid"})";
  }
  const Layer layer = make_layer(c, p, Backend::kGeneric, 2);
  std::vector<float> y(size_t(layer.output_elements()));
  layer.forward(p.x.data(), y.data());
  const Shape5 out = layer.output_shape();
  auto file = [&](const char* name) { return (dir / name).string(); };
  write_npy(file("x.npy"), c.input_shape, p.x.data());
  write_npy(file("k.npy"), p.kshape, p.k.data());
  write_npy(file("b.npy"), {6}, p.b.data());
  write_npy(file("dy.npy"), std::vector<int64_t>(out.begin(), out.end()), p.dy.data());
  const testing::CliResult r =
      testing::run_cli({"backward", "--layer", layer_json, "--input", file("x.npy"), "--kernel", file("k.npy"),
                        "--bias", file("b.npy"), "--grad-output", file("dy.npy"), "--grad-input", file("dx.npy"),
                        "--grad-kernel", file("dk.npy"), "--grad-bias", file("db.npy"), "--backend", "generic",
                        "--threads", "3"},
                       dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  BackwardData q = p;
  q.y = y;
  const Grads want = backward(layer, q);
  EXPECT_TRUE(same_bits(read_npy(file("dx.npy")).data, want.dx));
  EXPECT_TRUE(same_bits(read_npy(file("dk.npy")).data, want.dk));
  EXPECT_TRUE(same_bits(read_npy(file("db.npy")).data, want.db));
  EXPECT_EQ(read_npy(file("dk.npy")).shape, p.kshape);

  // Bad input: a gradient of the wrong shape, a bias gradient without a bias.
  write_npy(file("bad.npy"), {1, 2, 3}, p.dy.data());
  const testing::CliResult bad =
      testing::run_cli({"backward", "--layer", layer_json, "--input", file("x.npy"), "--kernel", file("k.npy"),
                        "--bias", file("b.npy"), "--grad-output", file("bad.npy"), "--grad-input", file("dx2.npy")},
                       dir.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--grad-output"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(file("dx2.npy")));
  const testing::CliResult no_bias =
      testing::run_cli({"backward", "--layer", layer_json, "--input", file("x.npy"), "--kernel", file("k.npy"),
                        "--grad-output", file("dy.npy"), "--grad-input", file("dx2.npy"), "--grad-bias",
                        file("db2.npy")},
                       dir.string());
  EXPECT_EQ(no_bias.exit_code, 2);
  EXPECT_NE(no_bias.err.find("--grad-bias"), std::string::npos) << no_bias.err;
  EXPECT_FALSE(fs::exists(file("dx2.npy")));
  fs::remove_all(dir);
}

TEST(LayerBackward, ConcurrentCallsOnAFreshLayerAgree) {
  // The backward executor and the z recompute are built lazily by whichever
  // call comes first: concurrent first calls must still agree.
  std::mt19937_64 rng(31);
  const testing::RandomCase c = fixed_case("gelu");
  const BackwardData p = make_backward_data(c, rng);
  const Layer layer = make_layer(c, p, Backend::kGeneric, 1);
  std::vector<Grads> results(4);
  std::vector<std::thread> workers;
  for (auto& r : results) workers.emplace_back([&] { r = backward(layer, p); });
  for (auto& w : workers) w.join();
  for (const Grads& r : results) {
    EXPECT_TRUE(same_bits(r.dx, results[0].dx));
    EXPECT_TRUE(same_bits(r.dk, results[0].dk));
    EXPECT_TRUE(same_bits(r.db, results[0].db));
  }
}

TEST(LayerBackward, BenchTimesTheBackwardPass) {
  const fs::path dir = testing::fresh_temp_dir("backward_bench");
  const std::string layer_json = (dir / "layer.json").string();
  {
    std::ofstream out(layer_json);
    out << R"({"name": "tiny", "filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "silu"})";
  }
  for (const char* pass : {"backward", "forward+backward"}) {
    const testing::CliResult r = testing::run_cli({"bench", "--layer", layer_json, "--input-shape", "1,4,4,4,3",
                                                   "--pass", pass, "--json", "--min-time", "0", "--threads", "1", "--backend", "generic"},
                                                  dir.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json row = nlohmann::json::parse(r.out);
    EXPECT_EQ(row["pass"], pass);
    EXPECT_EQ(row["name"], "tiny");
    EXPECT_GT(row["ms"].get<double>(), 0.0);
    EXPECT_GT(row["gflops"].get<double>(), 0.0);
    EXPECT_NE(row["kernel"].get<std::string>().find("generic_dx"), std::string::npos) << row.dump();
  }
  const testing::CliResult bad = testing::run_cli(
      {"bench", "--layer", layer_json, "--input-shape", "1,4,4,4,3", "--pass", "sideways"}, dir.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--pass"), std::string::npos) << bad.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tconv3d
