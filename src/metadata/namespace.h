// The POSIX namespace: inodes, directory entries, attributes, symlinks, hard
// links, xattrs and file -> chunk maps, over the transactional KV interface
// (kv_store.h). Every operation that POSIX makes atomic is one transaction.
// NFS (nfsstat3), FUSE (errno) and S3 all go through this one implementation.
//
// Errors carry the POSIX errno as Status::posix_errno() (see Status::Posix):
// ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL, EACCES, EPERM,
// ENAMETOOLONG, EMLINK, ENODATA, ERANGE, E2BIG, ENOSPC; front ends map that
// errno and nothing else.
//
// Times are nanoseconds since the Unix epoch. Sizes are bytes.
//
// Thread-safety: all methods are thread-safe; concurrent conflicting
// operations are serialized by the KV store (and retried inside).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/types.h"
#include "metadata/kv_store.h"
#include "metadata/namespace_types.h"

namespace needlefs {

struct NamespaceOptions {
  /// Inode numbers reserved per KV transaction on the counter, so creates
  /// do not all conflict on one key. Default: 1024.
  uint64_t inode_batch = 1024;
  /// Called after each committed change, from the calling thread (must be
  /// thread-safe and quick). Default: none.
  std::function<void(const ChangeEvent&)> on_change;
  /// Largest inline chunk AddChunks takes (Chunk::data), bytes; 0: none
  /// (EINVAL). Default: 0.
  uint64_t max_inline_bytes = 0;
};

class Namespace {
 public:
  /// Opens the namespace in `store` (not owned; must outlive it), creating
  /// the root directory (mode 0755, uid/gid 0) when the store is empty.
  static StatusOr<std::unique_ptr<Namespace>> Open(KvStore* store,
                                                   const NamespaceOptions& options = {});
  ~Namespace();

  /// Looks `name` up in directory `parent` (needs search permission).
  /// Errors: ENOENT, ENOTDIR, EACCES, ENAMETOOLONG.
  StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent, const std::string& name);
  /// Errors: ENOENT (no such inode; also for a stale generation via
  /// GetAttrChecked).
  StatusOr<InodeAttr> GetAttr(InodeId ino);
  /// As GetAttr, and ENOENT when the inode's generation is not `generation`
  /// (a file handle to a removed and reused inode: NFS3ERR_STALE).
  StatusOr<InodeAttr> GetAttrChecked(InodeId ino, Generation generation);
  /// chmod/chown/truncate/utimes in one transaction. Sets ctime. Permission
  /// rules as Linux: only the owner (or root) may chmod (but a non-owner
  /// who may write a regular file may clear its S_ISUID/S_ISGID, as the
  /// kernel does before that user's write) or set times to
  /// explicit values; only root may change the owner; the owner may change
  /// the group to one of its groups; "now" times need write permission or
  /// ownership; size needs write permission. chmod by a non-root owner
  /// outside the file's group clears S_ISGID; chown clears S_ISUID/S_ISGID.
  /// Truncation moves dropped chunks to the garbage queue.
  /// Errors: ENOENT, EPERM, EACCES, EISDIR (size of a directory), EINVAL.
  /// `info` (optional): the inode before and after (ChangeInfo::inode).
  StatusOr<InodeAttr> SetAttr(const RequestContext& ctx, InodeId ino, const SetAttrRequest& req,
                              ChangeInfo* info = nullptr);

  /// Creates a regular file. With `exclusive`, an existing name is EEXIST;
  /// without it, the existing file is returned unchanged (O_CREAT) and
  /// *created is false. Errors: EEXIST, EISDIR (the name is a directory and
  /// !exclusive), ENOTDIR, EACCES, ENAMETOOLONG, EINVAL (bad name).
  /// `verifier` (with `exclusive`; RFC 1813 CREATE EXCLUSIVE): stored as the
  /// new file's atime (high 32 bits) and mtime (low 32 bits), as knfsd does,
  /// in the same transaction; an existing regular file carrying the same
  /// verifier is a retransmission and is returned (*created false) instead
  /// of EEXIST. The client sets real times with a SETATTR after.
  /// `info` (optional, every method below too): the parent directory
  /// before and after (ChangeInfo::dir).
  StatusOr<InodeAttr> Create(const RequestContext& ctx, InodeId parent, const std::string& name,
                             uint32_t mode, bool exclusive, bool* created = nullptr,
                             ChangeInfo* info = nullptr,
                             std::optional<uint64_t> verifier = std::nullopt);
  /// Errors: EEXIST, ENOTDIR, EACCES, ENAMETOOLONG, EINVAL, EMLINK.
  StatusOr<InodeAttr> Mkdir(const RequestContext& ctx, InodeId parent, const std::string& name,
                            uint32_t mode, ChangeInfo* info = nullptr);
  /// A FIFO, socket, or character/block device (`rdev`). Errors: as Create,
  /// and EINVAL for kRegular/kDirectory/kSymlink.
  StatusOr<InodeAttr> Mknod(const RequestContext& ctx, InodeId parent, const std::string& name,
                            FileType type, uint32_t mode, uint64_t rdev,
                            ChangeInfo* info = nullptr);
  /// Errors: as Create, and ENAMETOOLONG for a target over kMaxSymlinkBytes.
  StatusOr<InodeAttr> Symlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                              const std::string& target, ChangeInfo* info = nullptr);
  /// Errors: ENOENT, EINVAL (not a symlink).
  StatusOr<std::string> Readlink(InodeId ino);
  /// A new name for `ino` (not a directory). Errors: EPERM (directory),
  /// EEXIST, ENOENT, ENOTDIR, EACCES, EMLINK.
  StatusOr<InodeAttr> Link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                           const std::string& new_name, ChangeInfo* info = nullptr);
  /// Removes a non-directory entry. The inode goes when its last link goes
  /// (its chunks to the garbage queue) unless a session holds it open (see
  /// OpenFile): then it lives on with nlink 0 until ReleaseFile. Errors: ENOENT, EISDIR, ENOTDIR,
  /// EACCES, EPERM (sticky dir).
  Status Unlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                ChangeInfo* info = nullptr);
  /// Errors: ENOENT, ENOTDIR, ENOTEMPTY, EACCES, EPERM (sticky), EINVAL
  /// (name "."), EBUSY (root).
  Status Rmdir(const RequestContext& ctx, InodeId parent, const std::string& name,
               ChangeInfo* info = nullptr);
  /// rename(2)/renameat2(2): replaces a file or an empty directory; same
  /// inode is a no-op; nlink and mtime/ctime of both parents updated.
  /// Errors: ENOENT, EEXIST (NOREPLACE), ENOTDIR, EISDIR, ENOTEMPTY, EINVAL
  /// (a directory into its own subtree, both flags, "." / ".."), EACCES,
  /// EPERM (sticky), EBUSY. `info`: both directories (ChangeInfo::dir and
  /// to_dir).
  Status Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                InodeId new_parent, const std::string& new_name, uint32_t flags = 0,
                ChangeInfo* info = nullptr);

  /// Up to `max_entries` entries of directory `dir` whose cookie is greater
  /// than `cookie` (0 = from the start), in cookie order. Cookies are stable
  /// per entry: a listing continued after concurrent inserts and deletes
  /// never repeats or skips an entry that existed throughout. Does not
  /// return "." or "..". Errors: ENOENT, ENOTDIR, EACCES (needs read).
  StatusOr<ReadDirResult> ReadDir(const RequestContext& ctx, InodeId dir, uint64_t cookie,
                                  size_t max_entries, bool plus);

  /// access(2): `mask` of R_OK/W_OK/X_OK (4/2/1). Errors: EACCES, ENOENT.
  Status Access(const RequestContext& ctx, InodeId ino, int mask);
  StatusOr<StatFs> GetStatFs();

  /// Extended attributes. Names must have a namespace prefix ("user.",
  /// "trusted.", "security.", "system."). Errors: ENODATA (absent),
  /// EEXIST / ENODATA for kXattrCreate / kXattrReplace, ERANGE (name too
  /// long), E2BIG (value too large), EPERM/EACCES, EOPNOTSUPP (no prefix).
  Status SetXattr(const RequestContext& ctx, InodeId ino, const std::string& name,
                  const std::string& value, int flags);
  StatusOr<std::string> GetXattr(const RequestContext& ctx, InodeId ino, const std::string& name);
  StatusOr<std::vector<std::string>> ListXattr(const RequestContext& ctx, InodeId ino);
  Status RemoveXattr(const RequestContext& ctx, InodeId ino, const std::string& name);

  /// Appends chunks written to a regular file (newer chunks win where they
  /// overlap older ones), raises the size to at least `min_size`, sets
  /// mtime/ctime. `sync` as RequestContext::sync. Errors: ENOENT, EISDIR,
  /// EINVAL (a chunk of size 0 or without a file id, FileId{}; an inline
  /// chunk over max_inline_bytes, or with a file id or a blob offset; a
  /// special file). `attrs` (with `attrs_ctx`, its caller): attribute
  /// changes (no size) applied after the chunks in the same transaction,
  /// as SetAttr would (its errors, and then nothing is committed): a
  /// client's chmod/chown/utimes of a file it created and still holds open,
  /// sent with the file's commit.
  StatusOr<InodeAttr> AddChunks(InodeId ino, const std::vector<Chunk>& chunks, uint64_t min_size,
                                bool sync = true, const SetAttrRequest* attrs = nullptr,
                                const RequestContext* attrs_ctx = nullptr);
  /// Makes regular file `target` (empty; the caller may write it) the
  /// concatenation of `parts`, regular files of one link each named in
  /// directory `parts_dir`, without copying data: each part's visible
  /// chunks move to `target`, shifted by the sizes of the parts before it,
  /// and the part goes (unlink rules) without its blobs going to the
  /// garbage queue. One transaction: S3 CompleteMultipartUpload.
  /// `info`: parts_dir before and after (ChangeInfo::dir). Errors: ENOENT,
  /// EINVAL (no parts, a name twice, the target among them, not a regular
  /// file, target not empty), EISDIR, EMLINK (a part with other links),
  /// EBUSY (a part held open), EACCES, EPERM (sticky).
  StatusOr<InodeAttr> Compose(const RequestContext& ctx, InodeId target, InodeId parts_dir,
                              const std::vector<std::string>& parts, ChangeInfo* info = nullptr);
  /// The visible pieces of [offset, offset+length) clipped to the file size:
  /// each result chunk says which blob bytes back which file bytes; bytes
  /// that no chunk covers (holes) are absent and read as zeros.
  StatusOr<std::vector<Chunk>> ReadChunks(InodeId ino, uint64_t offset, uint64_t length);

  /// Makes every change committed so far durable (the WAL fsynced), also
  /// those made with RequestContext::sync false: what fsync(2) and
  /// fsyncdir on a front end end with. Errors: IOError.
  Status Sync();

  /// Client sessions (one per FUSE mount or gateway process) keep files
  /// open across unlink: POSIX lets an unlinked file be read and written
  /// until the last descriptor closes. A session lives `lease_ms` past its
  /// last renewal; ExpireSessions ends the ones a crashed client left.
  /// Returns the new session id.
  StatusOr<uint64_t> OpenSession(const std::string& client, int64_t lease_ms);
  /// Extends the lease. Errors: kNotFound (expired or unknown: the client
  /// must open a new session and reopen its files).
  Status RenewSession(uint64_t session, int64_t lease_ms);
  /// Ends a session and releases every file it holds open.
  Status CloseSession(uint64_t session);
  /// Records that `session` holds `ino` open (counted once per session).
  /// Errors: ENOENT (no such inode), kNotFound (unknown session).
  Status OpenFile(uint64_t session, InodeId ino);
  /// Releases `ino` for `session`; an unlinked file whose last holder this
  /// was goes now (its chunks to the garbage queue).
  Status ReleaseFile(uint64_t session, InodeId ino);
  /// Ends every session whose lease ended before `now_ns`; returns how many.
  StatusOr<size_t> ExpireSessions(int64_t now_ns);

  /// Blob file ids whose data is no longer referenced (deleted or truncated
  /// files), oldest first, at most `max`, each with its queue sequence.
  StatusOr<std::vector<std::pair<uint64_t, std::string>>> PeekGarbage(size_t max);
  /// Removes queue entries up to and including `seq` (their blobs are gone).
  Status AckGarbage(uint64_t seq);

 private:
  class Impl;
  explicit Namespace(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
