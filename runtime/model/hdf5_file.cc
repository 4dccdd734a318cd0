#include "runtime/model/hdf5_file.hpp"

#include <hdf5.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "runtime/memory_guard.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

std::mutex& hdf5_mutex() {
  static std::mutex mutex;
  return mutex;
}

void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

// Closes an hid_t with the right H5*close on scope exit.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

uint64_t read_le(const std::string& bytes, size_t at, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

constexpr char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

// True when every component of `path` exists as a link, so that H5*open never
// has to report a missing intermediate group.
bool links_exist(hid_t file, const std::string& path) {
  std::string prefix;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end == start) return false;  // empty component
    prefix += (prefix.empty() ? "" : "/") + path.substr(start, end - start);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    start = end + 1;
  }
  return true;
}

std::optional<H5O_type_t> object_type(hid_t file, const std::string& path) {
  if (path.empty() || path == "/") return H5O_TYPE_GROUP;
  if (!links_exist(file, path)) return std::nullopt;
  H5O_info_t info;
  if (H5Oget_info_by_name(file, path.c_str(), &info, H5P_DEFAULT) < 0) return std::nullopt;
  return info.type;
}

std::string object_path(const std::string& path) { return path.empty() ? "/" : path; }

// Reads one string-typed attribute into a list (scalar: one element).
std::vector<std::string> read_strings(hid_t attr, const std::string& what, const std::string& file) {
  Handle type(H5Aget_type(attr), H5Tclose);
  Handle space(H5Aget_space(attr), H5Sclose);
  if (!type.ok() || !space.ok()) throw Error(file, what + ": unreadable attribute");
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  if (count < 0 || count > (1 << 24)) throw Error(file, what + ": unreadable attribute size");
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_STRING) {
    if (count == 0) return {};  // Keras writes an empty list as an empty float array
    throw Error(file, what + ": expected strings");
  }
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::vector<char*> pointers(static_cast<size_t>(count), nullptr);
    if (H5Aread(attr, mem.get(), pointers.data()) < 0) throw Error(file, what + ": cannot read the strings");
    for (char* p : pointers) {
      out.emplace_back(p ? p : "");
    }
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, pointers.data());
  } else {
    const size_t width = H5Tget_size(type.get());
    if (width == 0 || width > (size_t(1) << 26)) throw Error(file, what + ": bad string size");
    check_allocatable(double(width) * double(count), file);
    std::vector<char> buffer(width * static_cast<size_t>(count) + 1, '\0');
    Handle mem(H5Tcopy(type.get()), H5Tclose);
    if (H5Aread(attr, mem.get(), buffer.data()) < 0) throw Error(file, what + ": cannot read the strings");
    for (hssize_t i = 0; i < count; ++i) {
      const char* begin = buffer.data() + size_t(i) * width;
      out.emplace_back(begin, strnlen(begin, width));
    }
  }
  return out;
}

}  // namespace

void check_hdf5_image(const std::string& image, const std::string& name) {
  // The superblock sits at 0, 512, 1024, 2048... (after an optional user block).
  size_t at = std::string::npos;
  for (size_t offset = 0; offset + sizeof(kSignature) <= image.size(); offset = offset ? offset * 2 : 512) {
    if (std::memcmp(image.data() + offset, kSignature, sizeof(kSignature)) == 0) {
      at = offset;
      break;
    }
  }
  if (at == std::string::npos) throw Error(name, "not an HDF5 file (no HDF5 signature)");
  auto need = [&](size_t end) {
    if (end > image.size()) throw Error(name, "truncated HDF5 file (the superblock is cut off)");
  };
  need(at + 9);
  const int version = static_cast<unsigned char>(image[at + 8]);
  size_t offsets_size_at = 0, eof_field = 0, base_field = 0;
  int offset_size = 0;
  if (version == 0 || version == 1) {
    need(at + 24);
    offsets_size_at = at + 13;
    offset_size = static_cast<unsigned char>(image[offsets_size_at]);
    const size_t fixed = at + 24 + (version == 1 ? 4 : 0);
    base_field = fixed;
    eof_field = fixed + 2 * size_t(offset_size);
  } else if (version == 2 || version == 3) {
    need(at + 12);
    offset_size = static_cast<unsigned char>(image[at + 9]);
    base_field = at + 12;
    eof_field = base_field + 2 * size_t(offset_size);
  } else {
    throw Error(name, "unsupported HDF5 superblock version " + std::to_string(version));
  }
  if (offset_size != 2 && offset_size != 4 && offset_size != 8)
    throw Error(name, "corrupt HDF5 superblock (offset size " + std::to_string(offset_size) + ")");
  need(eof_field + size_t(offset_size));
  const uint64_t base = read_le(image, base_field, offset_size);
  const uint64_t eof = read_le(image, eof_field, offset_size);
  if (base > image.size() || eof > image.size() - base) {
    throw Error(name, "truncated HDF5 file: the superblock says it ends at byte " + std::to_string(base + eof) +
                          " but it has " + std::to_string(image.size()));
  }
}

Hdf5File Hdf5File::open(std::string image, const std::string& name) {
  check_hdf5_image(image, name);
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  silence_hdf5();
  Hdf5File file;
  file.name_ = name;
  file.image_ = std::move(image);
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), 1 << 20, 0) < 0 ||
      H5Pset_file_image(fapl.get(), file.image_.data(), file.image_.size()) < 0) {
    throw Error(name, "HDF5 could not take the file image");
  }
  // The name only has to be unique among open files with the core driver.
  static std::atomic<uint64_t> counter{0};
  const std::string image_name = "tconv3d-image-" + std::to_string(counter++);
  file.file_id_ = H5Fopen(image_name.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (file.file_id_ < 0) throw Error(name, "not a readable HDF5 file (corrupt or truncated)");
  // The image was copied by the core driver; ours is no longer needed.
  file.image_.clear();
  file.image_.shrink_to_fit();
  return file;
}

Hdf5File::Hdf5File(Hdf5File&& other) noexcept
    : name_(std::move(other.name_)), image_(std::move(other.image_)), file_id_(other.file_id_) {
  other.file_id_ = -1;
}

Hdf5File& Hdf5File::operator=(Hdf5File&& other) noexcept {
  std::swap(name_, other.name_);
  std::swap(image_, other.image_);
  std::swap(file_id_, other.file_id_);
  return *this;
}

Hdf5File::~Hdf5File() {
  if (file_id_ >= 0) {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    H5Fclose(file_id_);
  }
}

bool Hdf5File::has_group(const std::string& path) const {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  const auto type = object_type(file_id_, path);
  return type && *type == H5O_TYPE_GROUP;
}

bool Hdf5File::has_dataset(const std::string& path) const {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  const auto type = object_type(file_id_, path);
  return type && *type == H5O_TYPE_DATASET;
}

std::vector<std::string> Hdf5File::children(const std::string& group) const {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  const auto type = object_type(file_id_, group);
  if (!type || *type != H5O_TYPE_GROUP) throw Error(name_, "no group '" + object_path(group) + "'");
  Handle g(H5Gopen2(file_id_, object_path(group).c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  if (!g.ok() || H5Gget_info(g.get(), &info) < 0) throw Error(name_, "cannot list group '" + object_path(group) + "'");
  if (info.nlinks > (1u << 20)) throw Error(name_, "group '" + object_path(group) + "' has too many members");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t length = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (length < 0 || length > 65536) throw Error(name_, "cannot list group '" + object_path(group) + "'");
    std::string child(static_cast<size_t>(length) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, child.data(), child.size(), H5P_DEFAULT);
    child.resize(static_cast<size_t>(length));
    names.push_back(child);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<std::vector<std::string>> Hdf5File::string_list_attribute(const std::string& object,
                                                                        const std::string& attr) const {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  if (!object_type(file_id_, object)) return std::nullopt;
  const std::string where = object_path(object);
  auto read_one = [&](const std::string& attr_name) -> std::optional<std::vector<std::string>> {
    if (H5Aexists_by_name(file_id_, where.c_str(), attr_name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
    Handle a(H5Aopen_by_name(file_id_, where.c_str(), attr_name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!a.ok()) throw Error(name_, "cannot open attribute '" + attr_name + "' of '" + where + "'");
    return read_strings(a.get(), "attribute '" + attr_name + "' of '" + where + "'", name_);
  };
  if (auto whole = read_one(attr)) return whole;
  // Keras splits attributes larger than HDF5's 64 KiB header limit into NAME0, NAME1, ...
  std::optional<std::vector<std::string>> joined;
  for (int chunk = 0; chunk < 100000; ++chunk) {
    auto part = read_one(attr + std::to_string(chunk));
    if (!part) break;
    if (!joined) joined.emplace();
    joined->insert(joined->end(), part->begin(), part->end());
  }
  return joined;
}

std::optional<std::string> Hdf5File::string_attribute(const std::string& object, const std::string& attr) const {
  auto list = string_list_attribute(object, attr);
  if (!list) return std::nullopt;
  std::string joined;
  for (const auto& part : *list) joined += part;
  return joined;
}

Float32Dataset Hdf5File::read_float32(const std::string& path) const {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  const auto type_of = object_type(file_id_, path);
  if (!type_of || *type_of != H5O_TYPE_DATASET) throw Error(name_, "no dataset '" + path + "'");
  Handle d(H5Dopen2(file_id_, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) throw Error(name_, "cannot open dataset '" + path + "'");
  Handle type(H5Dget_type(d.get()), H5Tclose);
  Handle space(H5Dget_space(d.get()), H5Sclose);
  if (!type.ok() || !space.ok()) throw Error(name_, "dataset '" + path + "' is unreadable");
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t width = H5Tget_size(type.get());
  if (cls != H5T_FLOAT || width != 4) {
    const std::string dtype = cls == H5T_FLOAT ? "float" + std::to_string(8 * width)
                              : cls == H5T_INTEGER ? "int" + std::to_string(8 * width)
                                                   : "a non-numeric type";
    throw Error(name_, "dataset '" + path + "' holds " + dtype + "; tconv3d needs float32 weights");
  }
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 32) throw Error(name_, "dataset '" + path + "' has an unreadable shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  Float32Dataset out;
  double count = 1;
  for (hsize_t dim : dims) {
    out.shape.push_back(static_cast<int64_t>(dim));
    count *= double(dim);
  }
  check_allocatable(4.0 * count, name_ + ": " + path);
  out.data.resize(static_cast<size_t>(count));
  if (count > 0 && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data.data()) < 0)
    throw Error(name_, "cannot read dataset '" + path + "' (corrupt data)");
  return out;
}

}  // namespace tconv3d::model
