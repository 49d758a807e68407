// Namespace: open, the per-transaction working set, attributes and the
// create family (create, mkdir, mknod, symlink, link).
#include "metadata/namespace.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>

#include "metadata/internal/namespace_impl.h"

namespace needlefs {

using meta_keys::DentryValue;
using meta_keys::InodeRecord;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status CheckName(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    return Status::Posix(EINVAL, "invalid name");
  }
  if (name.size() > kMaxNameBytes) return Status::Posix(ENAMETOOLONG, "name too long");
  return Status::OK();
}

StatusOr<uint64_t> BatchAllocator::Next() {
  std::lock_guard<std::mutex> l(mu_);
  if (!spare_.empty()) {
    uint64_t n = spare_.back();
    spare_.pop_back();
    return n;
  }
  if (next_ == end_) {
    uint64_t start = 0;
    Status s = RunTransaction(*store_, [&](KvTransaction& t) -> Status {
      NEEDLEFS_ASSIGN_OR_RETURN(auto v, t.GetForUpdate(key_));
      start = v ? meta_keys::ReadBE64(*v) : first_;
      std::string nv;
      meta_keys::AppendBE64(&nv, start + batch_);
      return t.Put(key_, nv);
    });
    NEEDLEFS_RETURN_IF_ERROR(s);
    next_ = start;
    end_ = start + batch_;
  }
  return next_++;
}

void BatchAllocator::GiveBack(uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  spare_.push_back(n);
}

// ---- NsTxn ----

StatusOr<InodeRecord*> NsTxn::Inode(InodeId ino) {
  auto it = inodes_.find(ino.value);
  if (it != inodes_.end()) {
    if (deleted_.count(ino.value)) return Status::Posix(ENOENT, "inode removed");
    return &it->second;
  }
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, txn_.GetForUpdate(meta_keys::Inode(ino)));
  if (!v) return Status::Posix(ENOENT, "no inode " + std::to_string(ino.value));
  NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord rec, InodeRecord::Decode(*v));
  rec.attr.ino = ino;
  return &inodes_.emplace(ino.value, std::move(rec)).first->second;
}

StatusOr<InodeRecord*> NsTxn::Dir(const RequestContext& ctx, InodeId ino, bool write) {
  NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * d, Inode(ino));
  if (d->attr.type != FileType::kDirectory) return Status::Posix(ENOTDIR, "not a directory");
  if (!MayAccess(ctx, d->attr, write ? 3 : 1)) return Status::Posix(EACCES, "directory access");
  return d;
}

StatusOr<std::optional<DentryValue>> NsTxn::Entry(InodeId parent, const std::string& name) {
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, txn_.GetForUpdate(meta_keys::Dentry(parent, name)));
  if (!v) return std::optional<DentryValue>();
  NEEDLEFS_ASSIGN_OR_RETURN(DentryValue d, DentryValue::Decode(*v));
  return std::optional<DentryValue>(d);
}

Status NsTxn::AddEntry(InodeRecord* dir, const std::string& name, InodeId child, FileType type,
                       int64_t now) {
  DentryValue d{child, type, dir->next_cookie++};
  NEEDLEFS_RETURN_IF_ERROR(txn_.Put(meta_keys::Dentry(dir->attr.ino, name), d.Encode()));
  NEEDLEFS_RETURN_IF_ERROR(txn_.Put(meta_keys::Cookie(dir->attr.ino, d.cookie), name));
  dir->attr.size += 1;
  dir->attr.mtime_ns = dir->attr.ctime_ns = now;
  return Status::OK();
}

Status NsTxn::RemoveEntry(InodeRecord* dir, const std::string& name, const DentryValue& d,
                          int64_t now) {
  NEEDLEFS_RETURN_IF_ERROR(txn_.Delete(meta_keys::Dentry(dir->attr.ino, name)));
  NEEDLEFS_RETURN_IF_ERROR(txn_.Delete(meta_keys::Cookie(dir->attr.ino, d.cookie)));
  if (dir->attr.size > 0) dir->attr.size -= 1;
  dir->attr.mtime_ns = dir->attr.ctime_ns = now;
  return Status::OK();
}

Status NsTxn::DropLink(InodeRecord* rec, int64_t now, BatchAllocator* garbage_seq) {
  rec->attr.ctime_ns = now;
  const bool dir = rec->attr.type == FileType::kDirectory;
  if (!dir && rec->attr.nlink > 1) {
    rec->attr.nlink -= 1;
    return Status::OK();
  }
  // Last link (a directory has exactly one name).
  rec->attr.nlink = 0;
  if (!dir) {
    bool open = false;
    NEEDLEFS_RETURN_IF_ERROR(txn_.Scan(meta_keys::OpenPrefix(rec->attr.ino), "", 1,
                                       [&](std::string_view, std::string_view) {
                                         open = true;
                                         return false;
                                       }));
    if (open) return txn_.Put(meta_keys::Unlinked(rec->attr.ino), "");
  }
  return Reap(rec, garbage_seq);
}

Status NsTxn::Reap(InodeRecord* rec, BatchAllocator* garbage_seq, const std::set<FileId>* keep) {
  const InodeId ino = rec->attr.ino;
  std::vector<std::string> keys;
  NEEDLEFS_RETURN_IF_ERROR(
      txn_.Scan(meta_keys::XattrPrefix(ino), "", 0, [&](std::string_view k, std::string_view) {
        keys.emplace_back(k);
        return true;
      }));
  std::vector<FileId> blobs;
  NEEDLEFS_RETURN_IF_ERROR(
      txn_.Scan(meta_keys::ChunkPrefix(ino), "", 0, [&](std::string_view k, std::string_view v) {
        keys.emplace_back(k);
        auto c = meta_keys::DecodeChunk(v);
        if (c.ok() && !c->is_inline()) blobs.push_back(c->file_id);
        return true;
      }));
  keys.push_back(meta_keys::Unlinked(ino));
  for (const auto& k : keys) NEEDLEFS_RETURN_IF_ERROR(txn_.Delete(k));
  std::sort(blobs.begin(), blobs.end());
  blobs.erase(std::unique(blobs.begin(), blobs.end()), blobs.end());
  for (const auto& fid : blobs) {
    if (keep && keep->count(fid)) continue;
    NEEDLEFS_ASSIGN_OR_RETURN(uint64_t seq, garbage_seq->Next());
    NEEDLEFS_RETURN_IF_ERROR(txn_.Put(meta_keys::Garbage(seq), fid.ToString()));
  }
  AddStats(-1, rec->attr.type == FileType::kRegular ? -static_cast<int64_t>(rec->attr.size) : 0);
  deleted_.insert(ino.value);
  return Status::OK();
}

InodeRecord* NsTxn::NewInode(const InodeRecord& rec) {
  AddStats(1, 0);
  return &inodes_.insert_or_assign(rec.attr.ino.value, rec).first->second;
}

StatusOr<bool> NsTxn::DirEmpty(InodeId dir) {
  bool empty = true;
  NEEDLEFS_RETURN_IF_ERROR(
      txn_.Scan(meta_keys::DentryPrefix(dir), "", 1, [&](std::string_view, std::string_view) {
        empty = false;
        return false;
      }));
  return empty;
}

Status NsTxn::Flush() {
  for (auto& [ino, rec] : inodes_) {
    if (deleted_.count(ino)) {
      NEEDLEFS_RETURN_IF_ERROR(txn_.Delete(meta_keys::Inode(InodeId(ino))));
    } else {
      NEEDLEFS_RETURN_IF_ERROR(txn_.Put(meta_keys::Inode(InodeId(ino)), rec.Encode()));
    }
  }
  if (stat_inodes_ != 0 || stat_bytes_ != 0) {
    // Each thread keeps to its own shard: transactions hold their locks until
    // the commit is synced, so a shared shard would serialize the commits.
    static std::atomic<uint32_t> next_shard{0};
    static thread_local const uint8_t shard =
        static_cast<uint8_t>(next_shard.fetch_add(1) % meta_keys::kStatShards);
    std::string key = meta_keys::StatShard(shard);
    NEEDLEFS_ASSIGN_OR_RETURN(auto v, txn_.GetForUpdate(key));
    int64_t inodes = 0, bytes = 0;
    if (v && v->size() == 16) {
      inodes = static_cast<int64_t>(meta_keys::ReadBE64(v->substr(0, 8)));
      bytes = static_cast<int64_t>(meta_keys::ReadBE64(v->substr(8)));
    }
    std::string nv;
    meta_keys::AppendBE64(&nv, static_cast<uint64_t>(inodes + stat_inodes_));
    meta_keys::AppendBE64(&nv, static_cast<uint64_t>(bytes + stat_bytes_));
    NEEDLEFS_RETURN_IF_ERROR(txn_.Put(key, nv));
  }
  return Status::OK();
}

// ---- Namespace ----

Namespace::Namespace(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Namespace::~Namespace() = default;

StatusOr<std::unique_ptr<Namespace>> Namespace::Open(KvStore* store,
                                                     const NamespaceOptions& options) {
  if (options.inode_batch == 0) return Status::InvalidArgument("inode_batch must be positive");
  Status s = RunTransaction(*store, [&](KvTransaction& t) -> Status {
    NEEDLEFS_ASSIGN_OR_RETURN(auto root, t.GetForUpdate(meta_keys::Inode(kRootInode)));
    if (root) return Status::OK();
    NsTxn tx(t);
    InodeRecord r;
    r.attr.ino = kRootInode;
    r.attr.generation = Generation(1);
    r.attr.type = FileType::kDirectory;
    r.attr.mode = 0755;
    r.attr.nlink = 2;
    r.attr.atime_ns = r.attr.mtime_ns = r.attr.ctime_ns = NowNs();
    r.parent = kRootInode;
    r.next_cookie = kFirstEntryCookie;
    tx.NewInode(r);
    return tx.Flush();
  });
  NEEDLEFS_RETURN_IF_ERROR(s);
  return std::unique_ptr<Namespace>(new Namespace(std::make_unique<Impl>(store, options)));
}

StatusOr<InodeAttr> Namespace::Lookup(const RequestContext& ctx, InodeId parent,
                                      const std::string& name) {
  NEEDLEFS_RETURN_IF_ERROR(CheckName(name));
  InodeAttr out;
  Status s = RunTransaction(*impl_->store_, [&](KvTransaction& t) -> Status {
    NEEDLEFS_ASSIGN_OR_RETURN(auto pv, t.Get(meta_keys::Inode(parent)));
    if (!pv) return Status::Posix(ENOENT, "no such directory");
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord p, InodeRecord::Decode(*pv));
    if (p.attr.type != FileType::kDirectory) return Status::Posix(ENOTDIR, "not a directory");
    if (!MayAccess(ctx, p.attr, 1)) return Status::Posix(EACCES, "search permission");
    // Reads take no snapshot: a rename over `name` committed between the
    // dentry read and the inode read leaves the old inode gone and the name
    // pointing to a new one. Read the name again then, a few times, rather
    // than answer ENOENT for a name that existed all along.
    for (int attempt = 0; attempt < 8; ++attempt) {
      InodeId target;
      if (name == ".") {
        target = parent;
      } else if (name == "..") {
        target = p.parent;
      } else {
        NEEDLEFS_ASSIGN_OR_RETURN(auto dv, t.Get(meta_keys::Dentry(parent, name)));
        if (!dv) return Status::Posix(ENOENT, name);
        NEEDLEFS_ASSIGN_OR_RETURN(DentryValue d, DentryValue::Decode(*dv));
        target = d.ino;
      }
      NEEDLEFS_ASSIGN_OR_RETURN(auto cv, t.Get(meta_keys::Inode(target)));
      if (!cv) continue;  // replaced meanwhile: read the name again
      NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord c, InodeRecord::Decode(*cv));
      out = c.attr;
      out.ino = target;
      return Status::OK();
    }
    return Status::Posix(ENOENT, name);
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<InodeAttr> Namespace::GetAttr(InodeId ino) {
  auto t = impl_->store_->Begin();
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, t->Get(meta_keys::Inode(ino)));
  if (!v) return Status::Posix(ENOENT, "no inode " + std::to_string(ino.value));
  NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord r, InodeRecord::Decode(*v));
  r.attr.ino = ino;
  return r.attr;
}

StatusOr<InodeAttr> Namespace::GetAttrChecked(InodeId ino, Generation generation) {
  NEEDLEFS_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(ino));
  if (a.generation != generation) return Status::Posix(ENOENT, "stale generation");
  return a;
}

Status ApplySetAttr(const RequestContext& ctx, KvTransaction& t, NsTxn& tx, InodeRecord* r,
                    const SetAttrRequest& req, int64_t now, BatchAllocator* garbage_seq) {
  InodeAttr& a = r->attr;
  const bool owner = ctx.uid == 0 || ctx.uid == a.uid;
  if (req.mode) {
    // Linux's file_remove_privs: before a non-owner's write or truncate
    // the kernel drops S_ISUID/S_ISGID with a chmod it makes for the
    // writer. So a non-owner who may write a regular file may clear those
    // bits, and change nothing else.
    const uint32_t want = *req.mode & 07777;
    const uint32_t privs = S_ISUID | S_ISGID;
    const bool drops_privs_only = a.type == FileType::kRegular && want != a.mode &&
                                  (want | (a.mode & privs)) == a.mode && MayAccess(ctx, a, 2);
    if (!owner && !drops_privs_only) return Status::Posix(EPERM, "chmod: not the owner");
    a.mode = want;
    if (ctx.uid != 0 && !ctx.InGroup(a.gid)) a.mode &= ~static_cast<uint32_t>(S_ISGID);
  }
  if (req.uid || req.gid) {
    bool uid_change = req.uid && *req.uid != a.uid;
    bool gid_change = req.gid && *req.gid != a.gid;
    // As Linux (chown_ok, chgrp_ok): a non-root caller may "change" the
    // owner only to itself when it is the owner, and the group only as
    // the owner to one of its groups (or the current group); anything
    // else is EPERM even when nothing would change.
    if (ctx.uid != 0) {
      if (req.uid && (*req.uid != a.uid || ctx.uid != a.uid)) {
        return Status::Posix(EPERM, "chown: not root");
      }
      if (req.gid && (ctx.uid != a.uid || (*req.gid != a.gid && !ctx.InGroup(*req.gid)))) {
        return Status::Posix(EPERM, "chgrp: not the owner or not in the group");
      }
    }
    if (req.uid) a.uid = *req.uid;
    if (req.gid) a.gid = *req.gid;
    if ((uid_change || gid_change) && a.type != FileType::kDirectory) {
      a.mode &= ~static_cast<uint32_t>(S_ISUID | S_ISGID);
    }
  }
  if (req.size) {
    if (a.type == FileType::kDirectory) return Status::Posix(EISDIR, "truncate of a directory");
    if (a.type != FileType::kRegular) return Status::Posix(EINVAL, "truncate of a special file");
    if (!MayAccess(ctx, a, 2)) return Status::Posix(EACCES, "truncate: no write permission");
    NEEDLEFS_RETURN_IF_ERROR(TruncateChunks(t, r, *req.size, garbage_seq));
    tx.AddStats(0, static_cast<int64_t>(*req.size) - static_cast<int64_t>(a.size));
    a.size = *req.size;
    a.mtime_ns = now;
  }
  auto set_time = [&](const std::optional<int64_t>& v, bool use_now, int64_t* field) -> Status {
    if (!v && !use_now) return Status::OK();
    if (use_now) {
      if (!owner && !MayAccess(ctx, a, 2))
        return Status::Posix(EACCES, "utimes: no write permission");
      *field = now;
    } else {
      if (!owner) return Status::Posix(EPERM, "utimes: not the owner");
      *field = *v;
    }
    return Status::OK();
  };
  NEEDLEFS_RETURN_IF_ERROR(set_time(req.atime_ns, req.atime_now, &a.atime_ns));
  NEEDLEFS_RETURN_IF_ERROR(set_time(req.mtime_ns, req.mtime_now, &a.mtime_ns));
  a.ctime_ns = now;
  return Status::OK();
}

StatusOr<InodeAttr> Namespace::SetAttr(const RequestContext& ctx, InodeId ino,
                                       const SetAttrRequest& req, ChangeInfo* info) {
  InodeAttr out;
  Status s = RunTransaction(*impl_->store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * r, tx.Inode(ino));
    if (info) info->inode.before = info->inode.after = r->attr;
    NEEDLEFS_RETURN_IF_ERROR(ApplySetAttr(ctx, t, tx, r, req, NowNs(), &impl_->garbage_seq_));
    out = r->attr;
    if (info) info->inode.after = r->attr;
    return tx.Flush();
  });
  if (!s.ok()) return s;
  impl_->NotifyAttr(ino);
  return out;
}

StatusOr<InodeAttr> Namespace::Impl::MakeNode(const RequestContext& ctx, InodeId parent,
                                              const std::string& name, FileType type, uint32_t mode,
                                              uint64_t rdev, const std::string& target,
                                              bool exclusive, bool* created, ChangeInfo* info,
                                              std::optional<uint64_t> verifier) {
  NEEDLEFS_RETURN_IF_ERROR(CheckName(name));
  if (name == "." || name == "..") return Status::Posix(EEXIST, name);
  NEEDLEFS_ASSIGN_OR_RETURN(uint64_t ino, inodes_.Next());
  InodeAttr out;
  bool made = false;
  Status s = RunTransaction(*store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    made = false;
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * p, tx.Dir(ctx, parent, /*write=*/false));
    if (info) info->dir.before = info->dir.after = p->attr;
    // The verifier's halves, as atime and mtime (both non-negative).
    const int64_t verf_hi = verifier ? static_cast<int64_t>(*verifier >> 32) : 0;
    const int64_t verf_lo = verifier ? static_cast<int64_t>(*verifier & 0xffffffffu) : 0;
    NEEDLEFS_ASSIGN_OR_RETURN(auto existing, tx.Entry(parent, name));
    if (existing) {
      if (type != FileType::kRegular) return Status::Posix(EEXIST, name);
      NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * e, tx.Inode(existing->ino));
      if (exclusive) {
        const bool replay = verifier && e->attr.type == FileType::kRegular &&
                            e->attr.atime_ns == verf_hi && e->attr.mtime_ns == verf_lo;
        if (!replay) return Status::Posix(EEXIST, name);
      }
      if (e->attr.type == FileType::kDirectory) return Status::Posix(EISDIR, name);
      out = e->attr;
      return Status::OK();  // nothing to write
    }
    if (!MayAccess(ctx, p->attr, 3)) return Status::Posix(EACCES, "no write permission");
    const int64_t now = NowNs();
    InodeRecord r;
    r.attr.ino = InodeId(ino);
    r.attr.generation = Generation(static_cast<uint64_t>(now));
    r.attr.type = type;
    r.attr.mode = mode & 07777;
    r.attr.uid = ctx.uid;
    // BSD/Linux setgid directories hand their group down.
    r.attr.gid = (p->attr.mode & S_ISGID) ? p->attr.gid : ctx.gid;
    if (type == FileType::kDirectory && (p->attr.mode & S_ISGID)) r.attr.mode |= S_ISGID;
    r.attr.nlink = type == FileType::kDirectory ? 2 : 1;
    r.attr.atime_ns = r.attr.mtime_ns = r.attr.ctime_ns = now;
    if (verifier && exclusive) {
      r.attr.atime_ns = verf_hi;
      r.attr.mtime_ns = verf_lo;
    }
    r.attr.rdev = rdev;
    if (type == FileType::kDirectory) {
      r.parent = parent;
      r.next_cookie = kFirstEntryCookie;
      p->attr.nlink += 1;
    }
    if (type == FileType::kSymlink) {
      r.target = target;
      r.attr.size = target.size();
      r.attr.mode = 0777;
    }
    tx.NewInode(r);
    NEEDLEFS_RETURN_IF_ERROR(tx.AddEntry(p, name, InodeId(ino), type, now));
    out = r.attr;
    made = true;
    if (info) info->dir.after = p->attr;
    return tx.Flush();
  });
  if (!made) inodes_.GiveBack(ino);
  if (created) *created = made;
  if (!s.ok()) return s;
  if (made) {
    NotifyEntry(parent, name, out.ino);
    NotifyAttr(parent);
  }
  return out;
}

StatusOr<InodeAttr> Namespace::Create(const RequestContext& ctx, InodeId parent,
                                      const std::string& name, uint32_t mode, bool exclusive,
                                      bool* created, ChangeInfo* info,
                                      std::optional<uint64_t> verifier) {
  return impl_->MakeNode(ctx, parent, name, FileType::kRegular, mode, 0, "", exclusive, created,
                         info, verifier);
}

StatusOr<InodeAttr> Namespace::Mkdir(const RequestContext& ctx, InodeId parent,
                                     const std::string& name, uint32_t mode, ChangeInfo* info) {
  return impl_->MakeNode(ctx, parent, name, FileType::kDirectory, mode, 0, "", true, nullptr, info);
}

StatusOr<InodeAttr> Namespace::Mknod(const RequestContext& ctx, InodeId parent,
                                     const std::string& name, FileType type, uint32_t mode,
                                     uint64_t rdev, ChangeInfo* info) {
  if (type == FileType::kRegular || type == FileType::kDirectory || type == FileType::kSymlink) {
    return Status::Posix(EINVAL, "mknod of a regular file, directory or symlink");
  }
  return impl_->MakeNode(ctx, parent, name, type, mode, rdev, "", true, nullptr, info);
}

StatusOr<InodeAttr> Namespace::Symlink(const RequestContext& ctx, InodeId parent,
                                       const std::string& name, const std::string& target,
                                       ChangeInfo* info) {
  if (target.empty()) return Status::Posix(ENOENT, "empty symlink target");
  if (target.size() > kMaxSymlinkBytes) return Status::Posix(ENAMETOOLONG, "symlink target");
  return impl_->MakeNode(ctx, parent, name, FileType::kSymlink, 0777, 0, target, true, nullptr,
                         info);
}

StatusOr<std::string> Namespace::Readlink(InodeId ino) {
  auto t = impl_->store_->Begin();
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, t->Get(meta_keys::Inode(ino)));
  if (!v) return Status::Posix(ENOENT, "no inode");
  NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord r, InodeRecord::Decode(*v));
  if (r.attr.type != FileType::kSymlink) return Status::Posix(EINVAL, "not a symlink");
  return r.target;
}

StatusOr<InodeAttr> Namespace::Link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                                    const std::string& new_name, ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(CheckName(new_name));
  if (new_name == "." || new_name == "..") return Status::Posix(EEXIST, new_name);
  InodeAttr out;
  Status s = RunTransaction(*impl_->store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * r, tx.Inode(ino));
    if (r->attr.type == FileType::kDirectory)
      return Status::Posix(EPERM, "hard link to a directory");
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * p, tx.Dir(ctx, new_parent, /*write=*/true));
    if (info) info->dir.before = info->dir.after = p->attr;
    NEEDLEFS_ASSIGN_OR_RETURN(auto existing, tx.Entry(new_parent, new_name));
    if (existing) return Status::Posix(EEXIST, new_name);
    if (r->attr.nlink >= 65000) return Status::Posix(EMLINK, "too many links");
    const int64_t now = NowNs();
    r->attr.nlink += 1;
    r->attr.ctime_ns = now;
    NEEDLEFS_RETURN_IF_ERROR(tx.AddEntry(p, new_name, ino, r->attr.type, now));
    out = r->attr;
    if (info) info->dir.after = p->attr;
    return tx.Flush();
  });
  if (!s.ok()) return s;
  impl_->NotifyEntry(new_parent, new_name, ino);
  impl_->NotifyAttr(ino);
  impl_->NotifyAttr(new_parent);
  return out;
}

Status Namespace::Access(const RequestContext& ctx, InodeId ino, int mask) {
  NEEDLEFS_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(ino));
  if (mask != 0 && !MayAccess(ctx, a, mask & 7)) return Status::Posix(EACCES, "access denied");
  return Status::OK();
}

}  // namespace needlefs
