// The master's replica operations: adding a replica of a volume on another
// volume server (repair of an under-replicated volume) and moving one
// (balance). The data moves between volume servers (CopyVolume pulls the
// source's append log, objstore/volume_copier.h); the master orchestrates:
//
//   1. target copies in bulk while writes go on;
//   2. writes stop: every holder is marked read-only (those already
//      read-only are left alone);
//   3. target copies the rest and serves the volume; the topology records it;
//   4. for a move, the old replica is deleted and forgotten;
//   5. writes resume on the holders that took them before.
//
// Writers whose cached replica list misses the new replica refresh it: a
// volume with fewer listed replicas than its code asks for, or a replica that
// answers 404, makes the forwarder ask the master again (replication.h).
//
// Thread-safe: operations run one at a time.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/topology.h"
#include "common/status.h"
#include "common/types.h"

namespace needlefs {

/// One replica added (and, for a move, one removed).
struct ReplicaCopy {
  VolumeId volume;
  std::string source;   ///< node id copied from
  std::string target;   ///< node id that holds the new replica
  std::string removed;  ///< node id whose replica was deleted ("" = none)
  uint64_t bytes = 0;   ///< record bytes copied
};

class ReplicaOps {
 public:
  explicit ReplicaOps(Topology* topology) : topology_(topology) {}

  /// Adds replicas of `id` until it has as many as its code asks for, each
  /// on the node Topology::PlaceReplica picks, copied from a holder.
  /// Errors: kNotFound (unknown volume), kFailedPrecondition (no node fits),
  /// the volume servers' errors (the holders are writable again after a
  /// failure).
  StatusOr<std::vector<ReplicaCopy>> Repair(VolumeId id);

  /// Moves the replica of `id` on node `from` to node `to`. Errors:
  /// kNotFound (`from` does not hold it), kFailedPrecondition (`to` holds
  /// it already or the move would break the placement), the volume
  /// servers' errors.
  StatusOr<ReplicaCopy> Move(VolumeId id, const std::string& from, const std::string& to);

 private:
  /// Steps 1-5 above; `drop_from` is the node of a move ("" for a repair).
  StatusOr<ReplicaCopy> AddReplicaLocked(VolumeId id, const std::string& target,
                                         const std::string& drop_from);
  /// "host:grpc_port" of a node. Errors: kNotFound.
  StatusOr<std::string> GrpcAddress(const std::string& node_id) const;

  Topology* topology_;
  std::mutex mu_;  // one operation at a time
};

}  // namespace needlefs
