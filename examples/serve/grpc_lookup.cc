// A gRPC client of linattn-serve in C++: lists the memories, then answers one query from the
// one named on the command line and searches every memory with it.
//
//   linattn serve docs.lamb &
//   ./build/bin/linattn_example_grpc_lookup --address 127.0.0.1:50051 --memory kitchen
//
// The stub comes from apps/serve/proto/linattn.proto (target linattn_proto).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "linattn.grpc.pb.h"

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051", memory, token;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--address") address = argv[i + 1];
    else if (flag == "--memory") memory = argv[i + 1];
    else if (flag == "--token") token = argv[i + 1];
  }
  if (memory.empty()) {
    std::fprintf(stderr, "usage: %s --memory NAME [--address HOST:PORT] [--token TOKEN]\n", argv[0]);
    return 2;
  }
  auto stub = linattn::v1::Memories::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto context = [&] {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  };

  linattn::v1::InfoRequest info_req;
  info_req.set_name(memory);
  linattn::v1::MemoryInfo info;
  if (const grpc::Status s = stub->Info(context().get(), info_req, &info); !s.ok()) {
    std::fprintf(stderr, "Info: %s\n", s.error_message().c_str());
    return 1;
  }
  std::printf("%s: %lld x %lld, %s, %lld tokens\n", info.name().c_str(), static_cast<long long>(info.key_dim()),
              static_cast<long long>(info.value_dim()), info.dtype().c_str(), static_cast<long long>(info.tokens()));

  // One query: the first basis vector. Floats travel as packed little-endian bytes.
  std::vector<float> query(static_cast<size_t>(info.key_dim()), 0.f);
  query[0] = 1.f;
  linattn::v1::LookupRequest req;
  req.set_name(memory);
  req.mutable_queries()->set_rows(1);
  req.mutable_queries()->set_cols(info.key_dim());
  req.mutable_queries()->set_data(query.data(), query.size() * sizeof(float));
  linattn::v1::LookupResponse res;
  if (const grpc::Status s = stub->Lookup(context().get(), req, &res); !s.ok()) {
    std::fprintf(stderr, "Lookup: %s\n", s.error_message().c_str());
    return 1;
  }
  std::vector<float> r(static_cast<size_t>(res.results().cols()));
  std::memcpy(r.data(), res.results().data().data(), r.size() * sizeof(float));
  std::printf("lookup:");
  for (size_t i = 0; i < r.size() && i < 8; ++i) std::printf(" %.4g", r[i]);
  std::printf("%s\n", r.size() > 8 ? " ..." : "");

  linattn::v1::SearchRequest search;
  *search.mutable_queries() = req.queries();
  search.set_k(3);
  linattn::v1::SearchResponse hits;
  if (const grpc::Status s = stub->Search(context().get(), search, &hits); !s.ok()) {
    std::fprintf(stderr, "Search: %s\n", s.error_message().c_str());
    return 1;
  }
  std::printf("search:");
  for (const auto& h : hits.results(0).hits()) std::printf(" %s (%.4g)", h.name().c_str(), h.score());
  std::printf("\n");
  return 0;
}
