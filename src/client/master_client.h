// Client of the master's gRPC service for our own tools and front ends:
// file-id assignment and volume lookup (proto/master.proto), the same
// operations as HTTP /dir/assign and /dir/lookup. The gRPC glue stays in
// master_client.cc.
//
// Thread-safe: one client may be used from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/types.h"

namespace needlefs {

/// What to assign (see cluster/master_ops.h for the meaning of each field).
struct MasterAssignRequest {
  uint64_t count = 1;
  std::string replication;  ///< "" = the master's default
  std::string collection;
  std::string ttl;
  std::string data_center;
  std::string rack;
};

struct MasterAssignResult {
  std::string fid;  ///< "<vid>,<key hex><cookie hex>"
  std::string url;  ///< volume server HTTP "ip:port"
  std::string public_url;
  uint64_t count = 0;
};

/// One replica of a volume.
struct MasterLocation {
  std::string url;  ///< HTTP "ip:port"
  std::string public_url;
  std::string grpc;  ///< gRPC admin "ip:port"
  std::string data_center;
  std::string rack;
};

class MasterClient {
 public:
  /// A client for the master's gRPC "host:port" (its HTTP port + 10000 by
  /// default). Connects lazily. Errors: kInvalidArgument (malformed
  /// address).
  static StatusOr<std::unique_ptr<MasterClient>> Create(const std::string& hostport,
                                                        int timeout_ms = 10'000);
  virtual ~MasterClient() = default;
  /// Errors: as the master's Assign (kInvalidArgument, kFailedPrecondition
  /// with what the topology lacks), kUnavailable when unreachable.
  virtual StatusOr<MasterAssignResult> Assign(const MasterAssignRequest& req) = 0;
  /// Errors: kNotFound (unknown volume), kUnavailable.
  virtual StatusOr<std::vector<MasterLocation>> Lookup(VolumeId id) = 0;
};

}  // namespace needlefs
