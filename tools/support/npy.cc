#include "tools/support/npy.hpp"

#include <cstdio>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/memory_guard.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
// Shapes whose element count exceeds this are refused before anything is
// allocated (4 TiB of float32).
constexpr int64_t kMaxElements = int64_t{1} << 40;

// The header is a Python dict literal, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// parsed strictly: exactly NumPy's three keys, each once, nothing else.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : text_(text), name_(name) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    std::vector<int64_t> shape;
  };

  Header parse() {
    Header h;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      if (key == "descr" && !have_descr) {
        h.descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order" && !have_order) {
        h.fortran_order = boolean();
        have_order = true;
      } else if (key == "shape" && !have_shape) {
        h.shape = shape_tuple();
        have_shape = true;
      } else {
        fail("unexpected or repeated key '" + key + "'");
      }
      comma_or('}', "expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the header dict");
    if (!have_descr) fail("header has no 'descr'");
    if (!have_order) fail("header has no 'fortran_order'");
    if (!have_shape) fail("header has no 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(name_, "not a valid .npy file: " + what + " in header " + printable_header());
  }

  std::string printable_header() const {
    std::string out;
    for (char c : text_.substr(0, 200)) out += (c >= 32 && c < 127) ? c : '?';
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t')) ++pos_;
  }

  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  // After an item of a dict or tuple: takes a ',' or leaves the closing
  // bracket for the caller; anything else fails with `otherwise`.
  void comma_or(char close, const char* otherwise) {
    skip_space();
    if (peek() == ',') {
      ++pos_;
    } else if (peek() != close) {
      fail(otherwise);
    }
  }

  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    const size_t close = text_.find(quote, pos_ + 1);
    if (close == std::string::npos) fail("unterminated string");
    std::string value = text_.substr(pos_ + 1, close - pos_ - 1);
    pos_ = close + 1;
    return value;
  }

  bool boolean() {
    skip_space();
    if (text_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (text_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("fortran_order must be True or False");
  }

  // "()", "(4,)", "(2, 3)", legacy "(2L, 3L)"; non-negative decimal integers.
  std::vector<int64_t> shape_tuple() {
    std::vector<int64_t> shape;
    skip_space();
    if (peek() != '(') fail("shape must be a tuple of integers");
    ++pos_;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() == '-') fail("negative dimension in shape");
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("shape must be a tuple of integers");
      int64_t dim = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        dim = dim * 10 + (text_[pos_++] - '0');
        if (dim > kMaxElements) throw Error(name_, "dimension in shape is too large (over 2^40)");
      }
      if (peek() == 'L') ++pos_;
      shape.push_back(dim);
      comma_or(')', "shape must be a tuple of integers");
    }
    ++pos_;
    return shape;
  }

  const std::string& text_;
  const std::string& name_;
  size_t pos_ = 0;
};

}  // namespace

namespace {

// The checked header and data of a .npy image whose dtype is float32 ('<f4'),
// or with bf16, one of the bf16 raw-bit spellings ('<u2', '|V2', '<V2').
struct Payload {
  std::vector<int64_t> shape;
  size_t offset = 0, count = 0;
};

Payload parse_payload(const std::string& bytes, const std::string& name, bool bf16) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) {
    throw Error(name, "not a .npy file (missing the \\x93NUMPY magic)");
  }
  const unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(name, "truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw Error(name, "unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - offset) throw Error(name, "truncated .npy header");
  const std::string header_text = bytes.substr(offset, header_len);
  const HeaderParser::Header header = HeaderParser(header_text, name).parse();
  const std::string shape_text = shape_to_string(header.shape);
  const bool bf16_bits = header.descr == "<u2" || header.descr == "|V2" || header.descr == "<V2";
  if (bf16 && !bf16_bits) {
    throw Error(name, "dtype '" + header.descr + "' is not bf16 raw bits ('<u2', or ml_dtypes bfloat16 saved as "
                      "'<V2'/'|V2'); with --dtype bf16 give x.astype(ml_dtypes.bfloat16).view(numpy.uint16)");
  }
  if (!bf16 && header.descr != "<f4") {
    throw Error(name, "dtype '" + header.descr + "' is not float32 ('<f4'); convert it explicitly, e.g. "
                      "numpy.asarray(x, dtype=numpy.float32)" +
                      std::string(bf16_bits ? " (2-byte elements: for bf16 data give --dtype bf16)" : ""));
  }
  const size_t element = bf16 ? 2 : 4;
  if (header.fortran_order) throw Error(name, "array is in Fortran order; only C order is accepted");
  int64_t count = 1;
  for (int64_t d : header.shape) {
    if (d != 0 && count > kMaxElements / d) throw Error(name, "shape " + shape_text + " is too large");
    count *= d;
  }
  const size_t data_offset = offset + header_len;
  const size_t expected = size_t(count) * element;
  if (bytes.size() - data_offset != expected) {
    throw Error(name, "data size " + std::to_string(bytes.size() - data_offset) + " bytes does not match shape " +
                          shape_text + " (" + std::to_string(expected) + " bytes expected): file " +
                          (bytes.size() - data_offset < expected ? "truncated" : "has trailing bytes") +
                          " or corrupt");
  }
  return Payload{header.shape, data_offset, size_t(count)};
}

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  const Payload p = parse_payload(bytes, name, false);
  NpyArray array;
  array.shape = p.shape;
  array.data.resize(p.count);
  if (p.count) std::memcpy(array.data.data(), bytes.data() + p.offset, p.count * 4);
  return array;
}

NpyBf16Array parse_npy_bf16(const std::string& bytes, const std::string& name) {
  const Payload p = parse_payload(bytes, name, true);
  NpyBf16Array array;
  array.shape = p.shape;
  array.data.resize(p.count);
  if (p.count) std::memcpy(array.data.data(), bytes.data() + p.offset, p.count * 2);
  return array;
}

namespace {

std::string read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "is a directory, not a .npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open for reading (" + std::string(std::strerror(errno)) + ")");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(path, "cannot read");
  check_allocatable(double(size), path);
  in.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), size)) throw Error(path, "read failed");
  return bytes;
}

}  // namespace

NpyArray read_npy(const std::string& path) { return parse_npy(read_file_bytes(path), path); }

NpyBf16Array read_npy_bf16(const std::string& path) { return parse_npy_bf16(read_file_bytes(path), path); }

namespace {

void write_npy_raw(const std::string& path, const std::vector<int64_t>& shape, const char* descr, const void* data,
                   int64_t element) {
  std::ostringstream dict;
  dict << "{'descr': '" << descr << "', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    if (i + 1 < shape.size()) dict << " ";
    count *= shape[i];
  }
  dict << "), }";
  std::string header = dict.str();
  // Pad so that the data starts on a 64-byte boundary, newline-terminated.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path, "cannot open for writing (" + std::string(std::strerror(errno)) + ")");
    out.write(kMagic, 6);
    const char version[2] = {1, 0};
    out.write(version, 2);
    const uint16_t len = static_cast<uint16_t>(header.size());
    const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(static_cast<const char*>(data), std::streamsize(count * element));
    // close() flushes: a full disk may only show up here.
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw Error(path, "write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(path, "cannot write (" + reason + ")");
  }
}

}  // namespace

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  write_npy_raw(path, shape, "<f4", data, 4);
}

void write_npy_bf16(const std::string& path, const std::vector<int64_t>& shape, const uint16_t* data) {
  write_npy_raw(path, shape, "<u2", data, 2);
}

}  // namespace tconv3d
