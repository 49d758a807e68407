// What the master does for clients, independent of the transport: file-id
// assignment and volume lookup. The HTTP API (/dir/assign, /dir/lookup) and
// the gRPC Master service (Assign, LookupVolume) both call it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/topology.h"
#include "common/status.h"

namespace needlefs {

/// An assignment request, as SeaweedFS's /dir/assign takes it.
struct AssignRequest {
  uint64_t count = 1;       ///< consecutive keys reserved: 1..999999
  std::string replication;  ///< "xyz"; "" = the master's default
  std::string collection;
  std::string ttl;          ///< "3d" etc.; "" = none
  std::string data_center;  ///< prefer a volume with a copy here ("" = any)
  std::string rack;         ///< and in this rack of it ("" = any)
};

struct AssignResult {
  std::string fid;  ///< "<vid>,<key hex><cookie hex>"; keys fid..fid+count-1
  std::string url;  ///< a volume server holding the volume ("ip:port")
  std::string public_url;
  uint64_t count = 0;
};

class MasterOps {
 public:
  virtual ~MasterOps() = default;
  /// Picks a writable volume of the layout (growing one when there is none)
  /// and reserves keys. Errors: kInvalidArgument (bad count, replication or
  /// ttl), kFailedPrecondition/kResourceExhausted (the topology cannot
  /// place the copies; the message says what is missing), IOError (state).
  virtual StatusOr<AssignResult> Assign(const AssignRequest& req) = 0;
  /// Where volume `id` lives. Errors: kNotFound.
  virtual StatusOr<std::vector<VolumeLocation>> Lookup(VolumeId id) = 0;
  /// The cluster's id (MasterState::cluster_id).
  virtual uint64_t ClusterId() const = 0;
};

}  // namespace needlefs
