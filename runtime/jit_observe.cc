#include "runtime/jit_observe.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace tconv3d {
namespace {

constexpr size_t kMaxNameLength = 200;  // leaves room for ".bin" under NAME_MAX (255)

std::mutex& observe_mutex() {
  static std::mutex mutex;
  return mutex;
}

void warn(const std::string& message) { std::fprintf(stderr, "tconv3d: warning: %s\n", message.c_str()); }

void dump_to_folder(const std::string& folder, const void* entry, size_t size, const std::string& file_name) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) {
    warn("TCONV3D_DUMP_DIR='" + folder + "': cannot create the folder (" + error.message() + "); kernel " +
         file_name + " not dumped");
    return;
  }
  const std::filesystem::path path = std::filesystem::path(folder) / (file_name + ".bin");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(entry), static_cast<std::streamsize>(size));
  out.close();
  if (!out) warn("TCONV3D_DUMP_DIR: cannot write '" + path.string() + "': " + std::strerror(errno));
}

void append_perf_map(const void* entry, size_t size, const std::string& symbol) {
  const std::string path = "/tmp/perf-" + std::to_string(getpid()) + ".map";
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) {
    warn("TCONV3D_PERF=map: cannot open '" + path + "': " + std::strerror(errno));
    return;
  }
  std::fprintf(file, "%" PRIxPTR " %zx %s\n", reinterpret_cast<uintptr_t>(entry), size, symbol.c_str());
  if (std::fclose(file) != 0) warn("TCONV3D_PERF=map: cannot write '" + path + "'");
}

// perf's jitdump format (tools/perf/Documentation/jitdump-specification.txt):
// a file header, then one JIT_CODE_LOAD record per function, with
// CLOCK_MONOTONIC timestamps so `perf record -k mono` can order them.
struct JitdumpFileHeader {
  uint32_t magic = 0x4A695444;  // "JiTD" written in host byte order
  uint32_t version = 1;
  uint32_t total_size = sizeof(JitdumpFileHeader);
  uint32_t elf_mach = EM_X86_64;
  uint32_t pad1 = 0;
  uint32_t pid = 0;
  uint64_t timestamp = 0;
  uint64_t flags = 0;
};

struct JitdumpCodeLoad {
  uint32_t id = 0;  // JIT_CODE_LOAD
  uint32_t total_size = 0;
  uint64_t timestamp = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint64_t vma = 0;
  uint64_t code_addr = 0;
  uint64_t code_size = 0;
  uint64_t code_index = 0;
};

uint64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
}

struct Jitdump {
  std::FILE* file = nullptr;
  pid_t owner = 0;  // a forked child starts its own file
  uint64_t next_index = 0;
};

std::FILE* open_jitdump(Jitdump& state) {
  if (state.file != nullptr && state.owner == getpid()) return state.file;
  if (state.file != nullptr) std::fclose(state.file);  // inherited from the parent across fork
  state = Jitdump{};
  const std::string path = "/tmp/jit-" + std::to_string(getpid()) + ".dump";
  const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    warn("TCONV3D_PERF=jitdump: cannot create '" + path + "': " + std::strerror(errno));
    return nullptr;
  }
  // perf finds the dump file through the MMAP event of an executable mapping
  // of it; the mapping is read-execute and never touched, so it stays W^X.
  const long page = sysconf(_SC_PAGESIZE);
  void* marker = mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
  if (marker == MAP_FAILED) warn("TCONV3D_PERF=jitdump: cannot map '" + path + "' for perf: " + std::strerror(errno));
  std::FILE* file = fdopen(fd, "wb");
  if (file == nullptr) {
    close(fd);
    warn("TCONV3D_PERF=jitdump: cannot open '" + path + "' for writing");
    return nullptr;
  }
  JitdumpFileHeader header;
  header.pid = static_cast<uint32_t>(getpid());
  header.timestamp = monotonic_ns();
  std::fwrite(&header, sizeof header, 1, file);
  state.file = file;
  state.owner = getpid();
  return file;
}

void append_jitdump(const void* entry, size_t size, const std::string& symbol) {
  static Jitdump state;
  std::FILE* file = open_jitdump(state);
  if (file == nullptr) return;
  JitdumpCodeLoad record;
  record.total_size = static_cast<uint32_t>(sizeof record + symbol.size() + 1 + size);
  record.timestamp = monotonic_ns();
  record.pid = static_cast<uint32_t>(getpid());
  record.tid = static_cast<uint32_t>(gettid());
  record.vma = record.code_addr = reinterpret_cast<uintptr_t>(entry);
  record.code_size = size;
  record.code_index = state.next_index++;
  const bool written = std::fwrite(&record, sizeof record, 1, file) == 1 &&
                       std::fwrite(symbol.c_str(), symbol.size() + 1, 1, file) == 1 &&
                       std::fwrite(entry, size, 1, file) == 1 && std::fflush(file) == 0;
  if (!written) warn("TCONV3D_PERF=jitdump: cannot write /tmp/jit-" + std::to_string(getpid()) + ".dump");
}

struct PerfModes {
  bool map = false;
  bool jitdump = false;
};

// "map", "1", "jitdump", "0"/"off", or a comma list of them; anything else is
// warned about once and ignored.
PerfModes parse_perf_modes(const std::string& value) {
  PerfModes modes;
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string token = value.substr(start, comma - start);
    if (token == "map" || token == "1") {
      modes.map = true;
    } else if (token == "jitdump") {
      modes.jitdump = true;
    } else if (!token.empty() && token != "0" && token != "off") {
      static std::string warned_for;
      if (warned_for != value) warn("TCONV3D_PERF='" + value + "': expected map, jitdump, 1 or 0; '" + token + "' ignored");
      warned_for = value;
    }
    start = comma + 1;
  }
  return modes;
}

bool is_set(const char* variable) { return variable != nullptr && *variable != '\0'; }

}  // namespace

std::string sanitize_kernel_name(const std::string& name) {
  std::string clean;
  clean.reserve(std::min(name.size(), kMaxNameLength));
  for (const char c : name) {
    if (clean.size() == kMaxNameLength) break;
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                         c == '.' || c == '-';
    clean += allowed ? c : '_';
  }
  if (clean.empty()) return "unnamed_kernel";
  // A leading '-' would read as an option to objdump, a leading '.' hides the file.
  if (clean[0] == '-' || clean[0] == '.') clean[0] = '_';
  return clean;
}

void register_jit_code(const void* entry, size_t size, const std::string& name) noexcept {
  try {
    const char* dump_folder = std::getenv("TCONV3D_DUMP_DIR");
    const char* perf = std::getenv("TCONV3D_PERF");
    if (!is_set(dump_folder) && !is_set(perf)) return;  // the usual case takes no lock
    std::lock_guard<std::mutex> lock(observe_mutex());
    const std::string clean_name = sanitize_kernel_name(name);
    if (is_set(dump_folder)) dump_to_folder(dump_folder, entry, size, clean_name);
    if (is_set(perf)) {
      const PerfModes modes = parse_perf_modes(perf);
      if (modes.map) append_perf_map(entry, size, clean_name);
      if (modes.jitdump) append_jitdump(entry, size, clean_name);
    }
  } catch (const std::exception& error) {
    warn(std::string("observing kernel '") + name + "' failed: " + error.what());
  } catch (...) {
    warn("observing a generated kernel failed");
  }
}

}  // namespace tconv3d
