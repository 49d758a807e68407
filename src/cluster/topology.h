// The master's model of the cluster: data centers -> racks -> volume servers
// (nodes), the volumes each node reports, and the writable volumes of each
// layout (collection, replica placement, TTL). Pure logic: the master's
// transport feeds it heartbeats and asks it for placements and locations.
//
// Thread-safety: all methods are thread-safe (one internal mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/types.h"
#include "objstore/superblock.h"

namespace needlefs {

/// A volume server as it introduces itself in its heartbeat.
struct NodeInfo {
  std::string id;          ///< "ip:port" of its HTTP API, unique in the cluster
  std::string public_url;  ///< what clients use ("" = id)
  uint16_t grpc_port = 0;
  std::string data_center = "DefaultDataCenter";
  std::string rack = "DefaultRack";
  int max_volumes = 8;           ///< volume slots
  uint64_t disk_free_bytes = 0;  ///< of the data directory's file system
  uint64_t disk_total_bytes = 0;
};

/// One volume as a node reports it.
struct VolumeReport {
  VolumeId id;
  std::string collection;
  ReplicaPlacement replica_placement;
  uint16_t ttl = 0;
  uint64_t size_bytes = 0;
  bool read_only = false;
  uint64_t file_count = 0;     ///< live needles
  uint64_t garbage_bytes = 0;  ///< dead needles and tombstones
  uint64_t max_file_key = 0;   ///< largest needle key the volume has held
  bool needs_repair = false;   ///< a replicated write failed on this holder
};

/// A node as the master sees it, for status pages and admin listings.
struct NodeSnapshot {
  NodeInfo info;
  std::vector<VolumeReport> volumes;  ///< by id
  int64_t last_seen_ms = 0;           ///< master clock of the last heartbeat
};

/// A (collection, replica placement, TTL) triple: volumes of one layout are
/// interchangeable for a new write.
struct LayoutKey {
  std::string collection;
  uint8_t replica_placement = 0;  ///< ReplicaPlacement::ToByte()
  uint16_t ttl = 0;
  auto operator<=>(const LayoutKey&) const = default;
};

/// Where a volume lives.
struct VolumeLocation {
  std::string node_id;
  std::string public_url;
  uint16_t grpc_port = 0;  ///< the node's gRPC admin port
  std::string data_center;
  std::string rack;
};

/// Where one replica sits, for placement checks.
struct ReplicaSite {
  std::string data_center;
  std::string rack;
};

/// Whether replicas at `sites` fit placement `rp`: one of them can be the
/// main copy with the others at most x in other data centers (each in a
/// different one), y in other racks of its data center (each in a different
/// rack) and z more in its own rack. With `exact`, there must be exactly
/// x, y and z of them (a complete, correctly placed replica set).
bool PlacementFits(const ReplicaPlacement& rp, const std::vector<ReplicaSite>& sites, bool exact);

/// One replica move of a balance plan.
struct ReplicaMove {
  VolumeId volume;
  std::string from;  ///< node id
  std::string to;    ///< node id
};

class Topology {
 public:
  /// Volumes at or above this size are not writable. Default: 30 GiB.
  explicit Topology(uint64_t volume_size_limit_bytes = 30ull << 30)
      : volume_size_limit_bytes_(volume_size_limit_bytes) {}

  /// Registers `node` (or refreshes it) and replaces its volume list: a
  /// full heartbeat. `now_ms` is the master's clock (ms).
  void UpdateNode(const NodeInfo& node, const std::vector<VolumeReport>& volumes, int64_t now_ms);
  /// A delta heartbeat: refreshes a known `node`, replaces the reports of
  /// `changed` volumes (adding new ones) and drops `deleted` ones. Returns
  /// false, changing nothing, when the node is unknown (dropped as dead):
  /// the master then asks for the full state.
  bool ApplyDelta(const NodeInfo& node, const std::vector<VolumeReport>& changed,
                  const std::vector<VolumeId>& deleted, int64_t now_ms);
  /// Drops a node and its volume replicas (its volumes become
  /// under-replicated). Returns false when unknown.
  bool RemoveNode(const std::string& node_id);
  /// Nodes whose last heartbeat is older than `timeout_ms`; they are removed.
  std::vector<std::string> RemoveDeadNodes(int64_t now_ms, int64_t timeout_ms);

  /// The nodes holding volume `id` (empty when unknown).
  std::vector<VolumeLocation> Lookup(VolumeId id) const;
  /// A writable volume of the layout, chosen at random so load spreads;
  /// nullopt when the layout has none (the caller grows it). A volume is
  /// writable when every replica the code asks for is present, none is
  /// read-only and it is below the size limit.
  /// With `data_center` (and `rack`) given, only volumes with a copy there
  /// qualify.
  std::optional<VolumeId> PickWritable(const LayoutKey& layout, const std::string& data_center = "",
                                       const std::string& rack = "") const;
  /// Number of writable volumes of the layout.
  size_t WritableCount(const LayoutKey& layout) const;

  /// Chooses nodes for a new volume with placement `rp` (SeaweedFS's xyz:
  /// x copies in other data centers, y in other racks of the same data
  /// center, z on other nodes of the same rack), each with a free slot,
  /// preferring the emptiest. `data_center` / `rack` ("" = any) pin the main
  /// copy. Returns 1 + x + y + z node ids, main copy first. Errors:
  /// kFailedPrecondition saying which part of the code the topology cannot
  /// satisfy (and what it has).
  StatusOr<std::vector<std::string>> PlaceVolume(const ReplicaPlacement& rp,
                                                 const std::string& data_center = "",
                                                 const std::string& rack = "") const;
  /// Records that a new volume was allocated on these nodes (before their
  /// next heartbeat reports it), so placement and assignment see it.
  void AddVolume(const VolumeReport& v, const std::vector<std::string>& node_ids);

  /// A node for one more replica of `id`: alive, with a free slot, not
  /// holding it, and keeping the replica set placeable (PlacementFits);
  /// the one with most free slots. Errors: kNotFound (unknown volume),
  /// kFailedPrecondition (no node fits, saying what the volume needs).
  StatusOr<std::string> PlaceReplica(VolumeId id) const;
  /// The volume as one of its holders reported it; nullopt when unknown.
  std::optional<VolumeReport> GetVolume(VolumeId id) const;
  /// Forgets that `node_id` holds volume `id` (after it was deleted there).
  void RemoveVolumeFrom(const std::string& node_id, VolumeId id);
  /// Moves that even out the number of volumes per node (until the fullest
  /// and the emptiest differ by at most one), each keeping its volume's
  /// replica set exactly placed and going to a node with a free slot that
  /// does not hold the volume yet. At most `max_moves`.
  std::vector<ReplicaMove> PlanBalance(size_t max_moves = 1000) const;

  /// Volumes whose replica count is below what their code asks for, with
  /// the nodes that still hold a copy.
  std::map<VolumeId, std::vector<std::string>> UnderReplicated() const;
  /// The largest volume id any node reported (0 when none).
  VolumeId MaxVolumeId() const;
  /// The largest needle key any volume server has reported (kept after the
  /// server leaves): file keys handed out must be above it.
  uint64_t MaxFileKey() const;
  /// Node ids by data center and rack, for status pages.
  std::map<std::string, std::map<std::string, std::vector<std::string>>> Tree() const;
  /// A node's info as last reported; nullopt when unknown.
  std::optional<NodeInfo> GetNode(const std::string& node_id) const;
  /// Number of nodes (volume servers) known.
  size_t NodeCount() const;
  /// Number of volumes with at least one replica.
  size_t VolumeCount() const;
  /// Every node with its volumes, by data center, rack and id.
  std::vector<NodeSnapshot> Snapshot() const;
  /// Free slots of a node (max - volumes held); -1 when unknown.
  int FreeSlots(const std::string& node_id) const;

 private:
  struct Node {
    NodeInfo info;
    std::map<VolumeId, VolumeReport> volumes;
    int64_t last_seen_ms = 0;
    int free() const { return info.max_volumes - static_cast<int>(volumes.size()); }
  };
  bool WritableLocked(const VolumeReport& v, size_t copies) const;
  /// Volumes of `layout` that every holder reports writable and in layout.
  std::vector<VolumeId> WritableVolumesLocked(const LayoutKey& layout) const;
  /// Replicas of a volume: (node, report) pairs.
  std::vector<const Node*> HoldersLocked(VolumeId id) const;

  const uint64_t volume_size_limit_bytes_;
  mutable std::mutex mu_;
  std::map<std::string, Node> nodes_;                       // GUARDED_BY(mu_)
  std::map<VolumeId, std::set<std::string>> volume_nodes_;  // GUARDED_BY(mu_)
  uint64_t max_file_key_ = 0;                               // GUARDED_BY(mu_)
};

}  // namespace needlefs
