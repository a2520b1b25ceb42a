// linattn-serve as a child process of a test, on loopback ports it picks itself (port 0, read
// back from --ready-file), stopped when the test ends (SIGTERM, then SIGKILL), pass or fail; and
// small HTTP clients over Boost.Beast.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace linattn::test {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ServerProcess {
 public:
  // Starts `program args... --http 127.0.0.1:0 --grpc 127.0.0.1:0 --ready-file F` (the caller's
  // --http/--grpc come first and win) and waits until it listens; `ok()` is false when it exited.
  ServerProcess(const std::string& program, std::vector<std::string> args, const std::string& dir)
      : ready_file_(dir + "/ready.json"), log_(dir + "/serve.log") {
    std::filesystem::remove(ready_file_);
    bool has_http = false, has_grpc = false;
    for (const auto& a : args) {
      has_http = has_http || a == "--http";
      has_grpc = has_grpc || a == "--grpc";
    }
    if (!has_http) args.insert(args.end(), {"--http", "127.0.0.1:0"});
    if (!has_grpc) args.insert(args.end(), {"--grpc", "127.0.0.1:0"});
    args.insert(args.end(), {"--ready-file", ready_file_});
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      std::vector<char*> argv{const_cast<char*>(program.c_str())};
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
        return;
      }
      if (std::filesystem::exists(ready_file_)) {
        const auto j = nlohmann::json::parse(slurp(ready_file_));
        http_port = j["http"].get<int>();
        grpc_port = j["grpc"].get<int>();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "linattn-serve did not start in 30 s: " << log();
  }
  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return pid_ > 0 && http_port + grpc_port > 0; }
  std::string log() const { return slurp(log_); }
  std::optional<int> exit_code() const { return exit_code_; }

  // SIGTERM, then SIGKILL after 20 s; the exit code (128 + signal when killed).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return exit_code_.value_or(-1);
    ::kill(pid_, sig);
    int status = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (::waitpid(pid_, &status, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return *exit_code_;
  }

  int http_port = 0, grpc_port = 0;

 private:
  std::string ready_file_, log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

struct HttpReply {
  int status = 0;
  std::string body, content_type;
  std::map<std::string, std::string> headers;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

struct HttpCall {
  std::string method = "GET", target = "/", body, content_type = "application/json", accept, token;
};

// One connection, kept alive across calls.
class HttpClient {
 public:
  explicit HttpClient(int port) : stream_(io_) {
    boost::asio::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  }
  HttpReply call(const HttpCall& c) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{c.method == "GET"    ? http::verb::get
                                         : c.method == "POST" ? http::verb::post
                                         : c.method == "PUT"  ? http::verb::put
                                                              : http::verb::delete_,
                                         c.target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!c.body.empty() || c.method != "GET") req.set(http::field::content_type, c.content_type);
    if (!c.accept.empty()) req.set(http::field::accept, c.accept);
    if (!c.token.empty()) req.set(http::field::authorization, "Bearer " + c.token);
    req.body() = c.body;
    req.prepare_payload();
    req.keep_alive(true);
    http::write(stream_, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 30);
    http::read(stream_, buffer, parser);
    auto res = parser.release();
    HttpReply r{static_cast<int>(res.result_int()), res.body(), std::string(res[http::field::content_type]), {}};
    for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
    return r;
  }

 private:
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
};

inline HttpReply http_call(int port, const HttpCall& c) { return HttpClient(port).call(c); }

}  // namespace linattn::test
