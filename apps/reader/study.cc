#include "study.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "linattn/core/error.h"

extern char** environ;

namespace linattn::reader {
namespace {

using Clock = std::chrono::steady_clock;

pid_t spawn(const Job& job) {
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, job.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  const std::string exe = self_executable();
  std::vector<char*> argv{const_cast<char*>(exe.c_str())};
  for (const auto& a : job.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  if (rc != 0) throw Error("cannot start " + exe + " for run " + job.name + ": " + std::strerror(rc));
  return pid;
}

std::string summary(const Job& job) {
  std::ifstream in(job.result_path);
  std::string line;
  if (!std::getline(in, line)) return "";
  try {
    const auto j = nlohmann::json::parse(line);
    char buf[128];
    std::snprintf(buf, sizeof buf, "test accuracy %.3f in %.0f s", j.value("test_accuracy", 0.0), j.value("seconds", 0.0));
    return buf;
  } catch (const nlohmann::json::exception&) {
    return "";
  }
}

}  // namespace

std::string self_executable() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's path (/proc/self/exe): " + ec.message());
  return p.string();
}

void run_jobs(const std::vector<Job>& jobs, int parallel, std::FILE* log) {
  std::vector<const Job*> pending;
  for (const auto& j : jobs)
    if (!std::filesystem::exists(j.result_path)) pending.push_back(&j);
  std::fprintf(log, "%zu runs: %zu done before, %zu to run, %d at a time (logs beside the results)\n", jobs.size(),
               jobs.size() - pending.size(), pending.size(), parallel);
  std::fflush(log);
  std::map<pid_t, std::pair<const Job*, Clock::time_point>> running;
  std::vector<std::string> failed;
  size_t next = 0, finished = 0;
  const auto start = Clock::now();
  while (next < pending.size() || !running.empty()) {
    while (next < pending.size() && static_cast<int>(running.size()) < parallel) {
      const Job* j = pending[next++];
      running.emplace(spawn(*j), std::make_pair(j, Clock::now()));
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("waitpid failed: ") + std::strerror(errno));
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const Job* j = it->second.first;
    running.erase(it);
    ++finished;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && std::filesystem::exists(j->result_path);
    if (!ok) failed.push_back(j->name + " (" + j->log_path + ")");
    std::fprintf(log, "[%zu/%zu] %-28s %s   elapsed %.0f s, ETA %.0f s\n", finished, pending.size(), j->name.c_str(),
                 ok ? summary(*j).c_str() : "FAILED, see its log", elapsed,
                 elapsed / static_cast<double>(finished) * static_cast<double>(pending.size() - finished));
    std::fflush(log);
  }
  if (!failed.empty()) {
    std::string names;
    for (const auto& f : failed) names += (names.empty() ? "" : ", ") + f;
    throw Error(std::to_string(failed.size()) + " run(s) failed: " + names);
  }
}

}  // namespace linattn::reader
