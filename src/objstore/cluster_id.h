// The id of the cluster a volume server belongs to, as its master tells it
// in heartbeat answers (0 until the first answer, and for a server without
// a master). Replication and anti-entropy requests carry it, and a server
// refuses requests of another cluster: a stale address (a dead server's
// port, reused by someone else's server) must never receive or hand out
// records. Shared by the heartbeat, the HTTP and the gRPC sides.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace needlefs {

using ClusterIdCell = std::shared_ptr<std::atomic<uint64_t>>;

/// Whether a request stamped with `theirs` may be served by a server of
/// `ours` (either unknown, 0, lets it through: a server that has not heard
/// from its master yet).
inline bool SameCluster(uint64_t ours, uint64_t theirs) {
  return ours == 0 || theirs == 0 || ours == theirs;
}

}  // namespace needlefs
