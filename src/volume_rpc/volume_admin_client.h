// Client of a volume server's gRPC admin service (proto/volume_server.proto)
// in plain C++ types: the admin CLI and the master (volume growth, replica
// repair) use it. The gRPC glue stays in volume_admin_client.cc.
//
// Thread-safe: one client may be used from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/types.h"

namespace needlefs {

/// One volume as VolumeStatus reports it.
struct VolumeInfo {
  VolumeId id;
  std::string collection;
  uint64_t data_bytes = 0;
  uint64_t needle_count = 0;
  uint64_t live_bytes = 0;
  uint64_t garbage_bytes = 0;
  uint64_t deleted_count = 0;
  bool read_only = false;
  std::string read_only_reason;
  uint32_t compaction_revision = 0;
  std::string replication;
  std::string ttl;
};

/// The outcome of a Compact call.
struct CompactResult {
  bool skipped = false;  ///< garbage ratio below the threshold
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
};

/// What one CopyVolume call did (see objstore/volume_copier.h).
struct CopyVolumeResult {
  uint64_t entries = 0;  ///< log entries in the copy so far
  uint64_t bytes = 0;    ///< record bytes copied by this call
  uint64_t behind = 0;   ///< entries the source had beyond the copy at the end
  bool imported = false;
};

/// What one SyncVolume call pulled (see objstore/anti_entropy.h).
struct SyncVolumeResult {
  uint64_t volumes = 0;            ///< volumes compared
  uint64_t compared = 0;           ///< keys in the other replicas' digests
  uint64_t needles = 0;            ///< needles pulled
  uint64_t tombstones = 0;         ///< deletes pulled
  uint64_t bytes = 0;              ///< record bytes pulled
  uint64_t changed_meanwhile = 0;  ///< keys skipped: written during the round
  uint64_t errors = 0;             ///< records, peers or volumes that failed
};

class VolumeAdminClient {
 public:
  /// A client for "host:port" (the volume server's gRPC port). Connects
  /// lazily. Errors: kInvalidArgument for a malformed address.
  static StatusOr<std::unique_ptr<VolumeAdminClient>> Create(const std::string& hostport,
                                                             int timeout_ms = 10'000);
  virtual ~VolumeAdminClient() = default;

  /// Errors as the server returns them (kAlreadyExists, kResourceExhausted,
  /// kInvalidArgument), kUnavailable when unreachable.
  virtual Status AllocateVolume(VolumeId id, const std::string& collection,
                                const std::string& replication, const std::string& ttl) = 0;
  /// One volume's info, or every volume's when `id` is 0. Errors: kNotFound.
  virtual StatusOr<std::vector<VolumeInfo>> VolumeStatus(VolumeId id) = 0;
  /// Vacuums `id` when its garbage ratio is at least `garbage_threshold`;
  /// `progress(done, total)` is called as live needles are copied (no
  /// timeout: compaction of a large volume takes as long as it takes).
  virtual StatusOr<CompactResult> Compact(
      VolumeId id, double garbage_threshold,
      const std::function<void(uint64_t, uint64_t)>& progress) = 0;
  virtual Status MarkReadonly(VolumeId id, bool read_only) = 0;
  virtual Status DeleteVolume(VolumeId id) = 0;
  /// Asks this server to copy volume `id` in from `source` (gRPC
  /// "host:port"): without `final` until nearly caught up, with `final` to
  /// the end, then serve it. No timeout. Errors as the server returns them
  /// (kAlreadyExists, kResourceExhausted, kAborted, kNotFound at the source).
  virtual StatusOr<CopyVolumeResult> CopyVolume(VolumeId id, const std::string& collection,
                                                const std::string& source, bool final) = 0;
  /// Asks this server to pull volume `id` (0 = every replicated volume it
  /// holds) from the volume's other replicas now (anti-entropy). No
  /// timeout. Errors: kNotFound, kFailedPrecondition (read-only, single
  /// copy, or a server without a master), the pull's errors.
  virtual StatusOr<SyncVolumeResult> SyncVolume(VolumeId id) = 0;
};

}  // namespace needlefs
