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

extern char** environ;

namespace tconv3d {
namespace {

namespace fs = std::filesystem;

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs the CLI with stdout and stderr captured to files (no shell involved).
CliResult run_cli(const std::vector<std::string>& args) {
  std::string pattern = (fs::temp_directory_path() / "tconv3d_demo_XXXXXX").string();
  CliResult result;
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return result;
  }
  const fs::path dir = pattern;
  const std::string out_path = (dir / "stdout.txt").string(), err_path = (dir / "stderr.txt").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> storage = {TCONV3D_CLI_PATH, "demo"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, TCONV3D_CLI_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    ADD_FAILURE() << "cannot start " << TCONV3D_CLI_PATH << ": " << std::strerror(spawned);
  } else {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    result.out = slurp(out_path);
    result.err = slurp(err_path);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
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
