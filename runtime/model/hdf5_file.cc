#include "runtime/model/hdf5_file.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "runtime/memory_guard.hpp"
#include "runtime/model/hdf5_attribute.hpp"
#include "runtime/model/hdf5_dataset.hpp"
#include "runtime/model/hdf5_global_heap.hpp"
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

// Each structure is parsed at most once per file: a hostile file with many
// links or attributes cannot turn the loader's repeated lookups into
// quadratic work.
struct Hdf5File::State {
  struct Object {
    hdf5::ObjectHeader header;
    std::optional<std::map<std::string, hdf5::Link>> links;
    std::optional<hdf5::AttributeTable> attributes;
  };

  State(std::string bytes, const std::string& name) : image(std::move(bytes)), view(image, name) {}

  Object& object(uint64_t address) {
    auto found = objects.find(address);
    if (found == objects.end())
      found = objects.emplace(address, Object{hdf5::read_object_header(view, address), {}, {}}).first;
    return found->second;
  }

  const std::map<std::string, hdf5::Link>& links(Object& group) {
    if (!group.links) {
      std::map<std::string, hdf5::Link> by_name;
      for (hdf5::Link& link : hdf5::read_group_links(view, group.header)) by_name.emplace(link.name, std::move(link));
      group.links = std::move(by_name);
    }
    return *group.links;
  }

  const hdf5::AttributeTable& attributes(Object& object) {
    if (!object.attributes) object.attributes = hdf5::read_attributes(view, object.header);
    return *object.attributes;
  }

  // The object at `path` ("" is the root); null when a component is missing
  // or lies below something that is not a group.
  Object* find(const std::string& path) {
    Object* current = &object(root);
    if (path.empty() || path == "/") return current;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      if (end == start) return nullptr;  // an empty component
      if (!hdf5::is_group(current->header)) return nullptr;
      const auto& members = links(*current);
      const auto link = members.find(path.substr(start, end - start));
      if (link == members.end()) return nullptr;
      if (!link->second.hard) view.unsupported("soft or external link '" + path.substr(0, end) + "'");
      current = &object(link->second.address);
      start = end + 1;
    }
    return current;
  }

  const std::string image;  // never moves: `view` and the parsed structures point into it
  hdf5::FileImage view;
  uint64_t root = 0;
  std::map<uint64_t, Object> objects;
  hdf5::GlobalHeapReader heap;
  std::mutex mutex;
};

Hdf5File Hdf5File::open(std::string image, const std::string& name) {
  Hdf5File file;
  file.name_ = name;
  file.state_ = std::make_shared<State>(std::move(image), name);
  State& state = *file.state_;
  const hdf5::Superblock superblock = hdf5::read_superblock(state.image, state.view);
  state.root = superblock.root_object_header;
  // The root must at least be a readable group, so a damaged file fails here.
  if (!hdf5::is_group(state.object(state.root).header)) state.view.corrupt("the root object is not a group");
  return file;
}

bool Hdf5File::has_group(const std::string& path) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  const State::Object* object = state_->find(path);
  return object && hdf5::is_group(object->header);
}

bool Hdf5File::has_dataset(const std::string& path) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  const State::Object* object = state_->find(path);
  return object && hdf5::is_dataset(object->header);
}

std::vector<std::string> Hdf5File::children(const std::string& group) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  State::Object* object = state_->find(group);
  if (!object || !hdf5::is_group(object->header)) throw Error(name_, "no group '" + object_path(group) + "'");
  std::vector<std::string> names;
  for (const auto& [name, link] : state_->links(*object)) names.push_back(name);
  return names;  // sorted: the map's order
}

std::optional<std::vector<std::string>> Hdf5File::string_list_attribute(const std::string& object,
                                                                        const std::string& attr) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  State::Object* found = state_->find(object);
  if (!found) return std::nullopt;
  const hdf5::AttributeTable& table = state_->attributes(*found);
  const std::string where = object_path(object);
  auto read_one = [&](const std::string& attr_name) -> std::optional<std::vector<std::string>> {
    const auto attribute = table.compact.find(attr_name);
    if (attribute == table.compact.end()) {
      if (table.dense) state_->view.unsupported("dense attribute storage (fractal heap) on '" + where + "'");
      return std::nullopt;
    }
    return hdf5::attribute_strings(state_->view, attribute->second, state_->heap,
                                   "attribute '" + attr_name + "' of '" + where + "'");
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
  std::lock_guard<std::mutex> lock(state_->mutex);
  const State::Object* object = state_->find(path);
  if (!object || !hdf5::is_dataset(object->header)) throw Error(name_, "no dataset '" + path + "'");
  const hdf5::FileImage& view = state_->view;
  const hdf5::DatasetInfo info = hdf5::read_dataset_info(view, object->header, path);
  if (!info.type.is_float32())
    throw Error(name_, "dataset '" + path + "' holds " + info.type.describe() + "; tconv3d needs float32 weights");
  Float32Dataset out;
  for (uint64_t dim : info.space.dims) out.shape.push_back(static_cast<int64_t>(dim));
  const uint64_t count = info.space.element_count();  // read_dataset_info bounded it by the file size
  check_allocatable(4.0 * double(count), name_ + ": " + path);
  out.data.resize(static_cast<size_t>(count));
  hdf5::read_dataset_bytes(view, object->header, info, path, reinterpret_cast<char*>(out.data.data()));
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
