// Observability for generated code: every finished kernel passes through
// register_jit_code() once, which (guarded by one mutex) may
//   - dump its bytes to $TCONV3D_DUMP_DIR/<name>.bin (folder created if missing),
//     for `objdump -D -b binary -mi386:x86-64 <name>.bin`;
//   - announce it to perf: TCONV3D_PERF=map (or 1) appends "START SIZE name" to
//     /tmp/perf-<pid>.map; TCONV3D_PERF=jitdump writes /tmp/jit-<pid>.dump for
//     `perf record -k mono` + `perf inject --jit`; TCONV3D_PERF=map,jitdump does both.
// The switches are read at each call. A failure here is a warning on stderr:
// observing must never stop a kernel from running.
#pragma once

#include <cstddef>
#include <string>

namespace tconv3d {

// The name as used for files and profiler symbols: every byte outside
// [A-Za-z0-9_.-] becomes '_', at most 200 characters, never empty.
std::string sanitize_kernel_name(const std::string& name);

void register_jit_code(const void* entry, size_t size, const std::string& name) noexcept;

}  // namespace tconv3d
