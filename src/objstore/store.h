// The store: every volume in one data directory, as a volume server owns
// them. Loads existing volumes at open, allocates and deletes volumes.
//
// Thread-safety: all methods are thread-safe. Volumes are handed out as
// shared_ptr so a request in flight keeps a deleted volume's object alive.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/types.h"
#include "objstore/volume.h"

namespace needlefs {

struct StoreOptions {
  /// Directory for the volume files; created when missing. Required.
  std::string dir;
  /// Most volumes this store holds (its slots). Default: 8.
  int max_volumes = 8;
  IndexMode index_mode = IndexMode::kMemory;
  Durability durability = Durability::kGroup;
  /// Per-volume size limit; see VolumeOptions. Default: 30 GiB.
  uint64_t volume_size_limit_bytes = 30ull << 30;
};

class Store {
 public:
  /// Opens the directory and every volume in it. A volume that fails to load
  /// (e.g. a corrupt superblock) is skipped with an error logged and listed
  /// by FailedVolumes(). Errors: IOError for the directory itself.
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();

  /// Creates volume `id`. Errors: kAlreadyExists (exists in another
  /// collection), kResourceExhausted (no free slot), IOError. Allocating an
  /// existing volume of the same collection succeeds and changes nothing.
  Status AllocateVolume(VolumeId id, const std::string& collection, ReplicaPlacement placement,
                        uint16_t ttl);
  /// Opens the staging copy of volume `id` in DIR/.incoming/ (created when
  /// absent), where a copy from another server is built before ImportIncoming
  /// serves it. Staging copies do not count as volumes and are removed when
  /// the store opens. Errors: kAlreadyExists (the store serves the volume),
  /// kResourceExhausted (no free slot), IOError.
  StatusOr<std::unique_ptr<Volume>> OpenIncoming(VolumeId id, const std::string& collection,
                                                 ReplicaPlacement placement, uint16_t ttl);
  /// Moves the finished staging copy of `id` (closed by the caller) into the
  /// store and serves it. Errors: kAlreadyExists, kResourceExhausted,
  /// kNotFound (no staging copy), IOError (the staging copy stays).
  Status ImportIncoming(VolumeId id, const std::string& collection);
  /// Removes the staging copy of `id`, if any.
  void DropIncoming(VolumeId id, const std::string& collection);
  /// The volume, or nullptr.
  std::shared_ptr<Volume> GetVolume(VolumeId id) const;
  /// Removes the volume and its files. Errors: kNotFound.
  Status DeleteVolume(VolumeId id);
  /// Stats of every volume, by id.
  std::vector<VolumeStats> Stats() const;
  /// Free volume slots.
  int FreeSlots() const;
  const StoreOptions& options() const { return options_; }
  /// "<file>: <error>" for each volume that failed to load.
  std::vector<std::string> FailedVolumes() const;
  /// Syncs every volume (clean shutdown).
  Status SyncAll();
  /// SyncAppends on every volume that took unstable writes since its last
  /// sync (what bounds how long an unstable write stays in memory only).
  /// Returns the first error; the other volumes are synced anyway.
  Status SyncUnstable();

 private:
  explicit Store(const StoreOptions& options) : options_(options) {}
  /// Every volume now (a snapshot taken under mu_, used outside it).
  std::vector<std::shared_ptr<Volume>> Volumes() const;
  VolumeOptions MakeVolumeOptions(VolumeId id, const std::string& collection) const;

  const StoreOptions options_;
  mutable std::mutex mu_;
  std::map<VolumeId, std::shared_ptr<Volume>> volumes_;  // GUARDED_BY(mu_)
  std::vector<std::string> failed_;                      // GUARDED_BY(mu_)
};

}  // namespace needlefs
