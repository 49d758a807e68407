// The master (`needlefs master`): HTTP API as SeaweedFS has it and the gRPC
// heartbeat service, over a Topology and the durable MasterState.
//
//   GET|POST /dir/assign?count=&replication=&collection=&ttl=&dataCenter=&rack=
//        -> {"fid","url","publicUrl","count"}; grows the layout when it has
//           no writable volume (placement per the replication code)
//   GET /dir/lookup?volumeId=3 (or fileId=3,01...) -> {"volumeId","locations":[...]}
//   GET /vol/status -> every volume server with its volumes (JSON)
//   GET|POST /vol/grow?count=&replication=&collection=&ttl=&dataCenter=&rack=
//        -> {"count"}: allocates volumes now
//   GET /vol/fix_replication -> the under-replicated volumes and where a
//        missing replica would go; POST ?volumeId= repairs one now
//   GET /vol/balance -> the moves that even out volumes per server;
//        POST /vol/move?volumeId=&from=&to= makes one (cluster/replica_ops.h)
//   GET /dir/status, /cluster/status (JSON), /metrics
//   GET / -> the HTML status page (servers, volumes, free space, health)
// Errors are JSON {"error": ...}: 400 bad arguments, 404 unknown volume, 503
// when no volume can be placed (the message says why).
//
// Thread-safe; Stop() is idempotent and called by the destructor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace needlefs {

struct MasterOptions {
  std::string ip = "127.0.0.1";
  uint16_t port = 9333;        ///< HTTP; 0 = any free port
  uint16_t grpc_port = 19333;  ///< 0 = any free port
  /// Directory of the durable state (master.json). Required.
  std::string dir;
  /// Replication for assigns that do not name one. Default: "000".
  std::string default_replication = "000";
  /// Volumes at this size are full. Default: 30 GiB.
  uint64_t volume_size_limit_bytes = 30ull << 30;
  /// A volume server silent this long is dead. Default: 10 s.
  int dead_node_timeout_ms = 10'000;
  /// A volume under-replicated this long (its server died) gets its
  /// missing replicas copied to other servers. < 0 = never by itself (only
  /// on /vol/fix_replication). Default: 30 s.
  int replication_grace_ms = 30'000;
};

class MasterServer {
 public:
  /// Errors: kUnavailable (ports), kCorruption (state file), IOError.
  static StatusOr<std::unique_ptr<MasterServer>> Start(const MasterOptions& options);
  ~MasterServer();
  MasterServer(const MasterServer&) = delete;
  MasterServer& operator=(const MasterServer&) = delete;
  uint16_t http_port() const;
  uint16_t grpc_port() const;
  /// Volume servers currently known (alive).
  size_t node_count() const;
  void Stop();

  struct Impl;

 private:
  explicit MasterServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
