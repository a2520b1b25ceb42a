// Runs a program as a user would, from the tests: exit code, stdout and stderr.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace linattn::test {

struct CliRun {
  int code;
  std::string out, err;
};

// Runs `program args` through the shell with its output in files of `scratch_dir`.
inline CliRun run_program(const std::string& program, const std::string& args, const std::string& scratch_dir) {
  const std::string out = scratch_dir + "/stdout.txt", err = scratch_dir + "/stderr.txt";
  const int status = std::system((program + " " + args + " >" + out + " 2>" + err).c_str());
  auto slurp = [](const std::string& f) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// A failing run: non-zero exit and exactly one line on stderr, mentioning `words`.
inline void expect_one_line_error(const CliRun& r, const std::string& args, const std::string& words) {
  EXPECT_NE(r.code, 0) << args;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(words), std::string::npos) << args << "\n" << r.err;
}

}  // namespace linattn::test
