// Private to src/metadata: Namespace::Impl and the per-transaction working
// set the operations share. The operations live in namespace.cc (attributes,
// create family), namespace_remove.cc (unlink, rmdir, rename) and
// namespace_data.cc (readdir, xattrs, chunks, garbage, statfs).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "metadata/internal/keys.h"
#include "metadata/kv_store.h"
#include "metadata/namespace.h"

namespace needlefs {

/// Current wall-clock time in ns since the epoch.
int64_t NowNs();

/// Checks a name for a new or looked-up entry: EINVAL for "", '/' or NUL;
/// ENAMETOOLONG past kMaxNameBytes.
Status CheckName(const std::string& name);
/// The commit settings a request asks for (RequestContext::sync).
inline TxnOptions TxnFor(const RequestContext& ctx) { return TxnOptions{ctx.sync}; }

class BatchAllocator;

/// Cuts regular file `rec`'s chunks to `new_size` bytes: chunks wholly past
/// it are removed (their blobs queued as garbage), one straddling it is
/// clipped, so bytes past the size read as zeros after a later extension.
Status TruncateChunks(KvTransaction& t, meta_keys::InodeRecord* rec, uint64_t new_size,
                      BatchAllocator* garbage_seq);

/// Hands out numbers from a persisted counter in batches (one short
/// transaction per batch), so allocations do not all conflict on one key.
/// Thread-safe.
class BatchAllocator {
 public:
  BatchAllocator(KvStore* store, std::string key, uint64_t first, uint64_t batch)
      : store_(store), key_(std::move(key)), first_(first), batch_(batch) {}
  StatusOr<uint64_t> Next();
  /// Returns an unused number for reuse by a later Next().
  void GiveBack(uint64_t n);

 private:
  KvStore* store_;
  const std::string key_;
  const uint64_t first_;
  const uint64_t batch_;
  std::mutex mu_;
  uint64_t next_ = 0;            // GUARDED_BY(mu_)
  uint64_t end_ = 0;             // GUARDED_BY(mu_)
  std::vector<uint64_t> spare_;  // GUARDED_BY(mu_)
};

/// The inodes one transaction reads and changes, written back by Flush().
/// Every inode is read with GetForUpdate: operations that touch the same
/// inode conflict (a create in a directory and an rmdir of it, two renames).
class NsTxn {
 public:
  explicit NsTxn(KvTransaction& txn) : txn_(txn) {}
  KvTransaction& kv() { return txn_; }

  /// The inode, locked for update. Errors: ENOENT, kAborted.
  StatusOr<meta_keys::InodeRecord*> Inode(InodeId ino);
  /// The inode, requiring a directory the caller may search (x) and, with
  /// `write`, change (w). Errors: ENOENT, ENOTDIR, EACCES.
  StatusOr<meta_keys::InodeRecord*> Dir(const RequestContext& ctx, InodeId ino, bool write);
  /// The entry `name` in `parent`, locked. nullopt when absent.
  StatusOr<std::optional<meta_keys::DentryValue>> Entry(InodeId parent, const std::string& name);
  /// Adds entry `name` -> `child` in `dir` (new cookie, size, times).
  Status AddEntry(meta_keys::InodeRecord* dir, const std::string& name, InodeId child,
                  FileType type, int64_t now);
  /// Removes entry `name` of `dir` (size, times).
  Status RemoveEntry(meta_keys::InodeRecord* dir, const std::string& name,
                     const meta_keys::DentryValue& d, int64_t now);
  /// Drops one link of `rec`; at zero the inode, its xattrs and its chunks
  /// go (chunks to the garbage queue), unless a session holds it open:
  /// then it stays with nlink 0, marked unlinked, until released.
  Status DropLink(meta_keys::InodeRecord* rec, int64_t now, BatchAllocator* garbage_seq);
  /// Removes inode `rec` with its xattrs and chunks (their blobs to the
  /// garbage queue, but for those named in `keep`: Compose moved them; a
  /// chunk record that does not decode names no blob and just goes).
  Status Reap(meta_keys::InodeRecord* rec, BatchAllocator* garbage_seq,
              const std::set<FileId>* keep = nullptr);
  /// Creates a new inode record (written by Flush).
  meta_keys::InodeRecord* NewInode(const meta_keys::InodeRecord& rec);
  /// Whether the directory has any entry.
  StatusOr<bool> DirEmpty(InodeId dir);
  /// Adds (inodes, bytes) deltas to one stat shard.
  void AddStats(int64_t inodes, int64_t bytes) {
    stat_inodes_ += inodes;
    stat_bytes_ += bytes;
  }
  /// Writes every changed inode and the stat delta.
  Status Flush();

 private:
  KvTransaction& txn_;
  std::map<uint64_t, meta_keys::InodeRecord> inodes_;
  std::set<uint64_t> deleted_;
  int64_t stat_inodes_ = 0;
  int64_t stat_bytes_ = 0;
};

/// SetAttr's changes applied to inode `r` inside a transaction, with its
/// permission rules, setting ctime to `now` (SetAttr, and the attributes a
/// client sends with its AddChunks). Errors: as Namespace::SetAttr.
Status ApplySetAttr(const RequestContext& ctx, KvTransaction& t, NsTxn& tx,
                    meta_keys::InodeRecord* r, const SetAttrRequest& req, int64_t now,
                    BatchAllocator* garbage_seq);

class Namespace::Impl {
 public:
  Impl(KvStore* store, const NamespaceOptions& options)
      : store_(store),
        on_change_(options.on_change),
        max_inline_bytes_(options.max_inline_bytes),
        inodes_(store, meta_keys::kNextInode, 2, options.inode_batch),
        garbage_seq_(store, meta_keys::kNextGarbage, 1, 1024),
        sessions_(store, meta_keys::kNextSession, 1, 64) {}

  KvStore* store_;
  std::function<void(const ChangeEvent&)> on_change_;
  const uint64_t max_inline_bytes_;
  BatchAllocator inodes_;
  BatchAllocator garbage_seq_;
  BatchAllocator sessions_;
  std::mutex rename_mu_;  // serializes cross-directory directory renames here

  /// Reports committed changes to the observer, if any.
  void NotifyAttr(InodeId ino) {
    if (on_change_) on_change_(ChangeEvent{ChangeEvent::Kind::kAttr, ino, InodeId(), ""});
  }
  void NotifyEntry(InodeId parent, const std::string& name, InodeId ino) {
    if (on_change_) on_change_(ChangeEvent{ChangeEvent::Kind::kEntry, ino, parent, name});
  }

  /// Creates an inode of `type` named `name` in `parent`; shared by Create,
  /// Mkdir, Mknod and Symlink. `exclusive` = false returns an existing
  /// regular file (O_CREAT without O_EXCL).
  StatusOr<InodeAttr> MakeNode(const RequestContext& ctx, InodeId parent, const std::string& name,
                               FileType type, uint32_t mode, uint64_t rdev,
                               const std::string& target, bool exclusive, bool* created,
                               ChangeInfo* info = nullptr,
                               std::optional<uint64_t> verifier = std::nullopt);
  Status Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                InodeId new_parent, const std::string& new_name, uint32_t flags, ChangeInfo* info);
  /// Unlink (`directory` false) or rmdir (true) of `name` in `parent`,
  /// after the caller checked the name.
  Status RemoveName(const RequestContext& ctx, InodeId parent, const std::string& name,
                    bool directory, ChangeInfo* info);
  /// Releases every file `session` holds and deletes the session.
  Status EndSession(uint64_t session);
};

}  // namespace needlefs
