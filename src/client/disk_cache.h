// A directory of cached blobs (chunk needles) on local disk under a size
// cap: the file client's second cache tier (FileClientOptions::
// disk_cache_dir), kept across mounts. A file id always names the same
// bytes (the client never rewrites a blob), so nothing is ever stale.
//
// Layout: one file per blob, DIR/<file id> (FileId::ToString, the form the
// file client passes), holding the bytes followed by
// their CRC32C (4 bytes, little-endian). A file that fails the check (torn
// by a crash, damaged on disk) is removed and reads as a miss. New files are
// written as DIR/.tmp-<pid>-<n> and renamed into place; those of dead
// processes are removed at Open. The cap counts each file in whole 4 KiB
// blocks. When the total passes the cap, the least recently used blobs go
// first; a hit touches the file's mtime, so that order survives a restart.
//
// Thread-safe. Memory: one index entry (file id, size) per cached blob.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace needlefs {

class DiskCache {
 public:
  /// Opens `dir` (created when missing), indexes the blobs already there
  /// (oldest mtime evicted first), removes temporary files left by processes
  /// that are gone, and
  /// evicts down to `cap_bytes`. Errors: kInvalidArgument (cap 0),
  /// IOError (the directory cannot be created or read).
  static StatusOr<std::unique_ptr<DiskCache>> Open(const std::string& dir, uint64_t cap_bytes);

  /// The bytes of blob `file_id`, or nullopt: absent, or failed its
  /// checksum (the file is then removed).
  std::optional<std::string> Get(const std::string& file_id);
  /// True when blob `file_id` is cached (it may still fail its check).
  bool Contains(const std::string& file_id);
  /// Caches `data` as blob `file_id`, evicting least recently used blobs
  /// over the cap. Does nothing for a blob already cached, an empty one,
  /// one over a quarter of the cap, or a file id with characters other than
  /// [0-9A-Za-z,_-]. Failures (disk full, ...) are logged, never returned:
  /// the blob just stays uncached.
  void Put(const std::string& file_id, std::string_view data);

  /// Disk space the cached blobs take (each file rounded up to 4 KiB
  /// blocks: what the cap limits), and how many there are.
  uint64_t bytes() const;
  uint64_t blobs() const;

 private:
  DiskCache(std::string dir, uint64_t cap_bytes);
  std::string PathOf(const std::string& file_id) const;
  /// Drops `file_id` from the index (and its file) if present. REQUIRES: mu_.
  void EraseLocked(const std::string& file_id);
  /// Evicts least recently used blobs until bytes_ <= cap_. REQUIRES: mu_.
  void EvictLocked();

  const std::string dir_;
  const uint64_t cap_;
  mutable std::mutex mu_;
  using Lru = std::list<std::pair<std::string, uint64_t>>;  // (file id, data bytes), newest first
  Lru lru_;                                                 // GUARDED_BY(mu_)
  std::unordered_map<std::string, Lru::iterator> index_;    // GUARDED_BY(mu_)
  uint64_t bytes_ = 0;                                      // GUARDED_BY(mu_)
  uint64_t tmp_seq_ = 0;                                    // GUARDED_BY(mu_)
};

}  // namespace needlefs
