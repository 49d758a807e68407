// `needlefs s3`: the S3 gateway (gateway/s3_gateway.h) on HTTP/1.1
// (Boost.Beast, kept in s3_server.cc): keep-alive, `Expect: 100-continue`,
// request bodies pulled from the socket as the gateway reads them and
// response bodies written as the layer streams them, so no object is ever
// held in memory; /metrics and /status on the same port (unsigned GETs of
// those two paths). One thread per connection (up to max_connections).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "client/file_client.h"
#include "common/status.h"
#include "gateway/s3_gateway.h"

namespace needlefs::gateway {

struct S3ServerOptions {
  std::string meta;    ///< meta's gRPC "host:port"
  std::string master;  ///< the master's HTTP "host:port"
  std::string address = "0.0.0.0";
  uint16_t port = 8333;  ///< 0: any free port
  /// Identities JSON (S3Identities); created with one new identity when it
  /// does not exist, with `credentials_file` (when not "") beside it.
  std::string identities_file;
  std::string credentials_file;
  S3GatewayOptions gateway;
  int max_connections = 1024;
  FileClientOptions file;
};

class S3Server {
 public:
  /// Connects to meta and the master, loads (or creates) the identities and
  /// listens. Errors: those of FileSystem::Open and S3Identities::Load,
  /// kUnavailable (the port is taken).
  static StatusOr<std::unique_ptr<S3Server>> Start(const S3ServerOptions& options);
  /// Closes the listener and every connection, then the layer.
  ~S3Server();
  uint16_t port() const;
  /// Whether the identities file was created by this start (a first start).
  bool created_identities() const;
  /// The first identity's access key (printed at a first start).
  std::string access_key() const;

 private:
  class Impl;
  explicit S3Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs::gateway
