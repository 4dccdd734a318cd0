// A read-only HDF5 file held in memory, read by tconv3d's own bounds-checked
// reader of the HDF5 subset that Keras and tf.keras write (hdf5_*.hpp):
// superblocks 0-3, object headers v1/v2, symbol-table and compact-link
// groups, string attributes (fixed and variable length), and contiguous,
// compact or unfiltered chunked datasets. A damaged file is a
// tconv3d::Error naming the file and what was wrong, never a crash or a
// hang; a valid file outside the subset is an "unsupported HDF5 feature"
// Error. What was parsed is kept, so that repeated lookups (Keras's loader
// asks for every layer's group by path) cost no more than one reading of
// each structure; a lock makes calls thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tconv3d::model {

struct Float32Dataset {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

class Hdf5File {
 public:
  // `name` is used in every error message (the file, or "model.keras:model.weights.h5").
  static Hdf5File open(std::string image, const std::string& name);

  const std::string& name() const { return name_; }
  bool has_group(const std::string& path) const;
  bool has_dataset(const std::string& path) const;
  std::vector<std::string> children(const std::string& group) const;  // sorted link names
  // String attribute (scalar string, or the attribute Keras splits into
  // NAME0, NAME1... when it is large); nullopt when absent.
  std::optional<std::string> string_attribute(const std::string& object, const std::string& attr) const;
  // A list of strings (fixed or variable length); an empty numeric array is
  // an empty list. nullopt when absent.
  std::optional<std::vector<std::string>> string_list_attribute(const std::string& object,
                                                                const std::string& attr) const;
  // Reads a float32 dataset; any other type is an Error naming the dtype.
  Float32Dataset read_float32(const std::string& path) const;

 private:
  Hdf5File() = default;
  struct State;  // the bytes, and what has been parsed from them (hdf5_file.cc)
  std::string name_;
  std::shared_ptr<State> state_;
};

}  // namespace tconv3d::model
