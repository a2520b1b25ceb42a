// `linattn reader ...` and `linattn serve ...`: the reader and the lookup service are programs of
// their own, linattn-reader and linattn-serve, because they need LibTorch, gRPC and Boost and this
// tool must not. These commands run them (installed beside linattn) with the remaining arguments.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "linattn/core/error.h"

namespace linattn::cli {
namespace {

// Replaces this process with `program` (beside this one); `built_with` says how it is built.
[[noreturn]] void run_sibling(const std::string& command, const std::string& program, const std::string& built_with,
                              const std::vector<std::string>& args) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's path (/proc/self/exe): " + ec.message());
  const std::string path = (self.parent_path() / program).string();
  if (!std::filesystem::exists(path))
    throw Error("`linattn " + command + "` runs " + path + ", which is not there: " + built_with);
  std::vector<char*> argv{const_cast<char*>(path.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  throw Error("cannot run " + path + ": " + std::strerror(errno));
}

void add_sibling_command(CLI::App& app, const std::string& command, const std::string& description,
                         const std::string& program, const std::string& built_with) {
  CLI::App* cmd = app.add_subcommand(command, description);
  cmd->prefix_command();  // everything after the command is the program's, --help included
  cmd->set_help_flag();
  cmd->callback([cmd, command, program, built_with] { run_sibling(command, program, built_with, cmd->remaining()); });
}

}  // namespace

void add_reader_command(CLI::App& app) {
  add_sibling_command(app, "reader",
                      "The paper's question-answering reader: train, eval, encode, answer, study, reproduce, report "
                      "(runs linattn-reader; `linattn reader --help` for its commands)",
                      "linattn-reader",
                      "it is built with LibTorch (cmake -DLINATTN_BUILD_TORCH=ON, the default when libtorch-dev is "
                      "installed)");
}

void add_serve_command(CLI::App& app) {
  add_sibling_command(app, "serve",
                      "Serve the memories of banks over HTTP and gRPC (runs linattn-serve; `linattn serve --help`)",
                      "linattn-serve",
                      "it is built with Boost, gRPC and OpenSSL (cmake -DLINATTN_BUILD_SERVE=ON, the default)");
}

}  // namespace linattn::cli
