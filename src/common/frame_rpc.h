// A minimal request/reply transport for the hot path between a client
// library and its server (the FUSE mount, nfsd and the S3 gateway to meta):
// one TCP connection per call in flight, the calling thread writes its
// request and reads the reply itself, and the server has one thread per
// connection that reads, runs the handler and writes. A call is therefore
// two context switches (the server thread wakes, the caller wakes), where
// a gRPC unary call on this 2-core machine measured about eleven across
// both processes (gRPC's pollers hand each call and reply between their
// threads). The messages are the same protobufs as the gRPC service; the
// gRPC server stays for streams and for clients that do not use this.
//
// Wire format (all integers big-endian):
//   request  = u32 len, u8 name_len, method name, request bytes
//              (len counts everything after itself)
//   reply    = u32 len, i32 code, reply bytes (code 0) or error message
// `code` is a gRPC status code (0 OK), so a handler maps errors exactly as
// the gRPC service does. Calls on one connection are strictly sequential.
//
// Thread-safe: FrameRpcClient::Call from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs {

/// What a handler returns: a gRPC status code (0 OK) and, for a failure,
/// its message (the reply bytes are then ignored).
struct FrameRpcResult {
  int code = 0;
  std::string message;
};

/// Runs method `method` on request bytes `request`, filling `*reply` (the
/// serialized reply message). Called on the connection's thread; may block
/// (a WAL sync) without holding up other connections.
using FrameRpcHandler = std::function<FrameRpcResult(
    std::string_view method, const std::string& request, std::string* reply)>;

struct FrameRpcServerOptions {
  /// Largest request accepted; a larger one closes the connection. Bytes.
  uint32_t max_request_bytes = 64u << 20;
  /// Most connections at once; further ones are closed at accept.
  int max_connections = 4096;
  /// A connection idle this long between calls is closed, ms.
  int idle_timeout_ms = 600'000;
  std::string name = "frame-rpc";  ///< for log lines
};

/// Serves `handler` on a TCP port until Shutdown (or destruction).
class FrameRpcServer {
 public:
  /// Listens on ip:port (0 = any free port). Errors: kUnavailable when the
  /// address cannot be bound.
  static StatusOr<std::unique_ptr<FrameRpcServer>> Start(const std::string& ip, uint16_t port,
                                                         FrameRpcHandler handler,
                                                         const FrameRpcServerOptions& options = {});
  /// Shutdown().
  ~FrameRpcServer();
  uint16_t port() const;
  /// Stops accepting, ends every connection (a handler running finishes and
  /// its reply is dropped) and joins the threads. Idempotent.
  void Shutdown();

 private:
  class Impl;
  explicit FrameRpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct FrameRpcClientOptions {
  /// Idle connections kept for reuse; more are closed after their call.
  int max_idle_connections = 32;
  /// Largest reply accepted, bytes.
  uint32_t max_reply_bytes = 64u << 20;
};

/// Calls a FrameRpcServer at host:port over pooled connections.
class FrameRpcClient {
 public:
  FrameRpcClient(std::string host, uint16_t port, const FrameRpcClientOptions& options = {});
  ~FrameRpcClient();
  FrameRpcClient(const FrameRpcClient&) = delete;
  FrameRpcClient& operator=(const FrameRpcClient&) = delete;

  /// Sends `request` to `method` (at most 255 bytes) and waits up to
  /// `timeout_ms` for the reply bytes. The returned result carries the
  /// server's code and message. Transport errors: kUnavailable (cannot
  /// connect, or the connection broke: the call may or may not have run),
  /// kDeadlineExceeded (no reply in time: the same), kInvalidArgument (a
  /// method name over 255 bytes), kResourceExhausted (a reply over the cap).
  /// `*sent` (may be null) says whether any of the request left: false
  /// when no connection could be made (the call certainly did not run).
  StatusOr<FrameRpcResult> Call(std::string_view method, const std::string& request,
                                std::string* reply, int timeout_ms, bool* sent = nullptr);

 private:
  int Connect(int timeout_ms, Status* error);
  int TakeIdle();
  void PutIdle(int fd);

  const std::string host_;
  const uint16_t port_;
  const FrameRpcClientOptions options_;
  struct Pool;
  std::unique_ptr<Pool> pool_;
};

}  // namespace needlefs
