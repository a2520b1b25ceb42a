// linattn-reader: the paper's question-answering reader (de Brébisson & Vincent 2016) on bAbI and
// MQAR: train, evaluate, store stories as fixed-size memories, answer, study and report.
// A program of its own so that the `linattn` tool never needs LibTorch (`linattn reader ...`
// runs this program).
#include <CLI/CLI.hpp>

#include "../../common/openblas_core.h"
#include "../../common/run_app.h"
#include "commands.h"

int main(int argc, char** argv) {
  linattn::apps::select_openblas_core(argv);  // LibTorch's BLAS set up for this CPU
  CLI::App app{
      "linattn-reader: the paper's reader with no, softmax, linear and gated linear attention, on bAbI\n"
      "(Weston et al. 2015, CC BY 3.0) and MQAR. `linattn-reader COMMAND --help` for each command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "linattn-reader 0.1.0");
  linattn::reader::cli::add_train_command(app);
  linattn::reader::cli::add_use_commands(app);
  linattn::reader::cli::add_study_commands(app);
  return linattn::apps::run_app(app, argc, argv, "linattn-reader");
}
