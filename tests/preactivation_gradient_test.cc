// The backward pass's first step (runtime/preactivation_gradient.hpp): dz and
// db in the layer's format, and for channels_first the fused pass that writes
// dz in channels_last order; then a channels_first Layer::backward large
// enough that these passes split into many work items.
#include "runtime/preactivation_gradient.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "core/activation_gradient.hpp"
#include "tconv3d/config.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

struct Data {
  ConvGeometry g;
  Activation act;
  std::vector<float> z, y, dy;
};

// z, y = act(z) and dy for a layer's output (y, dy: GLU's halved last axis).
Data make_data(const LayerConfig& config, const std::vector<int64_t>& input_shape, std::mt19937_64& rng) {
  Data d;
  d.g = resolve_geometry(config, input_shape);
  d.act = config.activation;
  const int64_t pre = d.g.output_elements();
  const int64_t out = d.act.kind == ActivationKind::kGlu ? pre / 2 : pre;
  d.z = testing::random_tensor(pre, rng, -3.0f, 3.0f);
  // y only matters where the derivative is read from it: elementwise, as
  // the activation computes it; axis activations get values in (0, 1).
  d.y.resize(static_cast<size_t>(out));
  if (d.act.is_elementwise()) {
    for (int64_t i = 0; i < pre; ++i) d.y[i] = static_cast<float>(apply_elementwise(d.act, double(d.z[i])));
  } else {
    d.y = testing::random_tensor(out, rng, 0.01f, 0.99f);
  }
  d.dy = testing::random_tensor(out, rng);
  return d;
}

LayerConfig config_for(const char* activation, DataFormat format, int64_t filters) {
  LayerConfig c = testing::config_of(filters, 2, 2, Padding::kValid);
  c.data_format = format;
  c.use_bias = true;
  c.activation = parse_activation_name(activation, Flavor::kKeras3);
  return c;
}

// dz by the per-value definition, and db summed in double, in the layer's format.
void expected(const Data& d, std::vector<float>& dz, std::vector<double>& db) {
  const int64_t pre = d.g.output_elements(), filters = d.g.out_channels;
  const int64_t spatial = pre / (d.g.batch * filters), length = d.g.output_shape()[4];
  dz.resize(static_cast<size_t>(pre));
  activation_gradient_rows(d.act, d.z.data(), d.y.data(), d.dy.data(), dz.data(), pre / length, length);
  db.assign(static_cast<size_t>(filters), 0.0);
  const bool last = d.g.data_format == DataFormat::kChannelsLast;
  for (int64_t i = 0; i < pre; ++i) {
    const int64_t c = last ? i % filters : i / spatial % filters;
    db[c] += double(dz[i]);
  }
}

void expect_db_close(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t c = 0; c < got.size(); ++c) EXPECT_NEAR(got[c], want[c], 1e-5 * (1.0 + std::abs(want[c]))) << c;
}

struct Case {
  const char* activation;
  DataFormat format;
  std::vector<int64_t> input_shape;  // in the format's order
  int64_t filters;
};

// Several work items each way (channels_last: 256-row chunks; channels_first:
// 8192-value plane chunks; the fused pass: runs of 16384 / channels voxels),
// with partial last items and channel counts off the vector widths.
const Case kCases[] = {
    {"sigmoid", DataFormat::kChannelsLast, {1, 20, 17, 9, 3}, 4},
    {"linear", DataFormat::kChannelsLast, {2, 9, 8, 7, 5}, 37},
    {"relu", DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 12},
    {"tanh", DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 3},
    {"gelu", DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 9},
    {"softmax", DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 6},
    {"linear", DataFormat::kChannelsFirst, {2, 5, 9, 18, 21}, 37},
    {"sigmoid", DataFormat::kChannelsFirst, {1, 5, 20, 17, 9}, 4},
    {"relu", DataFormat::kChannelsFirst, {1, 5, 9, 18, 21}, 64},
    {"elu", DataFormat::kChannelsFirst, {2, 5, 9, 8, 7}, 33},
    {"silu", DataFormat::kChannelsFirst, {1, 5, 9, 8, 7}, 8},
    {"log_softmax", DataFormat::kChannelsFirst, {1, 5, 9, 8, 7}, 6},
};

TEST(PreactivationGradient, MatchesTheDefinitionAndIsBitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(11);
  for (const Case& k : kCases) {
    SCOPED_TRACE(std::string(k.activation) + (k.format == DataFormat::kChannelsLast ? " last" : " first"));
    const Data d = make_data(config_for(k.activation, k.format, k.filters), k.input_shape, rng);
    std::vector<float> want_dz;
    std::vector<double> want_db;
    expected(d, want_dz, want_db);
    std::vector<float> first_dz, first_db;
    for (int threads : {1, 2, 3, 7}) {
      std::vector<float> buffer(want_dz.size(), -7.0f), db(static_cast<size_t>(k.filters), -7.0f);
      const float* dz = preactivation_gradient(d.g, d.act, d.z.data(), d.y.data(), d.dy.data(), db.data(),
                                               buffer.data(), threads);
      const std::vector<float> got(dz, dz + want_dz.size());
      EXPECT_TRUE(same_bits(got, want_dz)) << threads << " threads";
      expect_db_close(db, want_db);
      if (threads == 1) {
        first_dz = got;
        first_db = db;
      }
      EXPECT_TRUE(same_bits(db, first_db)) << threads << " threads";
    }
    // The std::vector form computes the same.
    std::vector<float> storage, db(static_cast<size_t>(k.filters));
    const float* dz =
        preactivation_gradient(d.g, d.act, d.z.data(), d.y.data(), d.dy.data(), db.data(), storage, 2);
    EXPECT_TRUE(same_bits(std::vector<float>(dz, dz + want_dz.size()), want_dz));
    EXPECT_TRUE(same_bits(db, first_db));
  }
}

TEST(PreactivationGradient, FusedChannelsLastPassIsTheTransposedDz) {
  std::mt19937_64 rng(12);
  int fused = 0;
  for (const Case& k : kCases) {
    const LayerConfig config = config_for(k.activation, k.format, k.filters);
    const Data d = make_data(config, k.input_shape, rng);
    if (!fuses_channels_last_dz(d.g, d.act)) {
      // Only channels_first layers with elementwise activations fuse.
      EXPECT_TRUE(k.format == DataFormat::kChannelsLast || !d.act.is_elementwise()) << k.activation;
      continue;
    }
    ++fused;
    SCOPED_TRACE(k.activation);
    std::vector<float> want_dz;
    std::vector<double> want_db;
    expected(d, want_dz, want_db);
    const int64_t filters = k.filters, spatial = d.g.output_elements() / (d.g.batch * filters);
    std::vector<float> want_last(want_dz.size());
    for (int64_t n = 0; n < d.g.batch; ++n)
      for (int64_t c = 0; c < filters; ++c)
        for (int64_t s = 0; s < spatial; ++s)
          want_last[(n * spatial + s) * filters + c] = want_dz[(n * filters + c) * spatial + s];
    std::vector<float> first_db;
    for (int threads : {1, 2, 3, 7}) {
      std::vector<float> last(want_dz.size(), -7.0f), db(static_cast<size_t>(filters), -7.0f);
      preactivation_gradient_to_channels_last(d.g, d.act, d.z.data(), d.y.data(), d.dy.data(), db.data(),
                                              last.data(), threads);
      EXPECT_TRUE(same_bits(last, want_last)) << threads << " threads";
      expect_db_close(db, want_db);
      if (threads == 1) first_db = db;
      EXPECT_TRUE(same_bits(db, first_db)) << threads << " threads";
      // Without db: the same dz.
      std::vector<float> again(want_dz.size(), -7.0f);
      preactivation_gradient_to_channels_last(d.g, d.act, d.z.data(), d.y.data(), d.dy.data(), nullptr,
                                              again.data(), threads);
      EXPECT_TRUE(same_bits(again, want_last)) << threads << " threads, no db";
    }
  }
  EXPECT_EQ(fused, 5);
}

// A channels_first layer whose dz and transposes split into many items,
// against the same layer channels_last; repeated calls (the kept scratch),
// concurrent calls (a second caller's own scratch) and thread counts agree
// bitwise.
TEST(PreactivationGradient, ChannelsFirstLayerBackwardAgreesEveryWay) {
  std::mt19937_64 rng(13);
  for (const char* activation : {"linear", "sigmoid", "gelu"}) {
    SCOPED_TRACE(activation);
    const int64_t n = 2, ci = 12, d = 6, h = 10, w = 9, filters = 20;
    LayerConfig last_config = config_for(activation, DataFormat::kChannelsLast, filters);
    last_config.kernel_size = {3, 2, 3};
    last_config.strides = {2, 2, 1};
    last_config.padding = Padding::kSame;
    LayerConfig first_config = last_config;
    first_config.data_format = DataFormat::kChannelsFirst;
    const ConvGeometry g = resolve_geometry(last_config, {n, d, h, w, ci});
    const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng, -0.5f, 0.5f);
    const std::vector<float> bias = testing::random_tensor(filters, rng, -0.5f, 0.5f);
    const std::vector<int64_t> kshape = {3, 2, 3, filters, ci};
    auto make = [&](const LayerConfig& c, const std::vector<int64_t>& shape, int threads) {
      LayerOptions options;
      options.threads = threads;
      return Layer::create(c, shape, ConstTensor{kernel.data(), kshape}, ConstTensor{bias.data(), {filters}},
                           options);
    };
    const Layer last = make(last_config, {n, d, h, w, ci}, 2);
    const int64_t in_spatial = d * h * w, out_spatial = last.output_elements() / (n * filters);
    auto to_first = [n](const std::vector<float>& v, int64_t s, int64_t ch) {
      std::vector<float> out(v.size());
      for (int64_t b = 0; b < n; ++b)
        for (int64_t i = 0; i < s; ++i)
          for (int64_t c = 0; c < ch; ++c) out[(b * ch + c) * s + i] = v[(b * s + i) * ch + c];
      return out;
    };
    const std::vector<float> x = testing::random_tensor(g.input_elements(), rng);
    std::vector<float> y(static_cast<size_t>(last.output_elements()));
    last.forward(x.data(), y.data());
    const std::vector<float> dy = testing::random_tensor(last.output_elements(), rng);
    std::vector<float> dx(x.size()), dk(kernel.size()), db(static_cast<size_t>(filters));
    last.backward(x.data(), y.data(), dy.data(), dx.data(), dk.data(), db.data());

    const std::vector<float> xf = to_first(x, in_spatial, ci), yf = to_first(y, out_spatial, filters),
                             dyf = to_first(dy, out_spatial, filters);
    struct Result {
      std::vector<float> dx, dk, db;
    };
    auto run = [&](const Layer& layer) {
      Result r{std::vector<float>(x.size()), std::vector<float>(kernel.size()), std::vector<float>(filters)};
      layer.backward(xf.data(), yf.data(), dyf.data(), r.dx.data(), r.dk.data(), r.db.data());
      return r;
    };
    const Layer first1 = make(first_config, {n, ci, d, h, w}, 1);
    const Result one = run(first1);
    EXPECT_LE(testing::scaled_max_error(one.dx, to_first(dx, in_spatial, ci)), 1e-6);
    EXPECT_LE(testing::scaled_max_error(one.dk, dk), 1e-5);
    EXPECT_LE(testing::scaled_max_error(one.db, db), 1e-5);
    const Result again = run(first1);
    EXPECT_TRUE(same_bits(again.dx, one.dx) && same_bits(again.dk, one.dk) && same_bits(again.db, one.db));
    for (int threads : {2, 3, 7}) {
      const Layer layer = make(first_config, {n, ci, d, h, w}, threads);
      const Result r = run(layer);
      EXPECT_TRUE(same_bits(r.dx, one.dx)) << threads << " threads, dx";
      EXPECT_TRUE(same_bits(r.dk, one.dk)) << threads << " threads, dk";
      EXPECT_TRUE(same_bits(r.db, one.db)) << threads << " threads, db";
    }
    std::vector<Result> results(3);
    std::vector<std::thread> workers;
    for (Result& r : results) workers.emplace_back([&] { r = run(first1); });
    for (std::thread& t : workers) t.join();
    for (const Result& r : results)
      EXPECT_TRUE(same_bits(r.dx, one.dx) && same_bits(r.dk, one.dk) && same_bits(r.db, one.db));
  }
}

}  // namespace
}  // namespace tconv3d
