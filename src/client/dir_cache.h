// A front end's cache of whole small directories, for LOOKUP. A cold `stat`
// or `open` of each file of a directory costs one meta round trip per name;
// once a directory has missed twice within the TTL, DirCache lists it whole
// (one GetAttr plus ReadDir-plus pages) and answers the next lookups in it,
// positive and negative, from memory, with the attributes the listing
// brought.
//
// Coherence: a listing lives at most `ttl_ns` (the front end's entry
// timeout, as the kernel's own dentry cache). Changes this client makes are
// applied (Added, Removed) so the listing stays complete; changes by others
// arrive on meta's change stream and drop what they touch (InvalidateDir,
// InvalidateInode, Clear). A directory that others keep changing is not
// listed again within its TTL, so a busy shared directory falls back to one
// Lookup a name instead of being listed over and over. Search permission is
// checked against the directory's cached mode bits with the caller's
// identity (MayAccess), as meta would.
//
// Memory: at most `max_entries` cached entries over all directories (whole
// directories are evicted, least recently used first) and as many cached
// attributes; directories larger than `max_dir_entries` are not listed, and a
// listing that grows past it is dropped.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "client/meta_client.h"
#include "common/status.h"
#include "metadata/namespace_types.h"

namespace needlefs {

struct DirCacheOptions {
  /// How long a listing answers lookups, ns. 0 turns the cache off.
  /// Default: 1 s.
  int64_t ttl_ns = 1'000'000'000;
  /// Directories with more entries are not listed. Default: 12000.
  uint64_t max_dir_entries = 12000;
  /// Entries cached over all directories (an entry with its attributes
  /// takes about 200 bytes, more while a listing is fetched). Default: 16384.
  uint64_t max_entries = 16384;
};

class DirCache {
 public:
  /// `meta` is not owned and must outlive the cache.
  DirCache(MetaClient* meta, DirCacheOptions options = {});
  ~DirCache();
  DirCache(const DirCache&) = delete;
  DirCache& operator=(const DirCache&) = delete;

  /// The attributes of entry `name` of directory `parent` as `ctx` may see
  /// them: MetaClient::Lookup, answered from a listing when one is cached.
  /// Errors: as MetaClient::Lookup (ENOENT, ENOTDIR, EACCES, ...).
  StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent, const std::string& name);

  /// This client made `parent`/`name` point to `attr.ino` (create, mkdir,
  /// link, the target of a rename).
  void Added(InodeId parent, const std::string& name, const InodeAttr& attr);
  /// This client removed `parent`/`name` (unlink, rmdir, the source of a
  /// rename). The inode's cached attributes are dropped too (its nlink and
  /// ctime changed).
  void Removed(InodeId parent, const std::string& name);
  /// This client renamed `parent`/`name` to `new_parent`/`new_name`
  /// (`exchange`: RENAME_EXCHANGE swapped the two).
  void Renamed(InodeId parent, const std::string& name, InodeId new_parent,
               const std::string& new_name, bool exchange);
  /// Someone changed the entries of `dir`: its listing is dropped, and it is
  /// not listed again within the TTL.
  void InvalidateDir(InodeId dir);
  /// Someone changed inode `ino`'s attributes (or its directory entries, when
  /// it is a directory): cached attributes of it are dropped.
  void InvalidateInode(InodeId ino);
  /// Drops everything (change stream reset).
  void Clear();

  /// Cached entries now (for tests and metrics).
  uint64_t entries() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
