// `tconv3d demo` end to end: the built CLI on the bundled Keras model must
// specialize every layer, find each equal to the reference, and exit 0; bad
// arguments exit 2 with the argument named.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.hpp"


namespace tconv3d {
namespace {

namespace fs = std::filesystem;

using testing::CliResult;

// Runs `tconv3d demo ARGS` with its output captured in a fresh temporary folder.
CliResult run_cli(const std::vector<std::string>& args) {
  std::string pattern = (fs::temp_directory_path() / "tconv3d_demo_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return {};
  }
  std::vector<std::string> demo_args = {"demo"};
  demo_args.insert(demo_args.end(), args.begin(), args.end());
  CliResult result = testing::run_cli(demo_args, pattern);
  std::error_code ec;
  fs::remove_all(pattern, ec);
  return result;
}

// The line of `out` that starts with `name` and a space, or "".
std::string line_of(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + " ", 0) == 0) return line;
  return "";
}

const char* const kLayers[] = {"up1", "up2", "up3", "head"};

TEST(DemoTest, BundledModelEveryLayerMatchesTheReference) {
  const CliResult r = run_cli({"--threads", "1", "--min-time", "0"});
  ASSERT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
#ifdef TCONV3D_HAVE_MODELS
  EXPECT_NE(r.out.find("unet3d_decoder.keras"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 transposed convolutions"), std::string::npos) << r.out;
  for (const char* name : kLayers) {
    const std::string line = line_of(r.out, name);
    EXPECT_FALSE(line.empty()) << "no line for layer " << name << " in:\n" << r.out;
    EXPECT_NE(line.find(" ok"), std::string::npos) << line;
    EXPECT_EQ(line.find("MISMATCH"), std::string::npos) << line;
  }
#else
  EXPECT_NE(r.out.find("no model loading"), std::string::npos) << r.out;
#endif
  EXPECT_NE(r.out.find("all layers match the reference"), std::string::npos) << r.out;
}

TEST(DemoTest, SuiteFileModeStillWorks) {
  const CliResult r = run_cli({TCONV3D_SOURCE_DIR "/examples/unet3d_decoder.json", "--threads", "1",
                               "--min-time", "0"});
  ASSERT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
  EXPECT_NE(r.out.find("all layers match the reference"), std::string::npos) << r.out;
}

TEST(DemoTest, BadArgumentsNameTheProblem) {
  CliResult r = run_cli({"--min-time", "soon"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--min-time"), std::string::npos) << r.err;
  r = run_cli({"/nonexistent/model.keras", "--min-time", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/model.keras"), std::string::npos) << r.err;
  r = run_cli({"a.keras", "b.keras"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("MODEL_FILE"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tconv3d
