#include "runtime/model/hdf5_dataset.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "runtime/model/hdf5_btree.hpp"

namespace tconv3d::model::hdf5 {
namespace {


std::string filter_name(uint16_t id) {
  switch (id) {
    case 1: return "deflate";
    case 2: return "shuffle";
    case 3: return "fletcher32";
    case 4: return "szip";
    case 5: return "nbit";
    case 6: return "scaleoffset";
    default: return "filter " + std::to_string(id);
  }
}

void refuse_filters(const FileImage& file, const ObjectHeader& header, const std::string& path) {
  const HeaderMessage* pipeline = header.find(kFilterPipelineMessage);
  if (!pipeline) return;
  ByteCursor cursor = message_cursor(file, *pipeline, "filter pipeline of dataset '" + path + "'");
  const int version = cursor.u8();
  const int count = cursor.u8();
  if (count == 0) return;
  if (version == 1) cursor.skip(6);
  const uint16_t first = cursor.u16();
  file.unsupported("compressed or filtered dataset '" + path + "' (" + filter_name(first) + ")");
}

// Copies one chunk into the dataset, clipped at the dataset's edges.
class ChunkCopier {
 public:
  ChunkCopier(const std::vector<uint64_t>& dims, const std::vector<uint64_t>& chunk, uint64_t element_size, char* out)
      : dims_(dims), chunk_(chunk), element_size_(element_size), out_(out) {}

  void copy(const std::vector<uint64_t>& origin, std::string_view data) {
    const size_t rank = dims_.size();
    const size_t last = rank - 1;
    const uint64_t row = std::min(chunk_[last], dims_[last] - origin[last]) * element_size_;
    std::vector<uint64_t> index(rank, 0);  // position inside the chunk, last dimension fixed at 0
    while (true) {
      uint64_t source = 0, target = 0;
      for (size_t d = 0; d < rank; ++d) {
        source = source * chunk_[d] + index[d];
        target = target * dims_[d] + origin[d] + index[d];
      }
      std::memcpy(out_ + target * element_size_, data.data() + source * element_size_, row);
      // Next row: an odometer over the leading dimensions, clipped to the dataset.
      bool advanced = false;
      for (size_t d = last; d > 0 && !advanced;) {
        --d;
        advanced = ++index[d] < chunk_[d] && origin[d] + index[d] < dims_[d];
        if (!advanced) index[d] = 0;
      }
      if (!advanced) return;
    }
  }

 private:
  const std::vector<uint64_t>& dims_;
  const std::vector<uint64_t>& chunk_;
  uint64_t element_size_;
  char* out_;
};

class ChunkTreeReader {
 public:
  ChunkTreeReader(const FileImage& file, const std::string& path, const std::vector<uint64_t>& dims,
                  const std::vector<uint64_t>& chunk, uint64_t element_size, char* out)
      : file_(file), path_(path), dims_(dims), chunk_(chunk), copier_(dims, chunk, element_size, out) {
    chunk_bytes_ = element_size;
    for (uint64_t c : chunk) chunk_bytes_ *= c;  // bounded: the caller checked it fits in the file
  }

  void read(uint64_t address, int expected_level) {
    const std::string what = "chunk B-tree node of dataset '" + path_ + "' at address " + std::to_string(address);
    BTreeNode node = open_btree_node(file_, address, 1, expected_level, what, visited_);
    ByteCursor& cursor = node.cursor;
    const int level = node.level;
    const uint16_t entries = node.entries;
    std::vector<uint64_t> origin(dims_.size());
    for (uint16_t i = 0; i < entries; ++i) {
      const uint32_t stored_size = cursor.u32();
      cursor.u32();  // filter mask: no filters in this subset
      for (uint64_t& o : origin) o = cursor.u64();
      cursor.u64();  // the element-size dimension's offset, always 0
      const uint64_t child = cursor.address();
      if (level > 0) {
        read(child, level - 1);
        continue;
      }
      check_origin(origin, what);
      if (stored_size != chunk_bytes_)
        file_.corrupt(what + ": a chunk of " + std::to_string(stored_size) + " bytes where " +
                      std::to_string(chunk_bytes_) + " are needed");
      file_.charge(chunk_bytes_);
      copier_.copy(origin, file_.at(child, chunk_bytes_, "a chunk of dataset '" + path_ + "'").rest());
    }
  }

 private:
  void check_origin(const std::vector<uint64_t>& origin, const std::string& what) {
    for (size_t d = 0; d < dims_.size(); ++d)
      if (origin[d] >= dims_[d] || origin[d] % chunk_[d] != 0) file_.corrupt(what + ": a chunk at a bad offset");
    // Each chunk is copied once: a hostile tree repeating one chunk cannot multiply the work.
    if (!origins_.insert(origin).second) file_.corrupt(what + ": the same chunk twice");
  }

  const FileImage& file_;
  const std::string& path_;
  const std::vector<uint64_t>& dims_;
  const std::vector<uint64_t>& chunk_;
  uint64_t chunk_bytes_ = 0;
  ChunkCopier copier_;
  std::set<uint64_t> visited_;
  std::set<std::vector<uint64_t>> origins_;
};

void read_chunked(const FileImage& file, ByteCursor& cursor, const DatasetInfo& info, const std::string& path,
                  char* out) {
  const int dimensionality = cursor.u8();  // the rank, plus one for the element size
  const uint64_t tree = cursor.address();
  const std::vector<uint64_t>& dims = info.space.dims;
  if (size_t(dimensionality) != dims.size() + 1 || dims.empty())
    file.corrupt("dataset '" + path + "': chunk rank " + std::to_string(dimensionality - 1) + " for a rank " +
                 std::to_string(dims.size()) + " dataset");
  std::vector<uint64_t> chunk(dims.size());
  uint64_t chunk_bytes = info.type.size;
  for (uint64_t& c : chunk) {
    c = cursor.u32();
    if (c == 0) file.corrupt("dataset '" + path + "' has a zero chunk size");
    if (c > file.size() / chunk_bytes) file.corrupt("dataset '" + path + "' has chunks larger than the file");
    chunk_bytes *= c;
  }
  if (cursor.u32() != info.type.size) file.corrupt("dataset '" + path + "': chunk element size differs from its type");
  std::memset(out, 0, info.space.element_count() * info.type.size);
  if (tree == kUndefinedAddress) return;  // no chunk written yet: all fill value
  ChunkTreeReader(file, path, dims, chunk, info.type.size, out).read(tree, -1);
}

}  // namespace

DatasetInfo read_dataset_info(const FileImage& file, const ObjectHeader& header, const std::string& path) {
  const HeaderMessage* type = header.find(kDatatypeMessage);
  const HeaderMessage* space = header.find(kDataspaceMessage);
  if (!type || !space) file.corrupt("dataset '" + path + "' has no datatype or dataspace");
  if (type->shared() || space->shared()) file.unsupported("shared (committed) datatype in dataset '" + path + "'");
  DatasetInfo info;
  ByteCursor type_cursor = message_cursor(file, *type, "datatype of dataset '" + path + "'");
  info.type = parse_datatype(type_cursor);
  ByteCursor space_cursor = message_cursor(file, *space, "dataspace of dataset '" + path + "'");
  info.space = parse_dataspace(space_cursor);
  if (info.type.size == 0) file.corrupt("dataset '" + path + "' has zero-sized elements");
  // Every stored byte is in the file, so a dataset larger than the file is a lie
  // (or so sparse that no Keras file is like it); refusing it bounds the allocation.
  const uint64_t count = info.space.element_count();
  if (count > file.size() / info.type.size)
    file.corrupt("dataset '" + path + "' claims " + std::to_string(count) + " elements of " +
                 std::to_string(info.type.size) + " bytes, more than the whole file holds");
  return info;
}

void read_dataset_bytes(const FileImage& file, const ObjectHeader& header, const DatasetInfo& info,
                        const std::string& path, char* out) {
  const HeaderMessage* layout = header.find(kDataLayoutMessage);
  if (!layout) file.corrupt("dataset '" + path + "' has no data layout");
  refuse_filters(file, header, path);
  const uint64_t bytes = info.space.element_count() * info.type.size;  // bounded by read_dataset_info
  file.charge(bytes);
  ByteCursor cursor = message_cursor(file, *layout, "data layout of dataset '" + path + "'");
  const int version = cursor.u8();
  if (version < 3 || version > 4)
    file.unsupported("data layout message version " + std::to_string(version) + " (dataset '" + path + "')");
  const int layout_class = cursor.u8();
  if (layout_class == 0) {  // compact: the data is in the message
    const uint16_t size = cursor.u16();
    if (size < bytes) file.corrupt("dataset '" + path + "': compact data shorter than its shape");
    std::memcpy(out, cursor.bytes(size).data(), bytes);
  } else if (layout_class == 1) {  // contiguous
    const uint64_t address = cursor.address();
    const uint64_t size = cursor.length();
    if (bytes == 0) return;
    if (address == kUndefinedAddress) {  // never written: all fill value
      std::memset(out, 0, bytes);
      return;
    }
    if (size < bytes) file.corrupt("dataset '" + path + "': stored data shorter than its shape");
    std::memcpy(out, file.at(address, bytes, "data of dataset '" + path + "'").rest().data(), bytes);
  } else if (layout_class == 2) {
    if (version != 3)
      file.unsupported("chunk index of a version 4 data layout (dataset '" + path + "', written with libver='latest')");
    read_chunked(file, cursor, info, path, out);
  } else {
    file.unsupported("data layout class " + std::to_string(layout_class) + " (dataset '" + path + "')");
  }
}

}  // namespace tconv3d::model::hdf5
