#include "runtime/model/hdf5_datatype.hpp"

namespace tconv3d::model::hdf5 {
namespace {

constexpr int kMaxRank = 32;
// A variable-length type nests its base type; HDF5 allows deeper nesting than
// a string needs, a hostile file could ask for unbounded recursion.
constexpr int kMaxNesting = 4;

Datatype parse(ByteCursor& cursor, int depth) {
  if (depth > kMaxNesting) cursor.file().corrupt(cursor.what() + ": datatype nested too deeply");
  const uint8_t class_and_version = cursor.u8();
  const uint32_t bits = cursor.uint(3);
  Datatype type;
  type.hdf5_class = class_and_version & 0x0F;
  type.size = cursor.u32();
  switch (type.hdf5_class) {
    case 0:  // fixed-point
      type.type_class = TypeClass::kInteger;
      type.big_endian = bits & 0x01;
      type.is_signed = bits & 0x08;
      cursor.skip(4);  // bit offset, precision
      break;
    case 1: {  // floating-point
      type.type_class = TypeClass::kFloat;
      if (bits & 0x40) cursor.file().unsupported("VAX-order floating point");
      type.big_endian = bits & 0x01;
      cursor.skip(4 + 1);  // bit offset, precision, exponent location
      type.exponent_bits = cursor.u8();
      cursor.skip(1);  // mantissa location
      type.mantissa_bits = cursor.u8();
      cursor.skip(4);  // exponent bias
      break;
    }
    case 3:  // fixed-length string
      type.type_class = TypeClass::kFixedString;
      type.string_padding = bits & 0x0F;
      break;
    case 9: {  // variable-length: a sequence of its base type, or a string
      const Datatype base = parse(cursor, depth + 1);
      (void)base;  // a string's base is a 1-byte character type; the length field counts bytes
      type.type_class = (bits & 0x0F) == 1 ? TypeClass::kVariableString : TypeClass::kOther;
      break;
    }
    default:  // compound, array, enum, reference, ...: never Keras weights or names
      break;
  }
  return type;
}

}  // namespace

std::string Datatype::describe() const {
  switch (type_class) {
    case TypeClass::kInteger: return std::string(is_signed ? "int" : "uint") + std::to_string(8 * uint64_t(size));
    case TypeClass::kFloat:
      if (size == 2 && exponent_bits == 8) return "bfloat16";
      return "float" + std::to_string(8 * uint64_t(size));
    case TypeClass::kFixedString:
    case TypeClass::kVariableString: return "strings";
    case TypeClass::kOther: break;
  }
  return "a non-numeric type (HDF5 datatype class " + std::to_string(hdf5_class) + ")";
}

uint64_t Dataspace::element_count() const {
  if (null) return 0;
  uint64_t count = 1;
  for (uint64_t dim : dims) {
    if (dim == 0) return 0;
    if (count > (uint64_t(1) << 62) / dim) return uint64_t(1) << 62;  // saturates; callers bound it by the file
    count *= dim;
  }
  return count;
}

Datatype parse_datatype(ByteCursor& cursor) { return parse(cursor, 0); }

Dataspace parse_dataspace(ByteCursor& cursor) {
  const int version = cursor.u8();
  const int rank = cursor.u8();
  const uint8_t flags = cursor.u8();
  Dataspace space;
  if (version == 1) {
    cursor.skip(1 + 4);  // reserved
  } else if (version == 2) {
    const int kind = cursor.u8();  // 0 scalar, 1 simple, 2 null
    if (kind > 2) cursor.file().corrupt(cursor.what() + ": unknown dataspace type " + std::to_string(kind));
    space.null = kind == 2;
  } else {
    cursor.file().corrupt(cursor.what() + ": unknown dataspace version " + std::to_string(version));
  }
  if (rank > kMaxRank) cursor.file().corrupt(cursor.what() + ": dataspace rank " + std::to_string(rank));
  for (int i = 0; i < rank; ++i) space.dims.push_back(cursor.length());
  (void)flags;  // maximum dimensions may follow; a reader of fixed data ignores them
  return space;
}

}  // namespace tconv3d::model::hdf5
