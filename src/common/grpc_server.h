// A running gRPC server for one or more services: the bind / build / start /
// shutdown every role's gRPC transport shares. grpc++ headers stay in the
// .cc; services are passed as pointers (owned by the caller, which must keep
// them alive until Shutdown returns).
//
// Thread-safe; Shutdown() is idempotent and called by the destructor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace grpc {
class Service;
class Server;
class Status;
}  // namespace grpc

namespace needlefs {

/// The one Status -> gRPC status mapping of every service: the canonical
/// codes are shared (absl/gRPC), kCorruption travels as DATA_LOSS.
grpc::Status ToGrpc(const Status& s);
/// The one gRPC status -> Status mapping of every client (the inverse of
/// ToGrpc); the message is prefixed with `what` (the call's name).
Status FromGrpc(const grpc::Status& s, const std::string& what);

struct GrpcServerOptions {
  /// Largest request accepted. Default: 64 MiB.
  int max_receive_message_bytes = 64 << 20;
  /// Most calls served at once (sync server threads); 0 = gRPC's default.
  int max_threads = 0;
  /// Idle sync-server threads kept per completion queue (gRPC's
  /// MAX_POLLERS; 0 = gRPC's default of 2). gRPC starts a thread whenever
  /// every poller is busy and ends it after one call if more than this many
  /// are idle; handlers that block (a WAL sync) under steady concurrency
  /// otherwise cost a thread creation every other call.
  int max_idle_threads = 0;
  /// Accept clients' keepalive pings on idle streams (long Subscribe calls).
  bool accept_keepalive_pings = false;
  /// Name for the resource quota (logs).
  std::string name = "needlefs";
};

class GrpcServer {
 public:
  /// Binds ip:port (0 = any free port) and starts serving `services`.
  /// Errors: kUnavailable when the port cannot be bound.
  static StatusOr<std::unique_ptr<GrpcServer>> Start(const std::vector<grpc::Service*>& services,
                                                     const std::string& ip, uint16_t port,
                                                     const GrpcServerOptions& options = {});
  ~GrpcServer();
  uint16_t port() const { return port_; }
  /// Runs `before_stop` (e.g. to end long streams), then stops within
  /// `grace_ms` and waits for the handlers.
  void Shutdown(const std::function<void()>& before_stop = nullptr, int grace_ms = 2000);

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, uint16_t port);
  std::unique_ptr<grpc::Server> server_;
  uint16_t port_;
  bool down_ = false;
};

/// Owns a service object together with the GrpcServer that serves it, and
/// implements a role's small server interface (`uint16_t port() const` and
/// `void Shutdown()`, as VolumeGrpcServer, MetaGrpcServer, MasterGrpcServer).
/// `before_stop` runs at shutdown, e.g. to end the service's long streams.
template <typename Interface, typename ServiceT>
class GrpcServiceHost final : public Interface {
 public:
  GrpcServiceHost(std::unique_ptr<ServiceT> service, std::unique_ptr<GrpcServer> server,
                  std::function<void(ServiceT&)> before_stop = nullptr)
      : service_(std::move(service)),
        server_(std::move(server)),
        before_stop_(std::move(before_stop)) {}
  ~GrpcServiceHost() override { Shutdown(); }
  uint16_t port() const override { return server_->port(); }
  void Shutdown() override {
    if (before_stop_) {
      server_->Shutdown([this] { before_stop_(*service_); });
    } else {
      server_->Shutdown();
    }
  }

 private:
  std::unique_ptr<ServiceT> service_;
  std::unique_ptr<GrpcServer> server_;
  std::function<void(ServiceT&)> before_stop_;
};

}  // namespace needlefs
