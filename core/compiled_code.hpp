// What every code generator produces: position-independent machine code and
// the name it is known by (dump file, perf symbol, AOT symbol).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tconv3d {

struct CompiledCode {
  std::vector<uint8_t> bytes;
  std::string name;  // e.g. tconv3d_f32_k3x3x3_s2x2x2_..__avx2
};

}  // namespace tconv3d
