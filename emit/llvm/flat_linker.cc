#include "emit/llvm/flat_linker.hpp"

#include <llvm/BinaryFormat/ELF.h>
#include <llvm/Object/ELFObjectFile.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Support/MemoryBuffer.h>

#include <cstring>
#include <cstdint>
#include <map>
#include <optional>

#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

using llvm::object::ELFRelocationRef;
using llvm::object::ELFSectionRef;
using llvm::object::SectionRef;

template <typename T>
T check(llvm::Expected<T> value, const char* what) {
  if (!value) {
    llvm::consumeError(value.takeError());
    throw Error("backend", std::string("llvm: malformed object: ") + what);
  }
  return std::move(*value);
}

bool is_loaded(const SectionRef& section) {
  const ELFSectionRef elf(section);
  if (!(elf.getFlags() & llvm::ELF::SHF_ALLOC)) return false;
  // Unwind tables are not needed: kernels never throw and are not unwound through.
  if (elf.getType() == llvm::ELF::SHT_X86_64_UNWIND) return false;
  return elf.getType() == llvm::ELF::SHT_PROGBITS || elf.getType() == llvm::ELF::SHT_NOBITS;
}

}  // namespace

std::vector<uint8_t> link_flat_x86_64(const std::vector<uint8_t>& object, const std::string& entry_symbol) {
  const llvm::StringRef data(reinterpret_cast<const char*>(object.data()), object.size());
  auto file = check(llvm::object::ObjectFile::createObjectFile(llvm::MemoryBufferRef(data, "kernel")), "not an object");
  auto* elf = llvm::dyn_cast<llvm::object::ELFObjectFileBase>(file.get());
  if (!elf || elf->getArch() != llvm::Triple::x86_64) throw Error("backend", "llvm: expected an x86-64 ELF object");

  // Find the entry symbol's section: it goes first.
  std::optional<SectionRef> entry_section;
  for (const auto& symbol : elf->symbols()) {
    if (check(symbol.getName(), "symbol name") != entry_symbol) continue;
    if (check(symbol.getType(), "symbol type") != llvm::object::SymbolRef::ST_Function) continue;
    auto section = check(symbol.getSection(), "symbol section");
    if (section == elf->section_end()) continue;
    if (check(symbol.getValue(), "symbol value") != 0)
      throw Error("backend", "llvm: entry '" + entry_symbol + "' does not start its section");
    entry_section = *section;
  }
  if (!entry_section) throw Error("backend", "llvm: object does not define '" + entry_symbol + "'");

  // Layout.
  std::vector<SectionRef> order{*entry_section};
  for (const SectionRef& s : elf->sections())
    if (is_loaded(s) && s != *entry_section) order.push_back(s);
  std::map<uint64_t, uint64_t> base;  // section index -> offset in the flat buffer
  std::vector<uint8_t> flat;
  for (const SectionRef& s : order) {
    if (ELFSectionRef(s).getFlags() & llvm::ELF::SHF_WRITE) {
      if (s.getSize() == 0) continue;
      throw Error("backend", "llvm: kernel has writable data (" + check(s.getName(), "name").str() + ")");
    }
    const uint64_t alignment = std::max<uint64_t>(1, s.getAlignment());
    if (alignment > 4096) throw Error("backend", "llvm: section alignment above a page");
    flat.resize((flat.size() + alignment - 1) / alignment * alignment, 0xcc);
    base[s.getIndex()] = flat.size();
    if (s.isBSS()) {
      flat.resize(flat.size() + s.getSize(), 0);
    } else {
      const llvm::StringRef contents = check(s.getContents(), "section contents");
      flat.insert(flat.end(), contents.begin(), contents.end());
    }
  }

  // Relocations of the loaded sections; all must be PC-relative and internal.
  for (const SectionRef& relocations : elf->sections()) {
    auto target = check(relocations.getRelocatedSection(), "relocated section");
    if (target == elf->section_end() || !base.count(target->getIndex())) continue;
    const uint64_t target_base = base.at(target->getIndex());
    for (const auto& reloc : relocations.relocations()) {
      const auto symbol = reloc.getSymbol();
      if (symbol == elf->symbol_end()) throw Error("backend", "llvm: relocation without a symbol");
      const std::string name = check(symbol->getName(), "symbol name").str();
      auto section = check(symbol->getSection(), "symbol section");
      if (section == elf->section_end())
        throw Error("backend", "llvm: kernel refers to external symbol '" + name +
                                   "' (every helper must be expanded in IR)");
      if (!base.count(section->getIndex()))
        throw Error("backend", "llvm: kernel refers to an unloaded section via '" + name + "'");
      const int64_t s = static_cast<int64_t>(base.at(section->getIndex()) + check(symbol->getValue(), "value"));
      const int64_t a = check(ELFRelocationRef(reloc).getAddend(), "addend");
      const uint64_t field = target_base + reloc.getOffset();
      const int64_t p = static_cast<int64_t>(field);
      switch (reloc.getType()) {
        case llvm::ELF::R_X86_64_PC32:
        case llvm::ELF::R_X86_64_PLT32: {
          const int64_t value = s + a - p;
          if (field + 4 > flat.size() || value < INT32_MIN || value > INT32_MAX)
            throw Error("backend", "llvm: PC32 relocation out of range");
          const int32_t v32 = static_cast<int32_t>(value);
          std::memcpy(flat.data() + field, &v32, 4);
          break;
        }
        case llvm::ELF::R_X86_64_PC64: {
          const int64_t value = s + a - p;
          if (field + 8 > flat.size()) throw Error("backend", "llvm: PC64 relocation out of range");
          std::memcpy(flat.data() + field, &value, 8);
          break;
        }
        default:
          throw Error("backend", "llvm: relocation type " + std::to_string(reloc.getType()) + " against '" + name +
                                     "' is not position-independent");
      }
    }
  }
  return flat;
}

}  // namespace tconv3d::llvm_backend
