#include "runtime/exec_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "runtime/jit_observe.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

size_t page_size() {
  static const size_t size = [] {
    const long value = sysconf(_SC_PAGESIZE);
    return value > 0 ? static_cast<size_t>(value) : size_t{4096};
  }();
  return size;
}

Error mapping_error(const std::string& name, const char* step, size_t bytes, int error_number) {
  return Error("kernel '" + name + "'",
               std::string(step) + " of " + std::to_string(bytes) + " bytes failed: " + std::strerror(error_number));
}

}  // namespace

std::shared_ptr<const ExecutableCode> ExecutableCode::create(const uint8_t* bytes, size_t size,
                                                             const std::string& name) {
  if (size == 0) throw Error("kernel '" + name + "'", "has no code bytes (size 0)");
  if (bytes == nullptr) throw Error("kernel '" + name + "'", "code bytes pointer is null");
  const size_t page = page_size();
  if (size > SIZE_MAX - page) throw Error("kernel '" + name + "'", "code size " + std::to_string(size) + " is too large");
  const size_t mapped = (size + page - 1) / page * page;

  // W^X: the mapping starts read-write (never executable) and becomes
  // read-execute (never writable) before anyone can see its address.
  void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw mapping_error(name, "mmap", mapped, errno);
  std::memcpy(base, bytes, size);
  if (mprotect(base, mapped, PROT_READ | PROT_EXEC) != 0) {
    const int error_number = errno;
    munmap(base, mapped);
    throw mapping_error(name, "mprotect to read-execute", mapped, error_number);
  }

  ExecutableCode* raw = nullptr;
  try {
    raw = new ExecutableCode(base, size, mapped, name);
  } catch (...) {
    munmap(base, mapped);
    throw;
  }
  // From here the object owns the mapping (a failing shared_ptr leaves it to the unique_ptr).
  std::unique_ptr<ExecutableCode> owned(raw);
  std::shared_ptr<const ExecutableCode> code(std::move(owned));
  register_jit_code(base, size, name);
  return code;
}

ExecutableCode::ExecutableCode(void* base, size_t size, size_t mapped, std::string name)
    : base_(base), size_(size), mapped_(mapped), name_(std::move(name)) {}

ExecutableCode::~ExecutableCode() { munmap(base_, mapped_); }

}  // namespace tconv3d
