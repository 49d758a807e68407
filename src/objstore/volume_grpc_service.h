// gRPC transport of the volume server's admin service. The generated and
// grpc++ headers stay inside volume_grpc_service.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "objstore/cluster_id.h"
#include "objstore/store.h"

namespace needlefs {

class AntiEntropy;

/// A running gRPC server; Shutdown() (also in the destructor) stops it.
class VolumeGrpcServer {
 public:
  /// Serves the VolumeServer service for `store` on ip:port (0 = any free
  /// port). `anti_entropy` (may be null: SyncVolume is then refused) and
  /// `store` are not owned and must outlive the server. Errors:
  /// kUnavailable when the port cannot be bound.
  /// `cluster_id` (may be null): requests of anti-entropy from another
  /// cluster are refused (objstore/cluster_id.h).
  static StatusOr<std::unique_ptr<VolumeGrpcServer>> Start(Store* store, AntiEntropy* anti_entropy,
                                                           ClusterIdCell cluster_id,
                                                           const std::string& ip, uint16_t port);
  virtual ~VolumeGrpcServer() = default;
  virtual uint16_t port() const = 0;
  virtual void Shutdown() = 0;
};

}  // namespace needlefs
