// The FMA peak probe (runtime/fma_peak) and `tconv3d peak`: bad options are
// errors naming the option, each ISA the CPU has gives a finite positive rate,
// an ISA it lacks (or that is hidden) is an error. No speed is asserted.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/cpu_features.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"
#include "tools/support/fma_peak.hpp"

namespace tconv3d {
namespace {

// Short runs: the tests check plumbing, not the number.
FmaPeakOptions quick(int threads = 1) {
  FmaPeakOptions options;
  options.threads = threads;
  options.runs = 2;
  options.seconds_per_run = 0.005;
  return options;
}

std::string error_of(Isa isa, const FmaPeakOptions& options) {
  try {
    measure_fma_peak(isa, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Isa any_runnable_isa() {
  const CpuFeatures& cpu = cpu_features();
  return cpu.avx512 ? Isa::kAvx512 : cpu.avx2_fma ? Isa::kAvx2 : Isa::kAuto;
}

TEST(FmaPeak, RejectsOutOfRangeOptionsNamingThem) {
  const Isa isa = any_runnable_isa();
  if (isa == Isa::kAuto) GTEST_SKIP() << "this CPU has neither AVX2+FMA nor AVX-512";
  FmaPeakOptions bad = quick();
  bad.threads = 0;
  EXPECT_NE(error_of(isa, bad).find("threads"), std::string::npos);
  bad = quick();
  bad.runs = 0;
  EXPECT_NE(error_of(isa, bad).find("runs"), std::string::npos);
  for (double seconds : {0.0, -1.0, 10.5, std::numeric_limits<double>::quiet_NaN()}) {
    bad = quick();
    bad.seconds_per_run = seconds;
    EXPECT_NE(error_of(isa, bad).find("seconds_per_run"), std::string::npos) << seconds;
  }
  EXPECT_NE(error_of(Isa::kAuto, quick()).find("isa"), std::string::npos);
}

// Once per ISA: a finite positive rate where the CPU runs it, and with it
// hidden (as on a CPU without it) an error naming the ISA, on every host.
class FmaPeakIsa : public ::testing::TestWithParam<Isa> {};

TEST_P(FmaPeakIsa, FiniteRateWhereTheCpuRunsItAndAnErrorWhereItLacks) {
  const Isa isa = GetParam();
  if (testing::why_cpu_cannot_run(isa).empty()) {
    for (int threads : {1, 2}) {
      const double gflops = measure_fma_peak(isa, quick(threads));
      EXPECT_TRUE(std::isfinite(gflops) && gflops > 0) << "threads " << threads << ": " << gflops;
    }
  }
  const ScopedCpuFeatureMask hide(isa == Isa::kAvx512 ? CpuFeature::kAvx512 : CpuFeature::kAvx2Fma);
  const std::string error = error_of(isa, quick());
  EXPECT_NE(error.find("isa"), std::string::npos) << error;
  EXPECT_NE(error.find(to_string(isa)), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(Isas, FmaPeakIsa, ::testing::ValuesIn(testing::all_isas()), testing::isa_name);

TEST(PeakCli, HelpExplainsTheOptions) {
  const auto result = testing::run_cli({"peak", "--help"}, ::testing::TempDir());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  for (const char* word : {"--threads", "--runs", "--seconds", "--json", "CPU time"})
    EXPECT_NE(result.out.find(word), std::string::npos) << word;
}

TEST(PeakCli, BadOptionsExitTwoNamingTheOption) {
  const std::vector<std::vector<std::string>> cases = {
      {"--runs", "0"}, {"--seconds", "0"}, {"--seconds", "x"}, {"--seconds", "11"}, {"--threads", "0"}, {"--nope"}};
  for (const auto& args : cases) {
    std::vector<std::string> argv = {"peak"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = testing::run_cli(argv, ::testing::TempDir());
    EXPECT_EQ(result.exit_code, 2) << args.front();
    EXPECT_NE(result.err.find(args.front()), std::string::npos) << result.err;
  }
}

TEST(PeakCli, JsonLinesCarryTheRates) {
  if (any_runnable_isa() == Isa::kAuto) GTEST_SKIP() << "this CPU has neither AVX2+FMA nor AVX-512";
  const auto result =
      testing::run_cli({"peak", "--json", "--threads", "2", "--runs", "1", "--seconds", "0.005"}, ::testing::TempDir());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::istringstream lines(result.out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_GT(j.at("gflops").get<double>(), 0) << line;
    const int threads = j.at("threads").get<int>();
    EXPECT_TRUE(threads == 1 || threads == 2) << line;
    EXPECT_NEAR(j.at("gflops_per_thread").get<double>() * threads, j.at("gflops").get<double>(), 1e-6) << line;
    ++count;
  }
  const CpuFeatures& cpu = cpu_features();
  EXPECT_EQ(count, 2 * (int(cpu.avx2_fma) + int(cpu.avx512) + int(cpu.avx512_bf16)));  // bf16: the vdpbf16ps rows
}

}  // namespace
}  // namespace tconv3d
