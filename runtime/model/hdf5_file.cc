#include "runtime/model/hdf5_file.hpp"

#include <algorithm>
#include <cstring>

#include "runtime/memory_guard.hpp"
#include "runtime/model/hdf5_attribute.hpp"
#include "runtime/model/hdf5_dataset.hpp"
#include "runtime/model/hdf5_group.hpp"
#include "runtime/model/hdf5_superblock.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

std::string object_path(const std::string& path) { return path.empty() ? "/" : path; }

// Keras splits attributes larger than HDF5's 64 KiB header limit into
// NAME0, NAME1, ...; more parts than this is no Keras file.
constexpr int kMaxAttributeParts = 100000;

}  // namespace

Hdf5File Hdf5File::open(std::string image, const std::string& name) {
  Hdf5File file;
  file.name_ = name;
  file.image_ = std::move(image);
  hdf5::FileImage view(file.image_, name);
  const hdf5::Superblock superblock = hdf5::read_superblock(file.image_, view);
  file.offset_size_ = superblock.offset_size;
  file.length_size_ = superblock.length_size;
  file.base_address_ = superblock.base_address;
  file.root_address_ = superblock.root_object_header;
  // The root must at least be a readable group, so a damaged file fails here.
  if (!hdf5::is_group(hdf5::read_object_header(view, file.root_address_)))
    view.corrupt("the root object is not a group");
  return file;
}

namespace {

hdf5::FileImage image_of(const std::string& image, const std::string& name, int offset_size, int length_size,
                         uint64_t base) {
  hdf5::FileImage view(image, name);
  view.set_layout(offset_size, length_size, base);
  return view;
}

}  // namespace

std::optional<uint64_t> Hdf5File::find_object(const std::string& path) const {
  const hdf5::FileImage view = image_of(image_, name_, offset_size_, length_size_, base_address_);
  uint64_t address = root_address_;
  if (path.empty() || path == "/") return address;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end == start) return std::nullopt;  // an empty component
    const std::string component = path.substr(start, end - start);
    const hdf5::ObjectHeader header = hdf5::read_object_header(view, address);
    if (!hdf5::is_group(header)) return std::nullopt;
    const std::vector<hdf5::Link> links = hdf5::read_group_links(view, header);
    const auto link = std::find_if(links.begin(), links.end(), [&](const hdf5::Link& l) { return l.name == component; });
    if (link == links.end()) return std::nullopt;
    if (!link->hard) view.unsupported("soft or external link '" + path.substr(0, end) + "'");
    address = link->address;
    start = end + 1;
  }
  return address;
}

bool Hdf5File::has_group(const std::string& path) const {
  const auto address = find_object(path);
  if (!address) return false;
  const hdf5::FileImage view = image_of(image_, name_, offset_size_, length_size_, base_address_);
  return hdf5::is_group(hdf5::read_object_header(view, *address));
}

bool Hdf5File::has_dataset(const std::string& path) const {
  const auto address = find_object(path);
  if (!address) return false;
  const hdf5::FileImage view = image_of(image_, name_, offset_size_, length_size_, base_address_);
  return hdf5::is_dataset(hdf5::read_object_header(view, *address));
}

std::vector<std::string> Hdf5File::children(const std::string& group) const {
  const auto address = find_object(group);
  const hdf5::FileImage view = image_of(image_, name_, offset_size_, length_size_, base_address_);
  if (!address) throw Error(name_, "no group '" + object_path(group) + "'");
  const hdf5::ObjectHeader header = hdf5::read_object_header(view, *address);
  if (!hdf5::is_group(header)) throw Error(name_, "no group '" + object_path(group) + "'");
  std::vector<std::string> names;
  for (const hdf5::Link& link : hdf5::read_group_links(view, header)) names.push_back(link.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<std::vector<std::string>> Hdf5File::string_list_attribute(const std::string& object,
                                                                        const std::string& attr) const {
  const auto address = find_object(object);
  if (!address) return std::nullopt;
  const hdf5::FileImage view = image_of(image_, name_, offset_size_, length_size_, base_address_);
  const hdf5::ObjectHeader header = hdf5::read_object_header(view, *address);
  const std::string where = object_path(object);
  auto read_one = [&](const std::string& attr_name) -> std::optional<std::vector<std::string>> {
    const auto attribute = hdf5::find_attribute(view, header, attr_name);
    if (!attribute) return std::nullopt;
    return hdf5::attribute_strings(view, *attribute, "attribute '" + attr_name + "' of '" + where + "'");
  };
  if (auto whole = read_one(attr)) return whole;
  std::optional<std::vector<std::string>> joined;
  for (int part = 0; part < kMaxAttributeParts; ++part) {
    auto strings = read_one(attr + std::to_string(part));
    if (!strings) break;
    if (!joined) joined.emplace();
    joined->insert(joined->end(), strings->begin(), strings->end());
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
  const auto address = find_object(path);
  const hdf5::FileImage view = image_of(image_, name_, offset_size_, length_size_, base_address_);
  if (!address) throw Error(name_, "no dataset '" + path + "'");
  const hdf5::ObjectHeader header = hdf5::read_object_header(view, *address);
  if (!hdf5::is_dataset(header)) throw Error(name_, "no dataset '" + path + "'");
  const hdf5::DatasetInfo info = hdf5::read_dataset_info(view, header, path);
  if (!info.type.is_float32())
    throw Error(name_, "dataset '" + path + "' holds " + info.type.describe() + "; tconv3d needs float32 weights");
  Float32Dataset out;
  for (uint64_t dim : info.space.dims) out.shape.push_back(static_cast<int64_t>(dim));
  const uint64_t count = info.space.element_count();  // read_dataset_info bounded it by the file size
  check_allocatable(4.0 * double(count), name_ + ": " + path);
  out.data.resize(static_cast<size_t>(count));
  hdf5::read_dataset_bytes(view, header, info, path, reinterpret_cast<char*>(out.data.data()));
  if (info.type.big_endian) {
    for (float& value : out.data) {
      uint32_t bits;
      std::memcpy(&bits, &value, 4);
      bits = __builtin_bswap32(bits);
      std::memcpy(&value, &bits, 4);
    }
  }
  return out;
}

}  // namespace tconv3d::model
