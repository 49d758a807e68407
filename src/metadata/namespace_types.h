// The namespace's value types (InodeAttr, DirEntry, Chunk, ChangeEvent, ...),
// the caller's identity (RequestContext) and the access rule (MayAccess):
// what the namespace, its gRPC service and every front end's client share,
// without the namespace itself or its KV store (metadata/namespace.h).
//
// Times are nanoseconds since the Unix epoch. Sizes are bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/file_id.h"
#include "common/types.h"

namespace needlefs {

/// Inode types. Persisted values: never renumber.
enum class FileType : uint8_t {
  kRegular = 1,
  kDirectory = 2,
  kSymlink = 3,
  kFifo = 4,
  kSocket = 5,
  kCharDevice = 6,
  kBlockDevice = 7,
};

/// The root directory's inode number.
inline constexpr InodeId kRootInode{1};
/// Longest name of a directory entry, bytes (as Linux NAME_MAX).
inline constexpr size_t kMaxNameBytes = 255;
/// Xattr limits as Linux: name up to 255 bytes, value up to 64 KiB.
inline constexpr size_t kMaxXattrNameBytes = 255;
inline constexpr size_t kMaxXattrValueBytes = 65536;
/// Longest symlink target, bytes (as Linux PATH_MAX).
inline constexpr size_t kMaxSymlinkBytes = 4096;
/// First cookie of a real directory entry: 0 starts a listing, 1 and 2 are
/// left for the front ends' "." and "..".
inline constexpr uint64_t kFirstEntryCookie = 3;

struct InodeAttr {
  InodeId ino;
  Generation generation;  ///< changes when an inode number is reused
  FileType type = FileType::kRegular;
  uint32_t mode = 0;  ///< permission bits only (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;  ///< bytes; symlink: target length; directory: entries
  uint32_t nlink = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t rdev = 0;  ///< device number for kCharDevice / kBlockDevice

  /// st_mode: type bits (S_IFREG, ...) | permission bits.
  uint32_t StMode() const;
  bool operator==(const InodeAttr&) const = default;
};

/// The caller's identity, checked against mode bits (and the sticky bit).
/// uid 0 passes every permission check but the execute check of files
/// without any x bit, as on Linux.
struct RequestContext {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  ///< supplementary groups
  /// Whether the reply waits until the change is durable on meta's disk
  /// (WAL fsynced; survives a machine crash). false: the change is
  /// committed and visible, and written to the WAL, so it survives kill -9
  /// of meta, but a machine crash before the next synced change or Sync()
  /// may lose it -- local-disk semantics, for front ends whose callers ask
  /// for durability with fsync (FUSE). Default: true (NFSv3 requires stable
  /// metadata changes, RFC 1813 section 3.3).
  bool sync = true;
  /// The calling process where the front end knows it (FUSE), else 0. Not
  /// sent to meta: the file-system layer defers attribute changes of a new
  /// file only for the process that created it.
  uint32_t pid = 0;
  /// The root context, for internal use and tests.
  static RequestContext Root() { return {}; }
  bool InGroup(uint32_t g) const;
};

/// The permission rule every operation applies: may `ctx` access `attr`
/// for `mask` (R_OK 4 | W_OK 2 | X_OK 1) by its mode bits? Root passes
/// everything but executing a file with no x bit, as on Linux. Front ends
/// use it to check an open against attributes they already hold.
bool MayAccess(const RequestContext& ctx, const InodeAttr& attr, int mask);

/// What SetAttr changes; unset fields stay as they are.
struct SetAttrRequest {
  std::optional<uint32_t> mode;  ///< permission bits
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;  ///< truncate or extend (regular files)
  std::optional<int64_t> atime_ns;
  std::optional<int64_t> mtime_ns;
  bool atime_now = false;  ///< set atime to the server's clock
  bool mtime_now = false;  ///< set mtime to the server's clock
};

struct DirEntry {
  std::string name;
  InodeId ino;
  FileType type = FileType::kRegular;
  uint64_t cookie = 0;            ///< stable: pass it back to continue after this entry
  std::optional<InodeAttr> attr;  ///< filled by ReadDir with plus = true
};

struct ReadDirResult {
  std::vector<DirEntry> entries;
  bool eof = false;  ///< no entries after the last one returned
};

/// A piece of a regular file's data: `size` bytes at file offset `offset`
/// stored in blob `file_id` (a needle) starting at `blob_offset`. Stored and
/// sent as the id's string form (FileId::ToString). An inline chunk carries
/// its bytes itself (`data`, exactly `size` of them; no file id, blob_offset
/// 0): the data of a small file kept with its inode in meta
/// (NamespaceOptions::max_inline_bytes), one round trip to write or read.
struct Chunk {
  FileId file_id;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t blob_offset = 0;
  std::string data = {};  ///< inline bytes; empty for a chunk in a blob
  bool is_inline() const { return !data.empty(); }
};

struct StatFs {
  uint64_t inodes = 0;      ///< inodes in use
  uint64_t bytes_used = 0;  ///< sum of regular file sizes
};

/// Flags of Rename (as renameat2(2)).
enum RenameFlags : uint32_t {
  kRenameNoReplace = 1,  ///< fail with EEXIST when the target exists
  kRenameExchange = 2,   ///< atomically swap source and target (both exist)
};

/// Flags of SetXattr (as setxattr(2)).
enum XattrFlags : int {
  kXattrCreate = 1,   ///< fail with EEXIST when it exists
  kXattrReplace = 2,  ///< fail with ENODATA when it does not exist
};

/// The attributes of one inode around a change, both read in the change's
/// own transaction: NFS wcc_data (RFC 1813 section 2.6) without another
/// round trip. Unset when the call failed before reading the inode.
struct WccAttr {
  std::optional<InodeAttr> before;
  std::optional<InodeAttr> after;
};

/// What a modifying namespace call reports beside its result when the
/// caller passes a ChangeInfo: `dir` is the parent directory (Create,
/// Mkdir, Mknod, Symlink, Link, Unlink, Rmdir; Rename: the source
/// directory), `to_dir` Rename's target directory (the same as `dir`
/// within one directory), `inode` SetAttr's inode.
struct ChangeInfo {
  WccAttr dir;
  WccAttr to_dir;
  WccAttr inode;
};

/// One committed change, for caches to invalidate (meta's change stream).
struct ChangeEvent {
  enum class Kind : uint8_t {
    kAttr = 1,   ///< attributes of `ino` changed (setattr, chunks, xattrs)
    kEntry = 2,  ///< entry `name` of directory `parent` added or removed
  };
  Kind kind = Kind::kAttr;
  InodeId ino;     ///< the inode affected (kEntry: the entry's inode)
  InodeId parent;  ///< kEntry: the directory
  std::string name;
};

}  // namespace needlefs
