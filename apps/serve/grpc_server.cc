#include "grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "linattn.grpc.pb.h"
#include "linattn/core/error.h"

namespace linattn::serve {
namespace {

namespace pb = linattn::v1;

grpc::StatusCode grpc_code(Code code) {
  switch (code) {
    case Code::ok: return grpc::StatusCode::OK;
    case Code::invalid_argument:
    case Code::unsupported_media: return grpc::StatusCode::INVALID_ARGUMENT;
    case Code::unauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case Code::permission_denied: return grpc::StatusCode::PERMISSION_DENIED;
    case Code::not_found: return grpc::StatusCode::NOT_FOUND;
    case Code::already_exists: return grpc::StatusCode::ALREADY_EXISTS;
    case Code::too_large:
    case Code::overloaded: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Code::deadline_exceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case Code::unavailable: return grpc::StatusCode::UNAVAILABLE;
    case Code::internal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

npy::Matrix matrix_of(const pb::Matrix& m, const std::string& what) {
  if (m.rows() < 0 || m.cols() < 0) throw ServiceError(Code::invalid_argument, what + ": negative rows or cols");
  if (m.cols() > 0 && m.rows() > (int64_t{1} << 36) / m.cols())
    throw ServiceError(Code::invalid_argument, what + ": absurd shape");
  const int64_t n = m.rows() * m.cols();
  npy::Matrix out{m.rows(), m.cols(), {}};
  if (!m.data().empty() && m.values_size() > 0)
    throw ServiceError(Code::invalid_argument, what + ": give data or values, not both");
  if (m.values_size() > 0) {
    if (m.values_size() != n)
      throw ServiceError(Code::invalid_argument, what + ": " + std::to_string(m.values_size()) + " values for " +
                                                     std::to_string(m.rows()) + " x " + std::to_string(m.cols()));
    out.data.assign(m.values().begin(), m.values().end());
  } else {
    if (static_cast<int64_t>(m.data().size()) != n * 4)
      throw ServiceError(Code::invalid_argument, what + ": " + std::to_string(m.data().size()) + " bytes of data for " +
                                                     std::to_string(m.rows()) + " x " + std::to_string(m.cols()) +
                                                     " float32 numbers (" + std::to_string(n * 4) + ")");
    out.data.resize(static_cast<size_t>(n));
    if (n > 0) std::memcpy(out.data.data(), m.data().data(), static_cast<size_t>(n * 4));
  }
  return out;
}

void describe(const MemoryDescription& d, pb::MemoryInfo* out) {
  const MemoryInfo& i = d.info;
  out->set_name(d.name);
  out->set_bank(d.bank);
  out->set_key_dim(i.config.key_dim);
  out->set_value_dim(i.config.value_dim);
  out->set_dtype(std::string(to_string(i.config.dtype)));
  out->set_layout(std::string(to_string(i.layout)));
  out->set_feature_map(std::string(to_string(i.config.feature_map)));
  out->set_normalize(i.config.normalize);
  out->set_gated(i.config.gated);
  out->set_symmetric(i.config.symmetric);
  out->set_rank(i.rank);
  out->set_tokens(i.tokens);
  out->set_bytes(d.bytes);
}

Clock::time_point steady_deadline(const grpc::CallbackServerContext* ctx) {
  const auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  const auto left = d - std::chrono::system_clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

std::string read_file(const std::string& path, const char* option) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string(option) + " " + path + ": cannot read it");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

struct GrpcServer::Impl final : public pb::Memories::CallbackService {
  Impl(serve::Service& s, const Tokens& t) : service(s), tokens(t) {}
  serve::Service& service;  // (plain `Service` here is the generated base's name)
  const Tokens& tokens;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  // Checks the call's token; throws ServiceError.
  void authorize(const grpc::CallbackServerContext* ctx, bool write) const {
    if (!tokens.enabled()) return;
    const auto& md = ctx->client_metadata();
    const auto it = md.find("authorization");
    if (it == md.end())
      throw ServiceError(Code::unauthenticated, "this server needs a token: send metadata 'authorization: Bearer <token>'");
    const Access a = tokens.check_header(std::string_view(it->second.data(), it->second.size()));
    if (a == Access::none) throw ServiceError(Code::unauthenticated, "the token is not valid");
    if (write && a != Access::write) throw ServiceError(Code::permission_denied, "this token may read but not add memories");
  }

  // Runs `body` (which returns a Status, or calls finish itself for asynchronous calls and
  // returns nullopt) and finishes the reactor with the outcome, counting it.
  template <class Body>
  grpc::ServerUnaryReactor* call(grpc::CallbackServerContext* ctx, Route route, bool write, Body body) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const Clock::time_point start = Clock::now();
    auto finish = [this, reactor, route, start](const Status& s) {
      service.metrics().request(route, true, http_status(s.code),
                                std::chrono::duration<double>(Clock::now() - start).count());
      reactor->Finish(s.ok() ? grpc::Status::OK : grpc::Status(grpc_code(s.code), s.message));
    };
    try {
      if (route != Route::health) {
        authorize(ctx, write);
        if (!service.ready()) throw ServiceError(Code::unavailable, "the server is not ready");
        service.admit();
      }
      body(finish);
    } catch (const ServiceError& e) {
      finish(e.status());
    } catch (const std::bad_alloc&) {
      finish({Code::overloaded, "not enough memory for this request"});
    } catch (const std::exception& e) {
      finish({Code::internal, e.what()});
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx, const pb::HealthRequest*,
                                   pb::HealthResponse* resp) override {
    return call(ctx, Route::health, false, [&](auto finish) {
      resp->set_ready(service.ready());
      finish(service.ready() ? Status{} : Status{Code::unavailable, "not ready"});
    });
  }

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx, const pb::ListRequest*,
                                 pb::ListResponse* resp) override {
    return call(ctx, Route::list, false, [&](auto finish) {
      for (const MemoryDescription& d : service.list()) describe(d, resp->add_memories());
      finish({});
    });
  }

  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* ctx, const pb::InfoRequest* req,
                                 pb::MemoryInfo* resp) override {
    return call(ctx, Route::info, false, [&](auto finish) {
      describe(service.info(req->name()), resp);
      finish({});
    });
  }

  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx, const pb::LookupRequest* req,
                                   pb::LookupResponse* resp) override {
    return call(ctx, Route::lookup, false, [&](auto finish) {
      LookupCall c;
      c.name = req->name();
      c.queries = matrix_of(req->queries(), "queries");
      c.mean = req->mean();
      c.scale = req->has_scale() ? req->scale() : 1.f;
      c.deadline = steady_deadline(ctx);
      const bool values_out = req->values_out();
      service.lookup(std::move(c), [resp, finish, values_out](Status s, npy::Matrix r) {
        if (s.ok()) {
          pb::Matrix* m = resp->mutable_results();
          m->set_rows(r.rows);
          m->set_cols(r.cols);
          if (values_out)
            m->mutable_values()->Add(r.data.begin(), r.data.end());
          else
            m->set_data(reinterpret_cast<const char*>(r.data.data()), r.data.size() * 4);
        }
        finish(s);
      });
    });
  }

  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* ctx, const pb::SearchRequest* req,
                                   pb::SearchResponse* resp) override {
    return call(ctx, Route::search, false, [&](auto finish) {
      SearchCall c;
      c.queries = matrix_of(req->queries(), "queries");
      if (req->k() != 0) c.k = req->k();
      c.names.assign(req->names().begin(), req->names().end());
      if (!req->score().empty()) {
        const auto score = parse_search_score(req->score());
        if (!score) throw ServiceError(Code::invalid_argument, "unknown score '" + req->score() + "' (quadratic, norm)");
        c.score = *score;
      }
      c.mean = req->mean();
      c.scale = req->has_scale() ? req->scale() : 1.f;
      c.deadline = steady_deadline(ctx);
      service.search(std::move(c), [resp, finish](Status s, SearchAnswer answer) {
        if (s.ok())
          for (const auto& hits : answer) {
            pb::SearchHits* out = resp->add_results();
            for (const SearchHit& h : hits) {
              pb::SearchHit* hit = out->add_hits();
              hit->set_name(h.name);
              hit->set_score(h.score);
            }
          }
        finish(s);
      });
    });
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* req,
                                pb::PutResponse* resp) override {
    return call(ctx, Route::put, true, [&](auto finish) {
      PutCall c;
      c.name = req->name();
      c.keys = matrix_of(req->keys(), "keys");
      if (req->has_values()) c.values = matrix_of(req->values(), "values");
      if (req->has_gates()) c.gates = matrix_of(req->gates(), "gates");
      if (!req->dtype().empty()) c.dtype = req->dtype();
      if (req->has_symmetric()) c.symmetric = req->symmetric();
      describe(service.put(c), resp->mutable_memory());
      finish({});
    });
  }
};

GrpcServer::GrpcServer(Service& service, const Tokens& tokens, const GrpcServerOptions& options)
    : impl_(std::make_unique<Impl>(service, tokens)) {
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (options.tls) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({read_file(options.tls->key, "--tls-key"), read_file(options.tls->cert, "--tls-cert")});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, creds, &impl_->port);
  builder.RegisterService(impl_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(INT32_MAX);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0)
    throw Error("cannot listen for gRPC on " + options.address + " (in use, or not host:port)");
}

GrpcServer::~GrpcServer() { shutdown(0); }

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::shutdown(double seconds) {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace linattn::serve
