// ONC RPC over TCP (RFC 5531 section 11, record marking) and UDP, one port
// for both: many connections, records of one or more fragments reassembled
// up to a size cap, each call run by one thread of a pool that also reads
// the sockets (one epoll set, knfsd's model: a call read alone costs one
// wake-up),
// replies written back as one-fragment records or one datagram (in any
// order: RPC matches them by xid). The calls of one connection run
// concurrently; a connection's replies are written one at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs::nfsd {

/// Who sent a record.
struct Peer {
  std::string address;  ///< "127.0.0.1", "::1"
  uint16_t port = 0;
  /// The call came as a UDP datagram: its reply must fit in one
  /// (kMaxDatagramBytes).
  bool datagram = false;
};

/// The largest UDP reply, bytes (an IPv4 datagram's payload).
inline constexpr size_t kMaxDatagramBytes = 65507;

/// Handles one RPC record (without its record mark): the reply record; an
/// empty one to send nothing (a retransmission of a call still running);
/// or nullopt for a record that is not a call (the connection is then
/// closed: nothing sensible can follow on it). Called from the pool's
/// threads, many at once; it must not throw (an exception ends the
/// connection).
using RpcHandler = std::function<std::optional<std::string>(std::string_view record, const Peer&)>;

struct RpcServerOptions {
  std::string address = "0.0.0.0";  ///< "::" listens on IPv6 and IPv4
  uint16_t port = 0;                ///< 0: any free port (see port())
  /// Threads that read the sockets and run the calls. Default: 8.
  int threads = 8;
  /// Largest record accepted, bytes; a connection sending a bigger one is
  /// closed (a WRITE of 1 MiB takes about 1 MiB + 200). Default: 4 MiB.
  size_t max_record_bytes = 4u << 20;
  /// Also serve UDP on the same port. Default: true.
  bool udp = true;
};

class RpcServer {
 public:
  /// Listens (TCP, and UDP on the same port) and serves until destroyed.
  /// Errors: kUnavailable (the address is taken or cannot be bound; the
  /// message says which), kInvalidArgument (not a numeric address),
  /// kIOError (epoll or eventfd could not be made).
  static StatusOr<std::unique_ptr<RpcServer>> Start(const RpcServerOptions& options,
                                                    RpcHandler handler);
  /// Stops accepting, ends every connection (calls not yet run are not
  /// run, replies not yet written are dropped), waits for the handlers
  /// running.
  ~RpcServer();
  uint16_t port() const;

 private:
  class Impl;
  explicit RpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs::nfsd
