// `linattn reader ...`: the reader lives in its own program, linattn-reader, because it needs
// LibTorch and this tool must not. This command runs it (installed beside linattn) with the
// remaining arguments.
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

[[noreturn]] void run_reader(const std::vector<std::string>& args) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's path (/proc/self/exe): " + ec.message());
  const std::string reader = (self.parent_path() / "linattn-reader").string();
  if (!std::filesystem::exists(reader))
    throw Error("`linattn reader` runs " + reader +
                ", which is not there: it is built with LibTorch (cmake -DLINATTN_BUILD_TORCH=ON, the default "
                "when libtorch-dev is installed)");
  std::vector<char*> argv{const_cast<char*>(reader.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(reader.c_str(), argv.data());
  throw Error("cannot run " + reader + ": " + std::strerror(errno));
}

}  // namespace

void add_reader_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "reader", "The paper's question-answering reader: train, eval, encode, answer, study, reproduce, report "
                "(runs linattn-reader; `linattn reader --help` for its commands)");
  cmd->prefix_command();  // everything after `reader` is linattn-reader's, --help included
  cmd->set_help_flag();
  cmd->callback([cmd] {
    std::vector<std::string> rest = cmd->remaining();
    run_reader(rest);
  });
}

}  // namespace linattn::cli
