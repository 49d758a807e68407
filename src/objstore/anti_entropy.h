// Anti-entropy between the replicas of a volume. Replicas diverge when a
// replicated write reached some of them and failed on others, or when a
// server was down; each volume server periodically pulls from every other
// replica of its replicated volumes what it lacks, so replicas reconcile by
// themselves (SeaweedFS leaves them diverged until an operator runs
// volume.check.disk).
//
// The rule, per key, comparing the latest records (Volume::Digest): equal
// content (size + data CRC, or both tombstones) is in sync; otherwise the
// record with the later append time wins, and a replica pulls the peer's
// when the peer's is later (a tombstone pulled deletes the key). A key the
// peer has deleted and this replica never had is left alone. Each side pulls
// only, so a pair converges after both have run a round. A pulled record is
// appended only when the key did not change locally since the digest
// (Volume::AppendRecordIfUnchanged), so a write racing the round is never
// undone. A tombstone dropped by compaction cannot be seen: a replica that
// missed that delete brings the needle back, which is then unreferenced
// garbage (the namespace never points at it), not visible data.
//
// The transport to the peer is passed in (ReplicaPeer; gRPC in
// anti_entropy_grpc.cc), so this logic stays free of gRPC.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/types.h"
#include "objstore/cluster_id.h"
#include "objstore/store.h"

namespace needlefs {

/// Another replica of a volume, as anti-entropy reads it. Implementations
/// are used from one thread at a time.
class ReplicaPeer {
 public:
  virtual ~ReplicaPeer() = default;
  /// The peer's "host:port", for messages.
  virtual const std::string& name() const = 0;
  /// The peer's Volume::Digest of volume `id`. Errors: kNotFound (the peer
  /// has no such volume), kUnavailable.
  virtual Status Digest(VolumeId id, VolumeDigest* out) = 0;
  /// The raw records of `which` (entries of the peer's digest of compaction
  /// revision `revision`), one per entry in order. Errors: kAborted (the
  /// peer compacted meanwhile), kNotFound, kUnavailable.
  virtual Status ReadRecords(VolumeId id, int revision, const std::vector<DigestEntry>& which,
                             std::vector<std::string>* out) = 0;
  /// Asks the peer to pull volume `id` from its other replicas now (this
  /// server among them). Errors: the peer's SyncVolume errors, kUnavailable.
  virtual Status RequestPull(VolumeId id) = 0;
};

/// What a reconciliation pulled.
struct SyncResult {
  uint64_t volumes = 0;            ///< volumes compared
  uint64_t compared = 0;           ///< keys in the peers' digests
  uint64_t needles = 0;            ///< needles pulled
  uint64_t tombstones = 0;         ///< deletes pulled
  uint64_t bytes = 0;              ///< record bytes pulled
  uint64_t changed_meanwhile = 0;  ///< skipped: written locally since the digest
  uint64_t errors = 0;             ///< records, volumes or peers that failed
  SyncResult& operator+=(const SyncResult& o);
  uint64_t pulled() const { return needles + tombstones; }
};

/// Compares `volume` with its copy at `peer` and pulls what is newer there
/// (the rule above). Records that fail their checksum are counted in
/// `errors` and skipped. Errors: kFailedPrecondition (the local volume is
/// read-only), kAborted (either side was compacted during the round), the
/// peer's errors, IOError, kCancelled (`*cancel` turned true between two
/// batches; what was pulled stays).
StatusOr<SyncResult> PullFromReplica(Volume* volume, ReplicaPeer* peer,
                                     const std::atomic<bool>* cancel = nullptr);

/// The other replicas of a volume (this server excluded). Errors:
/// kNotFound, kUnavailable (the master did not answer).
using ReplicaFinder =
    std::function<StatusOr<std::vector<std::unique_ptr<ReplicaPeer>>>(VolumeId id)>;

/// Finds replicas through the master's /dir/lookup (`master`: its HTTP
/// "host:port"; `self`: this server's "ip:port" as the master knows it)
/// and reads them over the volume servers' gRPC admin service.
/// Requests carry `cluster_id` (objstore/cluster_id.h; may be null).
ReplicaFinder MasterReplicaFinder(const std::string& master, const std::string& self,
                                  ClusterIdCell cluster_id = nullptr);

struct AntiEntropyOptions {
  /// Time between two rounds over every replicated volume; 0 = no
  /// background rounds (SyncVolume on demand only). Default: 10 minutes.
  int interval_ms = 600'000;
};

/// Runs reconciliation rounds for every replicated volume of a store, in
/// the background and on demand. Thread-safe; Stop() (also the destructor)
/// ends the background loop.
class AntiEntropy {
 public:
  /// `store` (not owned) must outlive this object.
  AntiEntropy(Store* store, ReplicaFinder finder, const AntiEntropyOptions& options);
  ~AntiEntropy();
  AntiEntropy(const AntiEntropy&) = delete;
  AntiEntropy& operator=(const AntiEntropy&) = delete;

  /// Starts the background loop: the periodic rounds (when interval_ms >
  /// 0) and the repair of reported volumes.
  void Start();
  void Stop();

  /// Reports volume `id` for repair: a replicated write or delete reached
  /// this replica but not every other one. Within about a second, and then
  /// with a backoff up to a minute until it succeeds, the volume is pulled
  /// from its other replicas and each of them is asked to pull from here.
  void ReportForRepair(VolumeId id);
  /// The volumes reported and not yet repaired.
  std::vector<VolumeId> NeedingRepair() const;

  /// Pulls volume `id` from each of its other replicas now; `id` 0 = every
  /// replicated, writable volume of the store. Errors: kNotFound (no such
  /// volume here), kFailedPrecondition (read-only or not replicated); for
  /// all volumes, failures are counted in `errors` instead.
  StatusOr<SyncResult> SyncVolume(VolumeId id);

 private:
  StatusOr<SyncResult> SyncOne(Volume* v, bool ask_peers_to_pull);
  /// One attempt at every reported volume whose backoff has passed.
  void RepairReported();
  void Loop();

  struct Reported {
    std::chrono::steady_clock::time_point next_try;
    int failures = 0;
  };

  Store* const store_;
  const ReplicaFinder finder_;
  const AntiEntropyOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                      // GUARDED_BY(mu_)
  std::atomic<bool> cancel_{false};        // stop_, readable without mu_
  bool kicked_ = false;                    // GUARDED_BY(mu_): a volume was reported
  std::map<VolumeId, Reported> reported_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace needlefs
