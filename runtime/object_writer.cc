#include "runtime/object_writer.hpp"

#include <cstring>
#include <map>
#include <set>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

// ELF constants (System V gABI and the x86-64 psABI).
constexpr uint16_t kTypeRelocatable = 1;
constexpr uint16_t kMachineX86_64 = 62;
constexpr uint32_t kShtProgbits = 1, kShtSymtab = 2, kShtStrtab = 3, kShtRela = 4;
constexpr uint64_t kShfAlloc = 0x2, kShfExec = 0x4, kShfInfoLink = 0x40;
constexpr uint8_t kStbLocal = 0, kStbGlobal = 1;
constexpr uint8_t kSttObject = 1, kSttFunc = 2, kSttSection = 3;
constexpr uint32_t kRelocPc32 = 2;
constexpr size_t kHeaderSize = 64, kSectionHeaderSize = 64, kSymbolSize = 24, kRelaSize = 24;

class ByteSink {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void append(const std::vector<uint8_t>& data) { bytes_.insert(bytes_.end(), data.begin(), data.end()); }
  void align(uint64_t alignment) {
    while (bytes_.size() % alignment) bytes_.push_back(0);
  }
  size_t size() const { return bytes_.size(); }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

class StringTable {
 public:
  StringTable() { bytes_.push_back(0); }
  uint32_t add(const std::string& s) {
    const auto offset = static_cast<uint32_t>(bytes_.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    bytes_.push_back(0);
    return offset;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

struct SectionHeader {
  uint32_t name = 0, type = 0;
  uint64_t flags = 0, offset = 0, size = 0;
  uint32_t link = 0, info = 0;
  uint64_t alignment = 1, entry_size = 0;
};

void check_image(const ObjectImage& image) {
  std::set<std::string> names;
  for (const ObjectSymbol& s : image.symbols) {
    if (s.name.empty()) throw Error("symbol", "empty symbol name");
    if (!names.insert(s.name).second) throw Error("symbol", "duplicate symbol '" + s.name + "'");
    const size_t limit = s.section == ObjectSection::kText ? image.text.size() : image.rodata.size();
    if (s.offset > limit || s.size > limit - s.offset)
      throw Error("symbol", "'" + s.name + "' lies outside its section");
  }
  for (const ObjectRelocation& r : image.relocations) {
    if (!names.count(r.symbol)) throw Error("relocation", "unknown symbol '" + r.symbol + "'");
    if (r.text_offset + 4 > image.text.size()) throw Error("relocation", "field outside .text");
  }
}

}  // namespace

std::vector<uint8_t> write_elf_x86_64_object(const ObjectImage& image) {
  check_image(image);
  const bool has_rodata = !image.rodata.empty();
  const bool has_relocations = !image.relocations.empty();

  // Section indexes, in file order.
  uint16_t next = 1;
  const uint16_t text_index = next++;
  const uint16_t rela_index = has_relocations ? next++ : 0;
  const uint16_t rodata_index = has_rodata ? next++ : 0;
  const uint16_t note_index = next++;
  const uint16_t symtab_index = next++;
  const uint16_t strtab_index = next++;
  const uint16_t shstrtab_index = next++;
  const uint16_t section_count = next;

  // Symbols: null, section symbols, locals, then globals (ELF requires locals first).
  StringTable strtab;
  ByteSink symtab;
  std::map<std::string, uint32_t> symbol_index;
  uint32_t count = 0;
  auto add_symbol = [&](uint32_t name, uint8_t bind, uint8_t type, uint16_t section, uint64_t value,
                        uint64_t size) {
    symtab.u32(name);
    symtab.u8(static_cast<uint8_t>((bind << 4) | type));
    symtab.u8(0);  // default visibility
    symtab.u16(section);
    symtab.u64(value);
    symtab.u64(size);
    return count++;
  };
  add_symbol(0, kStbLocal, 0, 0, 0, 0);
  add_symbol(0, kStbLocal, kSttSection, text_index, 0, 0);
  if (has_rodata) add_symbol(0, kStbLocal, kSttSection, rodata_index, 0, 0);
  for (bool global : {false, true}) {
    for (const ObjectSymbol& s : image.symbols) {
      if (s.global != global) continue;
      const uint16_t section = s.section == ObjectSection::kText ? text_index : rodata_index;
      symbol_index[s.name] = add_symbol(strtab.add(s.name), global ? kStbGlobal : kStbLocal,
                                        s.function ? kSttFunc : kSttObject, section, s.offset, s.size);
    }
  }
  // sh_info of .symtab is one past the last local symbol.
  uint32_t first_global = has_rodata ? 3 : 2;
  for (const ObjectSymbol& s : image.symbols) first_global += s.global ? 0 : 1;

  ByteSink rela;
  for (const ObjectRelocation& r : image.relocations) {
    rela.u64(r.text_offset);
    rela.u64((uint64_t(symbol_index.at(r.symbol)) << 32) | kRelocPc32);
    rela.u64(static_cast<uint64_t>(r.addend));
  }

  StringTable shstrtab;
  std::vector<SectionHeader> headers(section_count);
  ByteSink file;
  file.append(std::vector<uint8_t>(kHeaderSize, 0));  // patched below

  auto place = [&](uint16_t index, const char* name, uint32_t type, uint64_t flags, const std::vector<uint8_t>& data,
                   uint64_t alignment) {
    SectionHeader& h = headers[index];
    h.name = shstrtab.add(name);
    h.type = type;
    h.flags = flags;
    h.alignment = alignment;
    file.align(alignment);
    h.offset = file.size();
    h.size = data.size();
    file.append(data);
    return &h;
  };
  place(text_index, ".text", kShtProgbits, kShfAlloc | kShfExec, image.text, image.text_alignment);
  if (has_relocations) {
    SectionHeader* h = place(rela_index, ".rela.text", kShtRela, kShfInfoLink, rela.take(), 8);
    h->link = symtab_index;
    h->info = text_index;
    h->entry_size = kRelaSize;
  }
  if (has_rodata) place(rodata_index, ".rodata", kShtProgbits, kShfAlloc, image.rodata, image.rodata_alignment);
  place(note_index, ".note.GNU-stack", kShtProgbits, 0, {}, 1);
  {
    SectionHeader* h = place(symtab_index, ".symtab", kShtSymtab, 0, symtab.take(), 8);
    h->link = strtab_index;
    h->info = first_global;
    h->entry_size = kSymbolSize;
  }
  place(strtab_index, ".strtab", kShtStrtab, 0, strtab.bytes(), 1);
  const uint32_t shstrtab_name = shstrtab.add(".shstrtab");
  {
    SectionHeader& h = headers[shstrtab_index];
    h.name = shstrtab_name;
    h.type = kShtStrtab;
    h.offset = file.size();
    h.size = shstrtab.bytes().size();
    file.append(shstrtab.bytes());
  }
  file.align(8);
  const uint64_t section_headers_offset = file.size();
  for (const SectionHeader& h : headers) {
    file.u32(h.name);
    file.u32(h.type);
    file.u64(h.flags);
    file.u64(0);  // sh_addr
    file.u64(h.offset);
    file.u64(h.size);
    file.u32(h.link);
    file.u32(h.info);
    file.u64(h.alignment);
    file.u64(h.entry_size);
  }

  std::vector<uint8_t> bytes = file.take();
  ByteSink header;
  const uint8_t ident[8] = {0x7f, 'E', 'L', 'F', 2 /*64-bit*/, 1 /*little endian*/, 1 /*version*/, 0 /*System V*/};
  for (uint8_t b : ident) header.u8(b);
  for (int i = 0; i < 8; ++i) header.u8(0);
  header.u16(kTypeRelocatable);
  header.u16(kMachineX86_64);
  header.u32(1);  // e_version
  header.u64(0);  // e_entry
  header.u64(0);  // e_phoff
  header.u64(section_headers_offset);
  header.u32(0);  // e_flags
  header.u16(kHeaderSize);
  header.u16(0);  // e_phentsize
  header.u16(0);  // e_phnum
  header.u16(kSectionHeaderSize);
  header.u16(section_count);
  header.u16(shstrtab_index);
  const std::vector<uint8_t> h = header.take();
  std::memcpy(bytes.data(), h.data(), h.size());
  return bytes;
}


}  // namespace tconv3d
