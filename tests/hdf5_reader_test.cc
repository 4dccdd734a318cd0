// tconv3d's own HDF5 reader (runtime/model/hdf5_*): the same objects written
// by libhdf5 in each format generation (scripts/make_hdf5_fixtures.py) read
// back with the right values; features outside the subset are clear
// "unsupported" errors; the inputs that once broke libhdf5 are clean errors.
#include <gtest/gtest.h>

#ifdef TCONV3D_HAVE_MODELS

#include <filesystem>
#include <numeric>

#include "runtime/model/file_bytes.hpp"
#include "runtime/model/hdf5_file.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/model.hpp"

namespace tconv3d::model {
namespace {

namespace fs = std::filesystem;

const fs::path kHdf5Data = fs::path(TCONV3D_TEST_DATA_DIR) / "hdf5";

Hdf5File open_fixture(const std::string& name) {
  const std::string path = (kHdf5Data / name).string();
  return Hdf5File::open(read_file_bytes(path), path);
}

template <typename F>
void expect_error(F&& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one with '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "'" << needle << "' not in: " << e.what();
  }
}

std::vector<float> iota_floats(size_t count, float first) {
  std::vector<float> values(count);
  std::iota(values.begin(), values.end(), first);
  return values;
}

class Hdf5Formats : public ::testing::TestWithParam<const char*> {};

TEST_P(Hdf5Formats, GroupsAndDatasetsAreFound) {
  const Hdf5File file = open_fixture(GetParam());
  EXPECT_TRUE(file.has_group(""));
  EXPECT_TRUE(file.has_group("data"));
  EXPECT_FALSE(file.has_dataset("data"));
  EXPECT_TRUE(file.has_dataset("data/contiguous_f32"));
  EXPECT_FALSE(file.has_group("data/contiguous_f32"));
  EXPECT_FALSE(file.has_dataset("data/missing"));
  EXPECT_FALSE(file.has_group("data/contiguous_f32/below_a_dataset"));
  EXPECT_FALSE(file.has_group("data//contiguous_f32"));
  EXPECT_EQ(file.children(""), (std::vector<std::string>{"attrs", "data", "many", "target", "types"}));
  EXPECT_EQ(file.children("data"),
            (std::vector<std::string>{"big_endian_f32", "chunked_f32", "compact_f32", "contiguous_f32", "empty_f32"}));
  expect_error([&] { file.children("data/contiguous_f32"); }, "no group 'data/contiguous_f32'");
}

TEST_P(Hdf5Formats, Float32DatasetsInEveryStorageLayoutAndByteOrder) {
  const Hdf5File file = open_fixture(GetParam());
  const Float32Dataset contiguous = file.read_float32("data/contiguous_f32");
  EXPECT_EQ(contiguous.shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(contiguous.data, iota_floats(24, 0));
  EXPECT_EQ(file.read_float32("data/big_endian_f32").data, iota_floats(6, -2.5f));
  EXPECT_EQ(file.read_float32("data/compact_f32").data, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  const Float32Dataset empty = file.read_float32("data/empty_f32");
  EXPECT_EQ(empty.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(empty.data.empty());
  if (std::string(GetParam()) == "features_latest.h5") {
    // libver='latest' indexes chunks with a fixed array, not a version 1 B-tree.
    expect_error([&] { file.read_float32("data/chunked_f32"); }, "unsupported HDF5 feature: chunk index");
  } else {
    const Float32Dataset chunked = file.read_float32("data/chunked_f32");  // 2x3x2 chunks, cut at every edge
    EXPECT_EQ(chunked.shape, (std::vector<int64_t>{5, 7, 3}));
    EXPECT_EQ(chunked.data, iota_floats(105, 0));
  }
}

TEST_P(Hdf5Formats, OtherElementTypesAndFiltersAreNamedInTheError) {
  const Hdf5File file = open_fixture(GetParam());
  expect_error([&] { file.read_float32("types/f16"); }, "dataset 'types/f16' holds float16; tconv3d needs float32");
  expect_error([&] { file.read_float32("types/f64"); }, "holds float64");
  expect_error([&] { file.read_float32("types/i32"); }, "holds int32");
  expect_error([&] { file.read_float32("types/deflate_f32"); }, "unsupported HDF5 feature: compressed or filtered");
  expect_error([&] { file.read_float32("types/deflate_f32"); }, "deflate");
  expect_error([&] { file.read_float32("types/missing"); }, "no dataset 'types/missing'");
}

TEST_P(Hdf5Formats, StringAttributesFixedVariableAndSplit) {
  const Hdf5File file = open_fixture(GetParam());
  EXPECT_EQ(file.string_attribute("attrs", "vlen"), "a variable-length string");
  EXPECT_EQ(file.string_list_attribute("attrs", "vlen_list"), (std::vector<std::string>{"first", "", "third"}));
  EXPECT_EQ(file.string_attribute("attrs", "fixed"), "fixed");
  EXPECT_EQ(file.string_list_attribute("attrs", "fixed_list"), (std::vector<std::string>{"ab", "cde"}));
  EXPECT_EQ(file.string_list_attribute("attrs", "empty_list"), std::vector<std::string>{});
  // Keras splits a long attribute into NAME0, NAME1, ...
  EXPECT_EQ(file.string_list_attribute("attrs", "split"), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(file.string_attribute("attrs", "missing"), std::nullopt);
  EXPECT_EQ(file.string_attribute("no/such/object", "vlen"), std::nullopt);
  expect_error([&] { file.string_attribute("attrs", "number"); }, "attribute 'number' of 'attrs': expected strings");
}

TEST_P(Hdf5Formats, ManyLinksAreABTreeOrRefusedDenseStorage) {
  const Hdf5File file = open_fixture(GetParam());
  if (std::string(GetParam()) == "features_v0.h5") {
    const std::vector<std::string> links = file.children("many");
    ASSERT_EQ(links.size(), 300u);
    EXPECT_EQ(links.front(), "link000");
    EXPECT_EQ(links.back(), "link299");
    EXPECT_TRUE(file.has_group("many/link123"));
  } else {
    expect_error([&] { file.children("many"); }, "unsupported HDF5 feature: dense link storage (fractal heap)");
  }
}

INSTANTIATE_TEST_SUITE_P(Generations, Hdf5Formats,
                         ::testing::Values("features_v0.h5", "features_v108.h5", "features_latest.h5"));

TEST(Hdf5Unsupported, DenseStorageIsAClearErrorNamingTheFile) {
  const Hdf5File file = open_fixture("dense.h5");
  expect_error([&] { file.children("dense_links"); }, "dense.h5: unsupported HDF5 feature: dense link storage");
  expect_error([&] { file.has_group("dense_links/g01"); }, "dense link storage");
  expect_error([&] { file.string_attribute("dense_attributes", "a00"); }, "dense attribute storage");
  EXPECT_EQ(file.string_attribute("compact", "name"), "ok");
}

TEST(Hdf5Damage, NotHdf5AndTruncatedSuperblocks) {
  expect_error([] { Hdf5File::open("plain text, no signature", "x.h5"); }, "x.h5: not an HDF5 file");
  const std::string image = read_file_bytes((kHdf5Data / "features_v0.h5").string());
  for (size_t cut : {size_t(8), size_t(20), size_t(60), image.size() - 1}) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(Hdf5File::open(image.substr(0, cut), "cut.h5"), Error);
  }
  expect_error([&] { Hdf5File::open(image.substr(0, image.size() - 1), "cut.h5"); }, "truncated HDF5 file");
}

// Inputs the fuzzer found when libhdf5 read our files (a hang and a heap
// overflow in its global heap code): now each is a clean error.
TEST(Hdf5Damage, KnownFuzzInputsAreCleanErrors) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(TCONV3D_SOURCE_DIR) / "fuzz" / "known")) {
    if (entry.path().extension() != ".h5") continue;
    SCOPED_TRACE(entry.path().string());
    ++seen;
    EXPECT_THROW(Model::load(entry.path().string()), Error);
  }
  EXPECT_GE(seen, 2);
}

}  // namespace
}  // namespace tconv3d::model

#else

TEST(Hdf5Reader, NotBuilt) { GTEST_SKIP() << "built without model loading"; }

#endif
