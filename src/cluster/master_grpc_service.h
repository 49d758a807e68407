// gRPC transport of the master (heartbeats, Assign, LookupVolume). grpc++
// stays in the .cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cluster/master_ops.h"
#include "cluster/topology.h"
#include "common/status.h"

namespace needlefs {

class MasterGrpcServer {
 public:
  /// Serves the Master service: each heartbeat updates `topology`; Assign
  /// and LookupVolume go to `ops` (neither owned; both outlive the server).
  /// Errors: kUnavailable when the port cannot be bound.
  static StatusOr<std::unique_ptr<MasterGrpcServer>> Start(Topology* topology, MasterOps* ops,
                                                           uint64_t volume_size_limit_bytes,
                                                           const std::string& ip, uint16_t port);
  virtual ~MasterGrpcServer() = default;
  virtual uint16_t port() const = 0;
  virtual void Shutdown() = 0;
};

}  // namespace needlefs
