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
// the gRPC service does, or kFrameRpcNotRun (-1): the server refused the
// call before reading it (its connection limit), so it certainly did not
// run. Calls on one connection are strictly sequential.
//
// Thread-safe: FrameRpcClient::Call from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs {

/// The reply code of a call the server refused without running it.
inline constexpr int kFrameRpcNotRun = -1;

/// What a handler returns: a gRPC status code (0 OK) and, for a failure,
/// its message (the reply bytes are then ignored).
struct FrameRpcResult {
  int code = 0;
  std::string message;
};

/// Runs method `method` on request bytes `request`, filling `*reply` (the
/// serialized reply message). Called on the connection's thread; may block
/// (a WAL sync) without holding up other connections.
using FrameRpcHandler = std::function<FrameRpcResult(std::string_view method,
                                                     std::string_view request, std::string* reply)>;

struct FrameRpcServerOptions {
  /// Largest request accepted; a larger one closes the connection. Bytes.
  uint32_t max_request_bytes = 64u << 20;
  /// Most connections at once; a further one gets one kFrameRpcNotRun
  /// reply and is closed (its client then uses another way).
  int max_connections = 1024;
  /// Request bytes buffered across all connections at once; a connection
  /// whose request would go over waits for the others (memory stays bounded
  /// whatever many clients announce).
  uint64_t max_buffered_bytes = 256ull << 20;
  /// A connection idle this long between calls is closed, ms.
  int idle_timeout_ms = 600'000;
  std::string name = "frame-rpc";  ///< for log lines
};

/// Serves `handler` on a TCP port until Shutdown (or destruction).
class FrameRpcServer {
 public:
  /// Listens on ip:port (0 = any free port); `ip` may be a name. Errors:
  /// kUnavailable when the address cannot be bound, kInvalidArgument when
  /// it does not resolve.
  static StatusOr<std::unique_ptr<FrameRpcServer>> Start(const std::string& ip, uint16_t port,
                                                         FrameRpcHandler handler,
                                                         const FrameRpcServerOptions& options = {});
  /// Shutdown().
  ~FrameRpcServer();
  uint16_t port() const;
  /// Stops accepting and ends every connection: idle ones at once, one in
  /// a call after its reply went out (up to 2 s). Idempotent.
  void Shutdown();

 private:
  class Impl;
  explicit FrameRpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct FrameRpcClientOptions {
  /// Idle connections kept for reuse; more are closed after their call.
  int max_idle_connections = 64;
  /// An idle connection older than this is closed instead of reused, ms
  /// (well under the server's idle timeout, so a reused one is never
  /// closed by the server under a call).
  int max_idle_ms = 60'000;
  /// Longest wait for a new connection, ms (a port that drops packets
  /// must not cost every call its whole deadline).
  int connect_timeout_ms = 1000;
  /// Largest reply accepted, bytes.
  uint32_t max_reply_bytes = 64u << 20;
  /// A server in this same process (`needlefs server`: meta with the FUSE
  /// mount, nfsd and the S3 gateway) is called directly on the caller's
  /// thread: no socket, no context switch. The client learns it once, over
  /// the socket (a ticket of this process that only a server of this
  /// process can claim). Such calls have no deadline (the handler runs
  /// until it returns, as the server's own thread would) and no size caps
  /// (the bytes never leave the process). Default: true.
  bool in_process = true;
};

struct FrameRpcLocalEndpoint;

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
  /// `*sent` (may be null) says whether the call may have run: false when
  /// no connection could be made or the server refused it unread
  /// (kFrameRpcNotRun). With `idempotent`, a call whose reused connection
  /// turned out closed before any reply byte is sent once more on a new
  /// connection. To a server of this process (in_process), the handler runs
  /// on this thread without a deadline; a stopped one gives kUnavailable,
  /// unsent.
  StatusOr<FrameRpcResult> Call(std::string_view method, std::string_view request,
                                std::string* reply, int timeout_ms, bool* sent = nullptr,
                                bool idempotent = false);

 private:
  /// Sets `*local` to the in-process server this client reaches, or null
  /// (another process, or a refused probe: asked again with the next
  /// call). An error (cannot connect, no answer): the call fails with it,
  /// unsent.
  Status FindLocal(std::chrono::steady_clock::time_point deadline,
                   std::shared_ptr<FrameRpcLocalEndpoint>* local);
  StatusOr<FrameRpcResult> CallLocal(FrameRpcLocalEndpoint* local, std::string_view method,
                                     std::string_view request, std::string* reply, bool* sent);
  int Connect(int timeout_ms, Status* error);
  int TakeIdle();
  void PutIdle(int fd);
  /// One attempt on `fd` (closed or pooled after). `*any_reply` says
  /// whether reply bytes came.
  StatusOr<FrameRpcResult> Attempt(int fd, std::string_view method, std::string_view request,
                                   std::string* reply,
                                   std::chrono::steady_clock::time_point deadline, bool* any_reply);

  const std::string host_;
  const uint16_t port_;
  const FrameRpcClientOptions options_;
  struct Pool;
  std::unique_ptr<Pool> pool_;
  std::mutex local_mu_;
  bool local_probed_ = false;                     // GUARDED_BY(local_mu_)
  std::shared_ptr<FrameRpcLocalEndpoint> local_;  // GUARDED_BY(local_mu_)
};

}  // namespace needlefs
