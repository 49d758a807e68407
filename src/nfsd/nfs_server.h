// `needlefs nfsd`: an NFSv3 server (RFC 1813) with its MOUNT service over
// the file-system layer (client/file_system.h), so NFS clients get the same
// permissions, caches and consistency as the FUSE mount. Stateless: file
// handles carry the inode and generation (nfsd/file_handle.h), so several
// nfsd processes can serve one cluster and a client can move between them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "client/file_client.h"
#include "common/status.h"

namespace needlefs::nfsd {

struct NfsServerOptions {
  std::string meta;    ///< meta's gRPC "host:port"
  std::string master;  ///< the master's HTTP "host:port"
  std::string address = "0.0.0.0";
  uint16_t port = 2049;         ///< NFS; 0: any free port
  uint16_t mount_port = 20048;  ///< MOUNT; 0: any free port
  /// exports(5)-like YAML (nfsd/exports.h); "": "/" read-write to loopback
  /// clients only, no_root_squash.
  std::string exports_file;
  int threads = 8;  ///< RPC handler threads per port
  /// Also answer the portmapper (PMAP v2, TCP and UDP) on `portmap_port`
  /// with nfsd's ports, so clients need no port options. When that port is
  /// taken (by rpcbind), nfsd registers with rpcbind instead. Default: false.
  bool portmap = false;
  uint16_t portmap_port = 111;
  /// Register NFS and MOUNT (TCP and UDP) with the machine's rpcbind when
  /// one runs (its socket /run/rpcbind.sock answers) and nfsd is not the
  /// portmapper itself; unregistered when nfsd stops. Default: true.
  bool register_rpcbind = true;
  /// HTTP port of /metrics (Prometheus: calls, errors and seconds per
  /// procedure, DRC hits) and /status (JSON); 0: any free port, -1: none.
  int http_port = -1;
  FileClientOptions file;
};

class NfsServer {
 public:
  /// Connects to meta and the master and listens. Errors: those of
  /// FileSystem::Open, Exports::Load, and kUnavailable (a port is taken).
  static StatusOr<std::unique_ptr<NfsServer>> Start(const NfsServerOptions& options);
  /// Stops serving; data clients wrote UNSTABLE and never committed is
  /// flushed (their next COMMIT would otherwise see a new verifier).
  ~NfsServer();
  uint16_t port() const;
  uint16_t mount_port() const;
  /// The built-in portmapper's port; 0 when it does not run.
  uint16_t portmap_port() const;
  /// The /metrics and /status port; 0 when it does not run.
  uint16_t http_port() const;
  /// Whether NFS and MOUNT are registered with the machine's rpcbind.
  bool rpcbind_registered() const;

 private:
  class Impl;
  explicit NfsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs::nfsd
