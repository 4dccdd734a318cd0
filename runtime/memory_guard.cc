#include "runtime/memory_guard.hpp"

#include <unistd.h>

#include <cstdio>

#include "tconv3d/error.hpp"

namespace tconv3d {

void check_allocatable(double bytes, const std::string& what) {
  const double pages = static_cast<double>(sysconf(_SC_PHYS_PAGES));
  const double page_size = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double physical = pages > 0 && page_size > 0 ? pages * page_size : 0.0;
  if (physical > 0 && bytes > physical) {
    char text[160];
    std::snprintf(text, sizeof text, "needs %.3g GiB but this machine has %.3g GiB of memory",
                  bytes / (1024.0 * 1024 * 1024), physical / (1024.0 * 1024 * 1024));
    throw Error(what, text);
  }
}

}  // namespace tconv3d
