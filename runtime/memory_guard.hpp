// Refuses allocations that cannot fit in this machine's memory before they are
// attempted: with overcommit, a huge malloc "succeeds" and the process is
// later killed by the OOM killer, which is the crash we promise never to cause.
#pragma once

#include <cstdint>
#include <string>

namespace tconv3d {

// Throws tconv3d::Error(`what`, ...) if `bytes` exceeds the physical memory.
void check_allocatable(double bytes, const std::string& what);

}  // namespace tconv3d
