// HDF5 datatype and dataspace messages: what one element is, and how many.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/hdf5_bytes.hpp"

namespace tconv3d::model::hdf5 {

enum class TypeClass { kInteger, kFloat, kFixedString, kVariableString, kOther };

struct Datatype {
  TypeClass type_class = TypeClass::kOther;
  int hdf5_class = -1;     // the class number in the file, for messages about kOther
  uint32_t size = 0;       // bytes per element
  bool big_endian = false;
  bool is_signed = false;
  int exponent_bits = 0;   // floats only
  int mantissa_bits = 0;
  int string_padding = 0;  // fixed strings: 0 null-terminated, 1 null-padded, 2 space-padded

  bool is_float32() const {
    return type_class == TypeClass::kFloat && size == 4 && exponent_bits == 8 && mantissa_bits == 23;
  }
  // "float32", "bfloat16", "int64", "uint8", "string", ... for error messages.
  std::string describe() const;
};

struct Dataspace {
  std::vector<uint64_t> dims;  // empty for a scalar
  bool null = false;           // no elements at all
  uint64_t element_count() const;
};

Datatype parse_datatype(ByteCursor& cursor);
Dataspace parse_dataspace(ByteCursor& cursor);

}  // namespace tconv3d::model::hdf5
