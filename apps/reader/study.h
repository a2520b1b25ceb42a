// Many training runs as child processes of linattn-reader (each single-threaded, `jobs` at a
// time), every one checkpointed and resumable, so that an interrupted study continues where it
// stopped: finished runs (their result file exists) are skipped, unfinished ones resume.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace linattn::reader {

struct Job {
  std::string name;               // e.g. "en-t1-linear-s1"
  std::vector<std::string> args;  // linattn-reader arguments
  std::string result_path;        // the run's JSON line; its existence marks the run done
  std::string log_path;           // the run's stdout and stderr
};

// Runs every job not yet done, `parallel` at a time, printing one line per finished run. Throws
// linattn::Error naming the failed runs and their logs when any fails (the others still run).
void run_jobs(const std::vector<Job>& jobs, int parallel, std::FILE* log = stdout);

// The path of the running executable (/proc/self/exe), to start the children with.
std::string self_executable();

}  // namespace linattn::reader
