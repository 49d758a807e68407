// The master's durable state: the file-key sequence and the largest volume
// id handed out, so that ids stay unique across master restarts. Everything
// else (the topology) is rebuilt from heartbeats.
//
// Keys are handed out from a batch whose ceiling is saved (fsynced) before
// the first key of the batch leaves: after a crash the master continues
// above the saved ceiling, skipping at most one batch, never repeating.
//
// Storage is behind StateStorage: a file now, etcd later (high availability).
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "common/types.h"

namespace needlefs {

/// Where the state blob lives. Load returns "" when nothing was saved yet.
class StateStorage {
 public:
  virtual ~StateStorage() = default;
  virtual StatusOr<std::string> Load() = 0;
  /// Replaces the blob atomically and durably.
  virtual Status Save(const std::string& blob) = 0;
};

/// State in one JSON file, replaced by write-temp, fsync, rename, fsync-dir.
std::unique_ptr<StateStorage> NewFileStateStorage(const std::string& path);

/// Keys reported by volume servers at or above this are not raised to.
inline constexpr uint64_t kMaxTrustedFileKey = uint64_t{1} << 62;

class MasterState {
 public:
  /// Loads the state. Errors: kCorruption (unreadable blob), IOError.
  static StatusOr<std::unique_ptr<MasterState>> Open(std::unique_ptr<StateStorage> storage,
                                                     uint64_t key_batch = 10000);

  /// Reserves `count` consecutive file keys above `seen_max` (the largest
  /// key the volume servers report, so a master whose state was lost never
  /// repeats a stored key; a report at or above kMaxTrustedFileKey is
  /// ignored, since clients can store any key); returns the first. Errors:
  /// the storage's (nothing is handed out then).
  StatusOr<uint64_t> NextFileKeys(uint64_t count = 1, uint64_t seen_max = 0);
  /// A new volume id above every id seen: the saved maximum and
  /// `seen_max` (from the topology). Saved before it is returned.
  StatusOr<VolumeId> NextVolumeId(VolumeId seen_max);
  VolumeId max_volume_id() const;
  /// This cluster's random id, made at the first start and kept: volume
  /// servers learn it from heartbeats and refuse replication traffic of
  /// another cluster (a stale address reused by someone else's server).
  uint64_t cluster_id() const { return cluster_id_; }

 private:
  MasterState(std::unique_ptr<StateStorage> storage, uint64_t key_batch)
      : storage_(std::move(storage)), key_batch_(key_batch) {}
  Status SaveLocked();

  std::unique_ptr<StateStorage> storage_;
  const uint64_t key_batch_;
  mutable std::mutex mu_;
  uint64_t next_key_ = 1;       // GUARDED_BY(mu_)
  uint64_t key_ceiling_ = 1;    // GUARDED_BY(mu_): saved; keys below it may be out
  uint32_t max_volume_id_ = 0;  // GUARDED_BY(mu_)
  uint64_t cluster_id_ = 0;     // set in Open, then constant
};

}  // namespace needlefs
