#include "common/grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "common/http.h"

namespace needlefs {

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  auto code = s.code() == StatusCode::kCorruption ? grpc::StatusCode::DATA_LOSS
                                                  : static_cast<grpc::StatusCode>(s.code());
  return grpc::Status(code, std::string(s.message()));
}

Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  StatusCode code = s.error_code() == grpc::StatusCode::DATA_LOSS
                        ? StatusCode::kCorruption
                        : static_cast<StatusCode>(s.error_code());
  return Status(code, what + ": " + s.error_message());
}

GrpcServer::GrpcServer(std::unique_ptr<grpc::Server> server, uint16_t port)
    : server_(std::move(server)), port_(port) {}

GrpcServer::~GrpcServer() { Shutdown(); }

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const std::vector<grpc::Service*>& services,
                                                        const std::string& ip, uint16_t port,
                                                        const GrpcServerOptions& options) {
  grpc::ServerBuilder builder;
  int bound = 0;
  const std::string address = JoinHostPort(ip, port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound);
  for (grpc::Service* s : services) builder.RegisterService(s);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  grpc::ResourceQuota quota(options.name);
  if (options.max_threads > 0) {
    quota.SetMaxThreads(options.max_threads);
    builder.SetResourceQuota(quota);
  }
  if (options.max_idle_threads > 0) {
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                                options.max_idle_threads);
  }
  if (options.accept_keepalive_pings) {
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    return Status::Unavailable("cannot bind gRPC on " + address);
  }
  return std::unique_ptr<GrpcServer>(
      new GrpcServer(std::move(server), static_cast<uint16_t>(bound)));
}

void GrpcServer::Shutdown(const std::function<void()>& before_stop, int grace_ms) {
  if (down_ || !server_) return;
  down_ = true;
  if (before_stop) before_stop();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  server_->Wait();
}

}  // namespace needlefs
