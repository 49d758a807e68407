// gRPC transport of the meta server (proto/meta.proto): the Namespace's
// methods and the ChangeLog's Subscribe stream. The generated and grpc++
// headers stay inside meta_service.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "metadata/change_log.h"
#include "metadata/namespace.h"

namespace needlefs {

struct MetaGrpcOptions {
  /// Most threads serving calls at once; calls beyond that fail with
  /// RESOURCE_EXHAUSTED. Each open Subscribe stream holds one thread for its
  /// whole life, so size it for (clients x (1 + concurrent calls)).
  /// Default: 128.
  int max_threads = 128;
  /// Largest request accepted (AddChunks batches). Default: 64 MiB.
  int max_receive_message_bytes = 64 << 20;
  /// Port of the frame RPC listener (common/frame_rpc.h) on the same
  /// address, serving every unary method with fewer thread hand-offs;
  /// clients find it through ServerInfo. 0 (default): the gRPC port + 100,
  /// or any free port when that is taken or the gRPC port is 0 (a warning
  /// and gRPC only when none can be had); N: that port, or Start fails;
  /// -1: none.
  int frame_port = 0;
  /// Announced in ServerInfo: the largest inline chunk the namespace takes
  /// (NamespaceOptions::max_inline_bytes), bytes.
  uint64_t max_inline_bytes = 0;
};

/// A running meta gRPC server; Shutdown() (also in the destructor) stops it.
/// Thread-safety: port() is thread-safe; Shutdown() must not race with
/// itself or the destructor.
class MetaGrpcServer {
 public:
  /// Serves the MetaService for `ns` and the change stream of `log` on
  /// ip:port (0 = any free port). `ns` and `log` are not owned and must
  /// outlive the server. Errors: kUnavailable when the port cannot be bound,
  /// kInvalidArgument for bad options.
  static StatusOr<std::unique_ptr<MetaGrpcServer>> Start(Namespace* ns, ChangeLog* log,
                                                         const std::string& ip, uint16_t port,
                                                         const MetaGrpcOptions& options = {});
  virtual ~MetaGrpcServer() = default;
  /// The bound port.
  virtual uint16_t port() const = 0;
  /// Stops accepting calls, ends the Subscribe streams (they return
  /// UNAVAILABLE within about 200 ms) and waits up to 2 s for running calls.
  /// Does not shut `log` down.
  virtual void Shutdown() = 0;
};

}  // namespace needlefs
