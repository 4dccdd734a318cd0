// Executable memory for generated code, W^X: the bytes are copied into a
// fresh read-write mapping, which is then turned read-execute before anyone
// can call it. Never writable and executable at once. Each region announces
// itself to the observers (TCONV3D_DUMP_DIR dumps, perf map) under its name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tconv3d {

class ExecutableCode {
 public:
  // Throws tconv3d::Error if the mapping or the protection change fails.
  static std::shared_ptr<const ExecutableCode> create(const uint8_t* bytes, size_t size, const std::string& name);
  ~ExecutableCode();
  ExecutableCode(const ExecutableCode&) = delete;
  ExecutableCode& operator=(const ExecutableCode&) = delete;

  const void* entry() const { return base_; }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }

  template <typename Fn>
  Fn function() const {
    return reinterpret_cast<Fn>(const_cast<void*>(base_));
  }

 private:
  ExecutableCode(void* base, size_t size, size_t mapped, std::string name);
  void* base_;
  size_t size_;
  size_t mapped_;
  std::string name_;
};

}  // namespace tconv3d
