// NumPy .npy reading and writing: float32 C-order little-endian round trips,
// and a clean tconv3d::Error (never a crash or a silent conversion) for
// everything else.
#include "tools/support/npy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;

// A .npy image written by hand: magic, version, header length, header text
// padded to 64 bytes and newline-terminated, then `data`.
std::string npy_image(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(major);
  out += char(0);
  const size_t len = header.size();
  out += char(len & 0xff);
  out += char((len >> 8) & 0xff);
  if (major != 1) {
    out += char((len >> 16) & 0xff);
    out += char((len >> 24) & 0xff);
  }
  return out + header + data;
}

std::string float_bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

std::string f4_dict(const std::string& shape) {
  return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
}

// Expects parse_npy to throw a tconv3d::Error naming the file and containing `needle`.
void expect_rejected(const std::string& bytes, const std::string& needle) {
  try {
    parse_npy(bytes, "x.npy");
    FAIL() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.argument(), "x.npy");
    EXPECT_NE(what.find(needle), std::string::npos) << "'" << what << "' lacks '" << needle << "'";
  }
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tconv3d_npy_XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(Npy, RoundTripsShapesOfEveryRank) {
  TempDir dir;
  const std::vector<std::vector<int64_t>> shapes = {{}, {4}, {2, 3}, {1, 2, 3, 4, 5}, {2, 0, 3}, {1, 1, 1, 1, 1, 1}};
  for (const auto& shape : shapes) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<float> values(static_cast<size_t>(count));
    for (size_t i = 0; i < values.size(); ++i) values[i] = float(i) * 0.25f - 3.0f;
    const std::string path = dir.file("a.npy");
    write_npy(path, shape, values.data());
    const NpyArray back = read_npy(path);
    EXPECT_EQ(back.shape, shape);
    EXPECT_EQ(back.data, values);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    // The header is padded so the data starts on a 64-byte boundary, as numpy writes it.
    EXPECT_EQ((fs::file_size(path) - size_t(count) * 4) % 64, 0u);
  }
}

TEST(Npy, SpecialValuesSurviveBitExact) {
  TempDir dir;
  const std::vector<float> values = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-45f, 3.4028235e38f, NAN};
  write_npy(dir.file("s.npy"), {int64_t(values.size())}, values.data());
  const NpyArray back = read_npy(dir.file("s.npy"));
  ASSERT_EQ(back.data.size(), values.size());
  EXPECT_EQ(std::memcmp(back.data.data(), values.data(), values.size() * 4), 0);
}

TEST(Npy, ParsesNumpysOwnHeaderSpellings) {
  const std::vector<float> four = {1, 2, 3, 4};
  // One-dimensional "(4,)", zero-dimensional "()", version 2 and 3 headers,
  // keys in another order and double quotes.
  NpyArray a = parse_npy(npy_image(f4_dict("(4,)"), float_bytes(four)), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(a.data, four);
  a = parse_npy(npy_image(f4_dict("()"), float_bytes({7.5f})), "x.npy");
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(a.data, std::vector<float>{7.5f});
  a = parse_npy(npy_image(f4_dict("(2, 2)"), float_bytes(four), 2), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  a = parse_npy(npy_image(f4_dict("(1, 4)"), float_bytes(four), 3), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 4}));
  a = parse_npy(npy_image("{'shape': (2, 2), 'fortran_order': False, 'descr': '<f4'}", float_bytes(four)), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  a = parse_npy(npy_image("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (4,)}", float_bytes(four)),
                "x.npy");
  EXPECT_EQ(a.data, four);
  // An empty array.
  a = parse_npy(npy_image(f4_dict("(0, 3)"), ""), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(a.data.empty());
}

TEST(Npy, RejectsOtherDtypesByName) {
  const std::string eight(8, '\0');
  expect_rejected(npy_image("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", eight), "'<f8'");
  expect_rejected(npy_image("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", eight), "not float32");
  expect_rejected(npy_image("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", eight), "'>f4'");
  expect_rejected(npy_image("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", eight), "not float32");
  expect_rejected(npy_image("{'descr': '|u1', 'fortran_order': False, 'shape': (8,), }", eight), "not float32");
}

TEST(Npy, RejectsFortranOrder) {
  expect_rejected(npy_image("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", std::string(16, '\0')),
                  "Fortran order");
}

TEST(Npy, RejectsTruncatedAndOversizedData) {
  const std::vector<float> four = {1, 2, 3, 4};
  std::string image = npy_image(f4_dict("(2, 2)"), float_bytes(four));
  expect_rejected(image.substr(0, image.size() - 1), "truncated");
  expect_rejected(image.substr(0, image.size() - 16), "truncated");
  expect_rejected(image + "junk", "does not match shape");
  // Cut inside the header.
  expect_rejected(image.substr(0, 40), "truncated");
  // Cut inside the version-2 length field.
  expect_rejected(npy_image(f4_dict("(4,)"), float_bytes(four), 2).substr(0, 11), "");
}

TEST(Npy, RejectsGarbage) {
  expect_rejected("", "magic");
  expect_rejected("hello world, not an array", "magic");
  expect_rejected("\x93NUMP", "magic");
  std::string wrong_version = npy_image(f4_dict("(1,)"), float_bytes({1}));
  wrong_version[6] = 9;
  expect_rejected(wrong_version, "version 9");
  // Headers without their keys, or with a shape that is not a tuple.
  expect_rejected(npy_image("{'fortran_order': False, 'shape': (1,), }", float_bytes({1})), "descr");
  expect_rejected(npy_image("{'descr': '<f4', 'shape': (1,), }", float_bytes({1})), "fortran_order");
  expect_rejected(npy_image("{'descr': '<f4', 'fortran_order': False, }", float_bytes({1})), "shape");
  expect_rejected(npy_image(f4_dict("[1]"), float_bytes({1})), "shape");
  expect_rejected(npy_image(f4_dict("(1, x)"), float_bytes({1})), "shape");
  expect_rejected(npy_image(f4_dict("(1.5,)"), float_bytes({1})), "shape");
}

TEST(Npy, RejectsAbsurdShapesBeforeAllocating) {
  // Each would need terabytes (or overflow int64) if believed.
  expect_rejected(npy_image(f4_dict("(1099511627776, 1099511627776)"), ""), "too large");
  expect_rejected(npy_image(f4_dict("(99999999999999999999999,)"), ""), "too large");
  expect_rejected(npy_image(f4_dict("(4294967296, 4294967296, 4294967296)"), ""), "too large");
  expect_rejected(npy_image(f4_dict("(1000000, 1000000)"), ""), "");
  expect_rejected(npy_image(f4_dict("(-1, 4)"), float_bytes({1, 2, 3, 4})), "negative");
}

TEST(Npy, FileErrorsNameThePath) {
  TempDir dir;
  const std::string missing = dir.file("missing.npy");
  try {
    read_npy(missing);
    FAIL() << "read a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), missing);
  }
  // A directory is not a file.
  try {
    read_npy(dir.path().string());
    FAIL() << "read a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), dir.path().string());
  }
  // Writing into a directory that does not exist leaves nothing behind.
  const std::string nowhere = dir.file("no/such/dir/y.npy");
  const float one = 1.0f;
  EXPECT_THROW(write_npy(nowhere, {1}, &one), Error);
  EXPECT_FALSE(fs::exists(nowhere));
  EXPECT_FALSE(fs::exists(nowhere + ".tmp"));
  // Writing over a directory fails cleanly too, and removes its temporary.
  fs::create_directory(dir.file("taken.npy"));
  EXPECT_THROW(write_npy(dir.file("taken.npy"), {1}, &one), Error);
  EXPECT_FALSE(fs::exists(dir.file("taken.npy.tmp")));
}

TEST(Npy, ReadsAFileWrittenByHand) {
  TempDir dir;
  const std::vector<float> values = {0.5f, -1.5f, 2.0f, 8.0f, 9.0f, 10.0f};
  const std::string path = dir.file("hand.npy");
  {
    std::ofstream out(path, std::ios::binary);
    out << npy_image(f4_dict("(1, 2, 3)"), float_bytes(values), 2);
  }
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(a.data, values);
}

}  // namespace
}  // namespace tconv3d
