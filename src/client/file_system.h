// The protocol-neutral file-system layer every front end stands on (FUSE
// today, NFSv3 and S3 next): the role Ganesha's FSAL + MDCACHE play for its
// protocols. A front end translates its protocol's request into one call
// here and the result back; every rule of permissions, consistency and
// caching lives here (or in the namespace behind MetaClient), once.
//
// What it owns:
//  - wiring: the meta client (namespace), the blob client (data), the file
//    client (buffered chunked I/O), the directory cache, a meta session with
//    a renewed lease, and meta's change stream, each with its thread;
//  - a namespace subdirectory as the root (root()), and path resolution for
//    path-based front ends (ResolvePath: symlinks are never followed, "."
//    and ".." are refused, so a path cannot leave the root);
//  - permissions: every call takes the caller's RequestContext (uid, gid,
//    supplementary groups); namespace calls are checked by meta, opens,
//    reads and writes here (MayAccess), with the exceptions a local file
//    system makes (ftruncate through a descriptor open for writing; exec
//    needs x, not r) and the one NFS servers make (a file's owner may read
//    and write it without an open whatever its mode);
//  - the open-file table: explicit opens (FUSE; Open/Release with a handle)
//    and implicit opens for stateless callers (NFS READ/WRITE of an inode
//    nobody opened: it is opened on first use and released, flushing what
//    it buffered, after `implicit_open_idle_ns` without use); files unlinked
//    while open are held by the session until their last release (POSIX);
//  - attributes that include data still buffered (the pending size), the
//    truncate ordering (flush, then meta's setattr, then drop buffered data
//    past the new size), close-to-open consistency (keep_cache), and cache
//    invalidation from the change stream, passed on to the front end's
//    Listener (FUSE tells the kernel about each inode and entry).
//
// Errors: errno-carrying statuses (Status::posix_errno()), meta's own
// unchanged (see metadata/namespace.h for which call returns which), plus
// EROFS (read-only layer), EBADF (unknown handle, or a handle not open for
// that access), EACCES/EPERM from the checks here, EIO for a failed upload
// or an unreachable part. ErrnoOf (file_client.h) maps any Status to one.
//
// Thread-safe: every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/file_client.h"
#include "common/status.h"
#include "common/types.h"
#include "metadata/namespace_types.h"

namespace needlefs {

class MetaClient;
class BlobClient;
class DirCache;

struct FileSystemOptions {
  std::string meta;    ///< meta's gRPC "host:port"
  std::string master;  ///< the master's HTTP "host:port"
  /// Namespace path served as root() (must be a directory). Default: "/".
  std::string subdir = "/";
  /// Names the meta session (who holds unlinked-but-open files), e.g.
  /// "fuse:/mnt/data" or "nfsd:host:2049".
  std::string client_name = "needlefs";
  /// Every modifying call fails with EROFS. Default: false.
  bool read_only = false;
  /// Namespace changes wait until they are durable on meta's disk, and
  /// Flush is an Fsync (FUSE -o sync; NFS, whose metadata changes must be
  /// stable, RFC 1813 section 3.3). Default: false (visible at once and
  /// surviving kill -9 of any one process; Fsync makes them crash-safe).
  bool sync = false;
  /// Answer Lookup from whole directory listings (client/dir_cache.h).
  bool dir_cache = true;
  /// How long a cached listing answers lookups, ns (the front end's entry
  /// timeout). Default: 1 s.
  int64_t entry_ttl_ns = 1'000'000'000;
  /// How long the attributes this client's own change of a file returned
  /// (a SetAttr, the commit of written data) answer GetAttr, ns, unless the
  /// change stream reports another change of it or this client renames,
  /// links or unlinks an entry; 0: GetAttr of a file always asks meta. FUSE
  /// sets its attribute timeout (the kernel keeps attributes that long
  /// itself, and OPEN still asks meta: close-to-open); NFS (whose GETATTR is
  /// the client's close-to-open check) and S3 keep 0. Needs
  /// follow_changes. Default: 0.
  int64_t file_attr_ttl_ns = 0;
  /// Follow meta's change stream to drop what others changed from the
  /// caches (and tell the Listener). Off only in tests of timeouts; off, no
  /// listing is cached. Default: true.
  bool follow_changes = true;
  /// Deadline of one meta call, ms. A slow meta (a stalled disk sync) makes
  /// a call wait, as a hard NFS mount does, rather than fail. Default: 60 s.
  int meta_timeout_ms = 60'000;
  /// An implicit open (Read/Write without a handle) ends after this long
  /// without use, ns: its buffered data is flushed. Default: 5 s.
  int64_t implicit_open_idle_ns = 5'000'000'000;
  /// Lease of the meta session, ms (renewed every third of it). Default: 60 s.
  int64_t session_lease_ms = 60'000;
  FileClientOptions file;
};

/// What the front end hears about changes made by other clients (from
/// meta's change stream), to drop its own caches (the kernel's, for FUSE).
/// Called from the change-stream thread; must not call back into the
/// FileSystem synchronously with a lock held that a FileSystem call takes.
class FileSystemListener {
 public:
  virtual ~FileSystemListener() = default;
  /// The attributes or data of `ino` changed.
  virtual void InodeChanged(InodeId ino) = 0;
  /// Entry `name` of directory `parent` (pointing to `ino`) was added or
  /// removed by another client.
  virtual void EntryChanged(InodeId parent, const std::string& name, InodeId ino) = 0;
  /// Events were missed (meta restarted, the stream fell behind): drop
  /// everything cached. (FUSE cannot drop all of the kernel's entries at
  /// once; they expire with their timeouts.)
  virtual void AllChanged() {}
};

/// An open file, as Open and Create return it.
struct OpenedFile {
  uint64_t handle = 0;  ///< pass to Read/Write/Flush/Fsync/Release/SetAttr
  InodeAttr attr;       ///< with the pending size
  /// Close-to-open: the file is unchanged since this client last opened
  /// it, so pages cached from then are still valid.
  bool keep_cache = false;
};

/// File-system statistics for statfs(2), NFS FSSTAT.
struct FsStat {
  uint64_t capacity_bytes = 0;  ///< what the cluster can hold
  uint64_t used_bytes = 0;      ///< sum of regular file sizes
  uint64_t inodes_used = 0;
  uint64_t inodes_free = 0;
};

/// How CreateFile treats a name that exists (RFC 1813 createmode3).
enum class CreateHow {
  kUnchecked,  ///< an existing regular file is returned (*created false)
  kGuarded,    ///< EEXIST
  kExclusive,  ///< EEXIST unless it carries the same verifier (a retransmission)
};

/// The opaque value that changes whenever buffered (unstable) writes could
/// have been lost: once per process start (NFS WRITE/COMMIT verf3).
using WriteVerifier = uint64_t;

class FileSystem {
 public:
  /// Connects to meta and the master, resolves `subdir`, opens a meta
  /// session, and starts the change stream (waits up to 5 s for it).
  /// `listener` (may be null; not owned, must outlive the FileSystem) hears
  /// about others' changes. Errors: kUnavailable (meta unreachable),
  /// kNotFound / kFailedPrecondition (subdir missing or not a directory).
  static StatusOr<std::unique_ptr<FileSystem>> Open(const FileSystemOptions& options,
                                                    FileSystemListener* listener = nullptr);
  /// Stops the threads, releases every open still here (flushing it: an
  /// implicit open's buffered data is committed; a front end has normally
  /// released its explicit ones), closes the session.
  ~FileSystem();
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  /// The inode served as the root (subdir).
  InodeId root() const;
  const FileSystemOptions& options() const;
  /// Changes at every process start (see WriteVerifier).
  WriteVerifier write_verifier() const;

  // ---- names (each checks the caller's permissions) ----

  /// Entry `name` of directory `parent`. Errors: ENAMETOOLONG (over 255
  /// bytes, before any cache), ENOENT, ENOTDIR, EACCES (no search
  /// permission on parent).
  StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent, const std::string& name);
  /// `path` ("a/b/c", relative to root(); leading and repeated "/" are
  /// ignored) resolved component by component with search permission
  /// checked on each directory. Policy: a symlink is never followed (one in
  /// the middle is ENOTDIR; a final one is returned as itself); "." and ".."
  /// components are EINVAL, so no path leaves the root; a trailing "/"
  /// after a non-directory is ENOTDIR. Errors: as Lookup,
  /// EINVAL, ENAMETOOLONG (path over 4096 bytes).
  StatusOr<InodeAttr> ResolvePath(const RequestContext& ctx, std::string_view path);
  /// Attributes with the pending size of data buffered here. A directory
  /// this client changed within the entry timeout is answered from the
  /// attributes meta returned with that change (no round trip), unless
  /// another client changed it since. Errors: ENOENT.
  StatusOr<InodeAttr> GetAttr(InodeId ino);
  /// As GetAttr, ENOENT when `ino` now has another generation (a stale NFS
  /// handle). REQUIRES: generation.value != 0.
  StatusOr<InodeAttr> GetAttrChecked(InodeId ino, Generation generation);
  // Every modifying call takes an optional ChangeInfo: the attributes of the
  // parent directory (or, for SetAttr, the inode) before and after the
  // change, read by meta in the change's own transaction (NFS wcc_data); set
  // also when the call fails with an errno.

  /// chmod/chown/truncate/utimes as Namespace::SetAttr, with buffered writes
  /// flushed first when the size or mtime changes and buffered data past a
  /// new size dropped after. `handle` (0 = none) is the open file the call
  /// came through: a size change through a handle open for writing needs no
  /// write permission (ftruncate). Errors: as Namespace::SetAttr (which also
  /// lets a writer clear S_ISUID/S_ISGID, the chmod the kernel makes before
  /// a non-owner's write), EROFS, EIO (the flush).
  StatusOr<InodeAttr> SetAttr(const RequestContext& ctx, InodeId ino, const SetAttrRequest& req,
                              uint64_t handle = 0, ChangeInfo* info = nullptr);
  /// Errors: ENOENT, EINVAL (not a symlink).
  StatusOr<std::string> Readlink(InodeId ino);

  /// A regular file, directory, special file or symlink named `name` in
  /// `parent`. Errors: as the Namespace methods, EROFS.
  StatusOr<InodeAttr> Mkdir(const RequestContext& ctx, InodeId parent, const std::string& name,
                            uint32_t mode, ChangeInfo* info = nullptr);
  /// type kRegular makes an empty file (exclusively: EEXIST if it exists).
  StatusOr<InodeAttr> Mknod(const RequestContext& ctx, InodeId parent, const std::string& name,
                            FileType type, uint32_t mode, uint64_t rdev,
                            ChangeInfo* info = nullptr);
  StatusOr<InodeAttr> Symlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                              const std::string& target, ChangeInfo* info = nullptr);
  StatusOr<InodeAttr> Link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                           const std::string& new_name, ChangeInfo* info = nullptr);
  /// Removes a non-directory; a file this client holds open lives on until
  /// its last Release. Errors: as Namespace::Unlink, EROFS.
  Status Unlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                ChangeInfo* info = nullptr);
  Status Rmdir(const RequestContext& ctx, InodeId parent, const std::string& name,
               ChangeInfo* info = nullptr);
  /// rename(2)/renameat2(2) (flags: RenameFlags). A replaced file this
  /// client holds open lives on until its last Release. `info`: dir is
  /// the source directory, to_dir the target's.
  Status Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                InodeId new_parent, const std::string& new_name, uint32_t flags = 0,
                ChangeInfo* info = nullptr);

  // ---- directories ----

  /// Checks that `ctx` may list directory `ino` (read permission).
  /// Errors: ENOENT, ENOTDIR, EACCES.
  StatusOr<InodeAttr> OpenDir(const RequestContext& ctx, InodeId ino);
  /// Entries after `cookie` (no "." or ".."), attributes with the pending
  /// size when `plus`. Errors: as Namespace::ReadDir.
  StatusOr<ReadDirResult> ReadDir(const RequestContext& ctx, InodeId dir, uint64_t cookie,
                                  size_t max_entries, bool plus);
  /// Makes every namespace change so far durable (fsyncdir).
  Status SyncNamespace();

  // ---- files ----

  /// Opens regular file `ino` with open(2) `flags` (O_ACCMODE, O_TRUNC):
  /// checks read/write permission (O_TRUNC needs write), truncates, sets up
  /// buffers. Errors: ENOENT, EISDIR, EACCES, EROFS (writing), EINVAL (not
  /// a regular file).
  StatusOr<OpenedFile> Open(const RequestContext& ctx, InodeId ino, int flags);
  /// Creates regular file `name` in `parent` and opens it with `flags`
  /// (O_EXCL: EEXIST if it exists; otherwise an existing file is opened,
  /// with the permission check and O_TRUNC of Open). `*created` (may be
  /// null) says whether the file is new. Errors: as Namespace::Create, Open.
  StatusOr<OpenedFile> Create(const RequestContext& ctx, InodeId parent, const std::string& name,
                              uint32_t mode, int flags, bool* created = nullptr);
  /// Creates regular file `name` without opening it (NFS CREATE, RFC 1813
  /// section 3.3.8). kExclusive stores `verifier` with the new inode, in
  /// the same meta transaction (in its atime and mtime, as knfsd does: the
  /// client sets real times with a SETATTR after), so a retried call of the
  /// same name and verifier finds it and succeeds (*created false), and a
  /// different verifier gets EEXIST. Errors: as Namespace::Create, EROFS.
  StatusOr<InodeAttr> CreateFile(const RequestContext& ctx, InodeId parent, const std::string& name,
                                 uint32_t mode, CreateHow how, uint64_t verifier = 0,
                                 bool* created = nullptr, ChangeInfo* info = nullptr);
  /// Drops one Open/Create: flushes what it buffered (errors are logged,
  /// Flush reports them) and, at the last release, frees buffers and lets
  /// an unlinked file go.
  void Release(uint64_t handle);

  /// Reads up to `length` bytes at `offset` of regular file `ino` through
  /// `handle` (0: a stateless read, checked for read permission now; the
  /// owner passes whatever the mode).
  /// Shorter only at end of file. Errors: EBADF (handle not open for
  /// reading), EACCES, EISDIR, ENOENT, EIO.
  StatusOr<std::string> Read(const RequestContext& ctx, InodeId ino, uint64_t offset,
                             uint64_t length, uint64_t handle = 0);
  /// Writes `data` at `offset` (buffered) through `handle` (0: a stateless
  /// write, checked for write permission now, the owner passing whatever
  /// the mode; the inode is opened implicitly). Errors: EBADF, EACCES, EROFS, EFBIG, EISDIR,
  /// ENOENT.
  Status Write(const RequestContext& ctx, InodeId ino, uint64_t offset, std::string_view data,
               uint64_t handle = 0);
  /// Commits what is buffered for `ino` (close(2); an Fsync with
  /// options.sync). Errors: EIO, meta's errno.
  Status Flush(InodeId ino);
  /// Commits and makes durable on every replica and meta (fsync(2), NFS
  /// COMMIT). Errors: EIO.
  Status Fsync(InodeId ino);
  /// Extends regular file `ino` to at least `offset + length` bytes
  /// (fallocate mode 0; holes read as zeros). Errors: as SetAttr, ENODEV
  /// (not a regular file), EINVAL.
  Status Allocate(const RequestContext& ctx, InodeId ino, uint64_t offset, uint64_t length,
                  uint64_t handle = 0);

  /// Streams the whole regular file `ino` from `offset` to `sink` in pieces
  /// of at most one chunk (memory stays bounded whatever the size); stops
  /// at the first error `sink` returns. Errors: as Read, `sink`'s.
  Status ReadTo(const RequestContext& ctx, InodeId ino, uint64_t offset,
                const std::function<Status(std::string_view)>& sink);
  /// Replaces the contents of regular file `ino` with what `source` yields
  /// (it fills `*piece` and returns OK, an empty piece at the end), then
  /// commits; memory stays bounded by the write buffer. Errors: as Write,
  /// Flush, `source`'s (then the file holds what was written so far).
  Status WriteFrom(const RequestContext& ctx, InodeId ino,
                   const std::function<Status(std::string* piece)>& source);

  /// Makes regular file `target` (empty) the concatenation of `parts`,
  /// files in directory `parts_dir`, without copying data
  /// (Namespace::Compose); the parts are gone after. What this client
  /// buffered for them is flushed first. S3 CompleteMultipartUpload.
  /// Errors: as Namespace::Compose, EROFS, EIO (a flush).
  StatusOr<InodeAttr> Compose(const RequestContext& ctx, InodeId target, InodeId parts_dir,
                              const std::vector<std::string>& parts, ChangeInfo* info = nullptr);
  /// Gives `parent`/`name` new contents from `source` (as WriteFrom) in one
  /// step: the data goes to a new file under a temporary name in `parent`
  /// (".needlefs-tmp-" and 16 hex digits; listed while it is written, as
  /// rsync's temporary files are), which is then renamed over `name`. A
  /// reader sees the old file or the new one, never a mix or a short file
  /// (S3 PutObject over an existing key); one of this client that has the
  /// old file open keeps reading it. On failure the temporary file is
  /// removed and `name` is unchanged. `mode`: the new file's. `info`: as
  /// Rename's. `rename_flags` kRenameNoReplace: only when `name` does not
  /// exist at the rename (EEXIST otherwise; S3's If-None-Match: *, where
  /// of racing writers exactly one wins). `before_rename` (may be empty)
  /// runs on the new file's inode once its data is committed and before it
  /// shows under `name` (S3 sets its metadata there); its error fails the
  /// call. Errors: as Create, Write, Flush and Rename (EISDIR: `name` is a
  /// directory), `source`'s, `before_rename`'s.
  StatusOr<InodeAttr> ReplaceFile(const RequestContext& ctx, InodeId parent,
                                  const std::string& name, uint32_t mode,
                                  const std::function<Status(std::string* piece)>& source,
                                  ChangeInfo* info = nullptr, uint32_t rename_flags = 0,
                                  const std::function<Status(InodeId)>& before_rename = nullptr);

  // ---- the rest ----

  /// access(2) mask (R_OK|W_OK|X_OK); W_OK on a read-only layer is EROFS.
  Status Access(const RequestContext& ctx, InodeId ino, int mask);
  StatusOr<FsStat> StatFs();
  /// Extended attributes (as Namespace's). POSIX ACL names are EOPNOTSUPP
  /// at once; the absence of security.capability (asked before every
  /// write) is cached until the inode changes.
  Status SetXattr(const RequestContext& ctx, InodeId ino, const std::string& name,
                  const std::string& value, int flags);
  StatusOr<std::string> GetXattr(const RequestContext& ctx, InodeId ino, const std::string& name);
  StatusOr<std::vector<std::string>> ListXattr(const RequestContext& ctx, InodeId ino);
  Status RemoveXattr(const RequestContext& ctx, InodeId ino, const std::string& name);

  /// Implicit opens now, counting ended ones until their data is flushed
  /// (for tests and metrics).
  size_t implicit_opens() const;
  /// Ends implicit opens idle for at least `idle_ns` now (flushing them);
  /// returns how many. The layer calls it itself once a second.
  size_t ExpireImplicitOpens(int64_t idle_ns);

 private:
  class Impl;
  explicit FileSystem(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
