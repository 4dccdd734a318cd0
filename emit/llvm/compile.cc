#include "emit/llvm/compile.hpp"

#include <llvm/Analysis/CGSCCPassManager.h>
#include <llvm/Analysis/LoopAnalysisManager.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/IR/PassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/raw_ostream.h>

#include <sstream>

#include "emit/llvm/ir_support.hpp"
#include "emit/llvm/llvm_init.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

std::vector<std::string> split_features(const std::string& features) {
  std::vector<std::string> out;
  std::stringstream stream(features);
  std::string item;
  while (std::getline(stream, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string message_of(llvm::Error error) {
  std::string text;
  llvm::raw_string_ostream stream(text);
  stream << error;
  return stream.str();
}

constexpr const char* kPipeline = "function(sroa,early-cse,instcombine,simplifycfg)";

}  // namespace

std::unique_ptr<llvm::TargetMachine> make_target_machine(const LlvmTarget& target) {
  initialize_llvm_targets();
  llvm::orc::JITTargetMachineBuilder builder{llvm::Triple(target.triple)};
  builder.setCPU(target.cpu);
  builder.addFeatures(split_features(target.features));
  builder.setRelocationModel(llvm::Reloc::PIC_);
  builder.setCodeModel(llvm::CodeModel::Small);
  builder.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  builder.getOptions().FunctionSections = true;
  builder.getOptions().DataSections = true;
  auto machine = builder.createTargetMachine();
  if (!machine) throw Error("backend", "llvm: cannot create a target machine for " + target.triple + ": " +
                                           message_of(machine.takeError()));
  return std::move(*machine);
}

std::vector<uint8_t> compile_to_object(llvm::Module& module, llvm::TargetMachine& machine) {
  module.setTargetTriple(machine.getTargetTriple().str());
  module.setDataLayout(machine.createDataLayout());
  if (!machine.getTargetTriple().isX86()) lower_pins_to_barriers(module);
  std::string problems;
  llvm::raw_string_ostream problem_stream(problems);
  if (llvm::verifyModule(module, &problem_stream))
    throw Error("backend", "llvm: generated IR does not verify: " + problem_stream.str());

  {
    llvm::LoopAnalysisManager loops;
    llvm::FunctionAnalysisManager functions;
    llvm::CGSCCAnalysisManager cgscc;
    llvm::ModuleAnalysisManager modules;
    llvm::PassBuilder builder(&machine);
    builder.registerModuleAnalyses(modules);
    builder.registerCGSCCAnalyses(cgscc);
    builder.registerFunctionAnalyses(functions);
    builder.registerLoopAnalyses(loops);
    builder.crossRegisterProxies(loops, functions, cgscc, modules);
    // The emitter already wrote the loops, blocking and unrolling the plan
    // chose; LLVM only needs to promote the accumulators to registers and
    // tidy up. The full O2 pipeline costs 10x more and gains nothing here.
    llvm::ModulePassManager pipeline;
    if (auto error = builder.parsePassPipeline(pipeline, kPipeline))
      throw Error("backend", "llvm: bad pass pipeline: " + message_of(std::move(error)));
    pipeline.run(module, modules);
  }

  llvm::orc::SimpleCompiler compiler(machine);
  auto object = compiler(module);
  if (!object) throw Error("backend", "llvm: code generation failed: " + message_of(object.takeError()));
  const auto* begin = reinterpret_cast<const uint8_t*>((*object)->getBufferStart());
  return std::vector<uint8_t>(begin, begin + (*object)->getBufferSize());
}

}  // namespace tconv3d::llvm_backend
