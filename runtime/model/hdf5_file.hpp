// A read-only HDF5 file held in memory, through libhdf5's C API.
//
// libhdf5 1.10 can crash on malformed files, so the image is checked first:
// the signature, a known superblock version, and an end-of-file address that
// the bytes actually reach (the usual sign of a truncated file). HDF5's own
// error printing is switched off; every failure becomes a tconv3d::Error
// naming the file and the object. libhdf5 is not thread-safe in Debian's
// build: every call here holds one process-wide lock.
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

  Hdf5File(Hdf5File&&) noexcept;
  Hdf5File& operator=(Hdf5File&&) noexcept;
  ~Hdf5File();

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
  std::string name_;
  std::string image_;
  int64_t file_id_ = -1;
};

// The pre-check alone, for tests and fuzzing: throws Error(name, ...) when
// the image is not a well-formed HDF5 superblock that fits in the bytes.
void check_hdf5_image(const std::string& image, const std::string& name);

}  // namespace tconv3d::model
