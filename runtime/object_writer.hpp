// A minimal ELF64 relocatable object writer for x86-64 machine code we
// generated ourselves (the Xbyak AOT path): a .text section, an optional
// .rodata section (baked weights, index tables), global symbols, 32-bit
// PC-relative relocations from .text, and an empty .note.GNU-stack so the
// linker keeps the stack non-executable. Code that needs no relocation stays
// position-independent; a PC-relative reference is resolved by the linker.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tconv3d {

enum class ObjectSection { kText, kRodata };

struct ObjectSymbol {
  std::string name;
  ObjectSection section = ObjectSection::kText;
  uint64_t offset = 0;
  uint64_t size = 0;
  bool function = true;  // STT_FUNC, else STT_OBJECT
  bool global = true;    // STB_GLOBAL, else STB_LOCAL
};

// A signed 32-bit field at `text_offset` in .text that receives
// symbol + addend - address_of_field (R_X86_64_PC32). `symbol` names an entry
// of ObjectImage::symbols.
struct ObjectRelocation {
  uint64_t text_offset = 0;
  std::string symbol;
  int64_t addend = 0;
};

struct ObjectImage {
  std::vector<uint8_t> text;
  std::vector<uint8_t> rodata;
  uint64_t text_alignment = 64;
  uint64_t rodata_alignment = 64;
  std::vector<ObjectSymbol> symbols;
  std::vector<ObjectRelocation> relocations;
};

// Serializes `image` as an ELF64 little-endian x86-64 relocatable object.
// Throws tconv3d::Error for a symbol outside its section, a duplicate or
// empty name, or a relocation naming an unknown symbol.
std::vector<uint8_t> write_elf_x86_64_object(const ObjectImage& image);


}  // namespace tconv3d
