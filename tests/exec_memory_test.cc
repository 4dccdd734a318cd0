// ExecutableCode: W^X mappings that run real code, and the observers
// (TCONV3D_DUMP_DIR dumps, TCONV3D_PERF perf map / jitdump).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/exec_memory.hpp"
#include "runtime/jit_observe.hpp"
#include "tconv3d/error.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;

const std::vector<uint8_t> kReturn42 = {0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3};  // mov eax, 42; ret
const std::vector<uint8_t> kAddArguments = {0x8D, 0x04, 0x37, 0xC3};          // lea eax, [rdi+rsi]; ret

struct Mapping {
  uintptr_t begin = 0, end = 0;
  std::string permissions, line;
  bool writable_and_executable() const { return permissions[1] == 'w' && permissions[2] == 'x'; }
};

std::vector<Mapping> process_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::vector<Mapping> result;
  for (std::string line; std::getline(maps, line);) {
    Mapping m;
    m.line = line;
    char dash = 0;
    std::istringstream fields(line);
    fields >> std::hex >> m.begin >> dash >> m.end >> m.permissions;
    result.push_back(m);
  }
  return result;
}

std::vector<Mapping> mappings_over(uintptr_t begin, uintptr_t end) {
  std::vector<Mapping> hits;
  for (const Mapping& m : process_mappings())
    if (m.begin < end && begin < m.end) hits.push_back(m);
  return hits;
}

size_t count_writable_executable() {
  size_t count = 0;
  for (const Mapping& m : process_mappings()) count += m.writable_and_executable();
  return count;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

using testing::ScopedEnv;

std::shared_ptr<const ExecutableCode> make(const std::vector<uint8_t>& bytes, const std::string& name) {
  return ExecutableCode::create(bytes.data(), bytes.size(), name);
}

TEST(ExecutableCode, RunsGeneratedCode) {
  const auto code = make(kReturn42, "return_42");
  EXPECT_EQ(code->function<int (*)()>()(), 42);
  const auto add = make(kAddArguments, "add_two");
  EXPECT_EQ(add->function<int (*)(int, int)>()(40, -7), 33);
}

TEST(ExecutableCode, KeepsBytesSizeAndName) {
  std::vector<uint8_t> bytes(3 * 4096 + 17, 0x90);  // nops over several pages, then ret 42
  bytes.insert(bytes.end(), kReturn42.begin(), kReturn42.end());
  const auto code = make(bytes, "long_kernel");
  EXPECT_EQ(code->size(), bytes.size());
  EXPECT_EQ(code->name(), "long_kernel");
  EXPECT_EQ(0, std::memcmp(code->entry(), bytes.data(), bytes.size()));
  EXPECT_EQ(code->function<int (*)()>()(), 42);
}

TEST(ExecutableCode, CodePagesAreReadExecuteAndNeverWritable) {
  const size_t rwx_before = count_writable_executable();
  std::vector<uint8_t> bytes(2 * 4096 + 5, 0x90);
  bytes.push_back(0xC3);
  const auto code = make(bytes, "wx_check");
  const uintptr_t begin = reinterpret_cast<uintptr_t>(code->entry());
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(begin % page, 0u);
  const std::vector<Mapping> ours = mappings_over(begin, begin + (code->size() + page - 1) / page * page);
  ASSERT_FALSE(ours.empty()) << "no mapping holds the code at " << code->entry();
  for (const Mapping& m : ours) {
    EXPECT_EQ(m.permissions.substr(0, 3), "r-x") << m.line;
    EXPECT_FALSE(m.writable_and_executable()) << m.line;
  }
  // Other libraries may own W+X mappings; creating our code must not add one.
  EXPECT_LE(count_writable_executable(), rwx_before);
}

TEST(ExecutableCodeDeathTest, WritingToTheCodeFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto code = make(kReturn42, "write_target");
  volatile uint8_t* target = static_cast<volatile uint8_t*>(const_cast<void*>(code->entry()));
  EXPECT_DEATH(target[1] = 0x00, "");
  EXPECT_EQ(code->function<int (*)()>()(), 42);  // and the parent's copy is untouched
}

TEST(ExecutableCode, UnmapsWhenTheLastOwnerLetsGo) {
  auto code = make(kReturn42, "short_lived");
  void* base = const_cast<void*>(code->entry());
  unsigned char resident = 0;
  ASSERT_EQ(mincore(base, 1, &resident), 0);
  code.reset();
  EXPECT_EQ(mincore(base, 1, &resident), -1);  // ENOMEM: nothing mapped there any more
  EXPECT_EQ(errno, ENOMEM);
}

TEST(ExecutableCode, BadInputIsAnErrorNamingTheKernel) {
  try {
    ExecutableCode::create(kReturn42.data(), 0, "empty_kernel");
    FAIL() << "size 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty_kernel"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ExecutableCode::create(nullptr, 6, "null_kernel"), Error);
}

TEST(ExecMemoryObserve, SanitizesNamesForFilesAndSymbols) {
  EXPECT_EQ(sanitize_kernel_name("tconv3d_f32_k3x3x3__avx2.v1-a"), "tconv3d_f32_k3x3x3__avx2.v1-a");
  EXPECT_EQ(sanitize_kernel_name("../a b/c\n"), "_._a_b_c_");
  EXPECT_EQ(sanitize_kernel_name("-rf"), "_rf");
  EXPECT_EQ(sanitize_kernel_name(""), "unnamed_kernel");
  EXPECT_EQ(sanitize_kernel_name(std::string(1000, 'k')).size(), 200u);
}

TEST(ExecMemoryObserve, DumpDirGetsIdenticalBytesInACreatedNestedFolder) {
  const fs::path root = fs::path(::testing::TempDir()) / ("tconv3d_dump_" + std::to_string(getpid()));
  const fs::path folder = root / "nested" / "deeper";
  fs::remove_all(root);
  ScopedEnv dump("TCONV3D_DUMP_DIR", folder.string());
  const auto code = make(kAddArguments, "dump/me please");
  const std::string dumped = read_file(folder / "dump_me_please.bin");
  EXPECT_EQ(dumped, std::string(kAddArguments.begin(), kAddArguments.end()));
  fs::remove_all(root);
}

TEST(ExecMemoryObserve, DumpFailureIsAWarningNotACrash) {
  const fs::path blocker = fs::path(::testing::TempDir()) / ("tconv3d_blocker_" + std::to_string(getpid()));
  std::ofstream(blocker) << "a file where a folder should be";
  ScopedEnv dump("TCONV3D_DUMP_DIR", (blocker / "sub").string());
  ::testing::internal::CaptureStderr();
  const auto code = make(kReturn42, "undumpable");
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code->function<int (*)()>()(), 42);
  EXPECT_NE(warning.find("TCONV3D_DUMP_DIR"), std::string::npos) << warning;
  EXPECT_NE(warning.find("undumpable"), std::string::npos) << warning;
  fs::remove(blocker);
}

TEST(ExecMemoryObserve, PerfMapGetsALinePerKernel) {
  const fs::path map = "/tmp/perf-" + std::to_string(getpid()) + ".map";
  fs::remove(map);
  ScopedEnv perf("TCONV3D_PERF", "map");
  const auto code = make(kReturn42, "perf_visible_kernel");
  std::ostringstream expected;
  expected << std::hex << reinterpret_cast<uintptr_t>(code->entry()) << " " << code->size() << " perf_visible_kernel\n";
  EXPECT_EQ(read_file(map), expected.str());
  fs::remove(map);
}

TEST(ExecMemoryObserve, JitdumpHasHeaderAndCodeLoadRecord) {
  const fs::path dump = "/tmp/jit-" + std::to_string(getpid()) + ".dump";
  ScopedEnv perf("TCONV3D_PERF", "jitdump");
  const auto code = make(kReturn42, "jitdump_kernel");
  const std::string bytes = read_file(dump);
  ASSERT_GE(bytes.size(), 40u + 56u + 15u + kReturn42.size());
  uint32_t header[3];
  std::memcpy(header, bytes.data(), sizeof header);
  EXPECT_EQ(header[0], 0x4A695444u);  // "JiTD"
  EXPECT_EQ(header[2], 40u);          // header size
  const std::string name = "jitdump_kernel";
  const size_t at = bytes.find(name + '\0');
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(bytes.substr(at + name.size() + 1, kReturn42.size()), std::string(kReturn42.begin(), kReturn42.end()));
  uint64_t code_address = 0;
  std::memcpy(&code_address, bytes.data() + at - 24, sizeof code_address);  // code_addr, code_size, code_index
  EXPECT_EQ(code_address, reinterpret_cast<uintptr_t>(code->entry()));
  fs::remove(dump);
}

TEST(ExecMemoryObserve, UnknownPerfValueWarnsAndStillRuns) {
  ScopedEnv perf("TCONV3D_PERF", "vtune");
  ::testing::internal::CaptureStderr();
  const auto code = make(kReturn42, "unannounced");
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("vtune"), std::string::npos) << warning;
  EXPECT_EQ(code->function<int (*)()>()(), 42);
}

}  // namespace
}  // namespace tconv3d
