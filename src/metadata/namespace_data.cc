// Namespace: readdir, statfs, xattrs, chunk maps and the garbage queue.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "metadata/internal/namespace_impl.h"

namespace needlefs {

using meta_keys::DentryValue;
using meta_keys::InodeRecord;

StatusOr<ReadDirResult> Namespace::ReadDir(const RequestContext& ctx, InodeId dir, uint64_t cookie,
                                           size_t max_entries, bool plus) {
  if (max_entries == 0) return Status::Posix(EINVAL, "max_entries is 0");
  ReadDirResult out;
  Status s = RunTransaction(*impl_->store_, [&](KvTransaction& t) -> Status {
    out = ReadDirResult();
    NEEDLEFS_ASSIGN_OR_RETURN(auto dv, t.Get(meta_keys::Inode(dir)));
    if (!dv) return Status::Posix(ENOENT, "no such directory");
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord d, InodeRecord::Decode(*dv));
    if (d.attr.type != FileType::kDirectory) return Status::Posix(ENOTDIR, "not a directory");
    if (!MayAccess(ctx, d.attr, 4)) return Status::Posix(EACCES, "no read permission");
    std::string start_after = cookie == 0 ? "" : meta_keys::Cookie(dir, cookie);
    // The reads below see changes committed since the scan (no snapshot).
    // A name removed and added again since (a rename over it) now has a new
    // cookie, above every cookie scanned: a later page meets it there; on
    // the last page it goes at the end, so a name that existed all along is
    // never missing from a listing. A page whose every entry moved on is
    // scanned again further, never returned empty before the end.
    auto add = [&](std::string name, const DentryValue& e) -> Status {
      DirEntry entry{std::move(name), e.ino, e.type, e.cookie, std::nullopt};
      if (plus) {
        NEEDLEFS_ASSIGN_OR_RETURN(auto iv, t.Get(meta_keys::Inode(e.ino)));
        if (iv) {
          NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord r, InodeRecord::Decode(*iv));
          r.attr.ino = e.ino;
          entry.attr = r.attr;
        }
      }
      out.entries.push_back(std::move(entry));
      return Status::OK();
    };
    for (;;) {
      std::vector<std::pair<uint64_t, std::string>> names;
      NEEDLEFS_RETURN_IF_ERROR(t.Scan(meta_keys::CookiePrefix(dir), start_after, max_entries + 1,
                                      [&](std::string_view k, std::string_view v) {
                                        names.emplace_back(meta_keys::ReadBE64(k.substr(9)),
                                                           std::string(v));
                                        return true;
                                      }));
      out.eof = names.size() <= max_entries;
      if (!out.eof) names.resize(max_entries);
      std::vector<std::pair<std::string, DentryValue>> moved_on;
      for (auto& [c, name] : names) {
        NEEDLEFS_ASSIGN_OR_RETURN(auto ev, t.Get(meta_keys::Dentry(dir, name)));
        if (!ev) continue;  // removed since the cookie scan
        NEEDLEFS_ASSIGN_OR_RETURN(DentryValue e, DentryValue::Decode(*ev));
        if (e.cookie != c) {
          if (e.cookie > c) moved_on.emplace_back(std::move(name), e);
          continue;
        }
        NEEDLEFS_RETURN_IF_ERROR(add(std::move(name), e));
      }
      if (out.eof && !moved_on.empty()) {
        std::sort(moved_on.begin(), moved_on.end(),
                  [](const auto& a, const auto& b) { return a.second.cookie < b.second.cookie; });
        for (auto& [name, e] : moved_on) NEEDLEFS_RETURN_IF_ERROR(add(std::move(name), e));
      }
      if (out.eof || !out.entries.empty()) break;
      start_after = meta_keys::Cookie(dir, names.back().first);
    }
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<StatFs> Namespace::GetStatFs() {
  auto t = impl_->store_->Begin();
  StatFs out;
  for (int i = 0; i < meta_keys::kStatShards; ++i) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto v, t->Get(meta_keys::StatShard(static_cast<uint8_t>(i))));
    if (v && v->size() == 16) {
      out.inodes += meta_keys::ReadBE64(v->substr(0, 8));
      out.bytes_used += meta_keys::ReadBE64(v->substr(8));
    }
  }
  return out;
}

// ---- xattrs ----

namespace {

/// Checks an xattr name: a known namespace prefix and the length limit.
/// POSIX ACLs (system.posix_acl_*) are not supported: EOPNOTSUPP, as a file
/// system mounted "noacl" answers, so cp -a and tar fall back to chmod
/// instead of storing an ACL the mode bits would not follow.
Status CheckXattrName(const std::string& name) {
  if (name.size() > kMaxXattrNameBytes) return Status::Posix(ERANGE, "xattr name too long");
  if (name.rfind("system.posix_acl_", 0) == 0) {
    return Status::Posix(EOPNOTSUPP, "POSIX ACLs are not supported");
  }
  for (const char* p : {"user.", "trusted.", "security.", "system."}) {
    if (name.rfind(p, 0) == 0 && name.size() > std::string_view(p).size()) return Status::OK();
  }
  return Status::Posix(EOPNOTSUPP, "xattr name needs a namespace prefix");
}

/// Linux rules: trusted.* needs root; user.* is for regular files and
/// directories and needs read (get) or write (set) permission.
Status XattrAccess(const RequestContext& ctx, const InodeAttr& a, const std::string& name,
                   bool write) {
  if (name.rfind("trusted.", 0) == 0 && ctx.uid != 0) return Status::Posix(EPERM, "trusted.*");
  if (name.rfind("user.", 0) == 0) {
    if (a.type != FileType::kRegular && a.type != FileType::kDirectory) {
      return Status::Posix(EPERM, "user.* xattrs on a special file");
    }
    if (!MayAccess(ctx, a, write ? 2 : 4)) return Status::Posix(EACCES, "xattr permission");
  }
  if (write && name.rfind("security.", 0) == 0 && ctx.uid != 0 && ctx.uid != a.uid) {
    return Status::Posix(EPERM, "security.* xattr of another user's file");
  }
  return Status::OK();
}

}  // namespace

Status Namespace::SetXattr(const RequestContext& ctx, InodeId ino, const std::string& name,
                           const std::string& value, int flags) {
  NEEDLEFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValueBytes) return Status::Posix(E2BIG, "xattr value too large");
  Status st = RunTransaction(*impl_->store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * r, tx.Inode(ino));
    NEEDLEFS_RETURN_IF_ERROR(XattrAccess(ctx, r->attr, name, true));
    NEEDLEFS_ASSIGN_OR_RETURN(auto old, t.GetForUpdate(meta_keys::Xattr(ino, name)));
    if ((flags & kXattrCreate) && old) return Status::Posix(EEXIST, name);
    if ((flags & kXattrReplace) && !old) return Status::Posix(ENODATA, name);
    NEEDLEFS_RETURN_IF_ERROR(t.Put(meta_keys::Xattr(ino, name), value));
    r->attr.ctime_ns = NowNs();
    return tx.Flush();
  });
  if (st.ok()) impl_->NotifyAttr(ino);
  return st;
}

StatusOr<std::string> Namespace::GetXattr(const RequestContext& ctx, InodeId ino,
                                          const std::string& name) {
  NEEDLEFS_RETURN_IF_ERROR(CheckXattrName(name));
  NEEDLEFS_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(ino));
  NEEDLEFS_RETURN_IF_ERROR(XattrAccess(ctx, a, name, false));
  auto t = impl_->store_->Begin();
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, t->Get(meta_keys::Xattr(ino, name)));
  if (!v) return Status::Posix(ENODATA, name);
  return *v;
}

StatusOr<std::vector<std::string>> Namespace::ListXattr(const RequestContext& ctx, InodeId ino) {
  NEEDLEFS_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(ino));
  auto t = impl_->store_->Begin();
  std::vector<std::string> names;
  const size_t prefix = meta_keys::XattrPrefix(ino).size();
  NEEDLEFS_RETURN_IF_ERROR(
      t->Scan(meta_keys::XattrPrefix(ino), "", 0, [&](std::string_view k, std::string_view) {
        std::string name(k.substr(prefix));
        // As Linux: trusted.* is listed only for root.
        if (name.rfind("trusted.", 0) != 0 || ctx.uid == 0) names.push_back(std::move(name));
        return true;
      }));
  (void)a;
  return names;
}

Status Namespace::RemoveXattr(const RequestContext& ctx, InodeId ino, const std::string& name) {
  NEEDLEFS_RETURN_IF_ERROR(CheckXattrName(name));
  Status st = RunTransaction(*impl_->store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * r, tx.Inode(ino));
    NEEDLEFS_RETURN_IF_ERROR(XattrAccess(ctx, r->attr, name, true));
    NEEDLEFS_ASSIGN_OR_RETURN(auto old, t.GetForUpdate(meta_keys::Xattr(ino, name)));
    if (!old) return Status::Posix(ENODATA, name);
    NEEDLEFS_RETURN_IF_ERROR(t.Delete(meta_keys::Xattr(ino, name)));
    r->attr.ctime_ns = NowNs();
    return tx.Flush();
  });
  if (st.ok()) impl_->NotifyAttr(ino);
  return st;
}

// ---- chunks ----

Status Namespace::Sync() { return impl_->store_->SyncLog(); }

StatusOr<InodeAttr> Namespace::AddChunks(InodeId ino, const std::vector<Chunk>& chunks,
                                         uint64_t min_size, bool sync, const SetAttrRequest* attrs,
                                         const RequestContext* attrs_ctx) {
  if (attrs && (attrs->size || !attrs_ctx)) {
    return Status::Posix(EINVAL, "attributes with chunks: no size, and a caller");
  }
  for (const Chunk& c : chunks) {
    if (c.size == 0) return Status::Posix(EINVAL, "empty chunk");
    if (c.is_inline()) {
      if (c.data.size() != c.size || c.file_id != FileId{} || c.blob_offset != 0) {
        return Status::Posix(EINVAL, "malformed inline chunk");
      }
      if (c.size > impl_->max_inline_bytes_) {
        return Status::Posix(EINVAL, "inline chunk of " + std::to_string(c.size) +
                                         " bytes over the limit of " +
                                         std::to_string(impl_->max_inline_bytes_));
      }
    } else if (c.file_id == FileId{}) {
      return Status::Posix(EINVAL, "chunk without a file id");
    }
  }
  InodeAttr out;
  Status s = RunTransaction(*impl_->store_, TxnOptions{sync}, [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * r, tx.Inode(ino));
    if (r->attr.type == FileType::kDirectory) return Status::Posix(EISDIR, "chunks of a directory");
    if (r->attr.type != FileType::kRegular)
      return Status::Posix(EINVAL, "chunks of a special file");
    for (const Chunk& c : chunks) {
      NEEDLEFS_RETURN_IF_ERROR(
          t.Put(meta_keys::ChunkKey(ino, r->next_chunk_seq++), meta_keys::EncodeChunk(c)));
    }
    uint64_t new_size = std::max(r->attr.size, min_size);
    tx.AddStats(0, static_cast<int64_t>(new_size - r->attr.size));
    r->attr.size = new_size;
    const int64_t now = NowNs();
    r->attr.mtime_ns = r->attr.ctime_ns = now;
    if (attrs) {
      NEEDLEFS_RETURN_IF_ERROR(
          ApplySetAttr(*attrs_ctx, t, tx, r, *attrs, now, &impl_->garbage_seq_));
    }
    out = r->attr;
    return tx.Flush();
  });
  if (!s.ok()) return s;
  impl_->NotifyAttr(ino);
  return out;
}

namespace {

/// The visible pieces of [offset, end) of inode `ino`'s chunks, by offset
/// (holes absent): the newest chunk covering a byte wins.
StatusOr<std::vector<Chunk>> VisibleChunks(KvTransaction& t, InodeId ino, uint64_t offset,
                                           uint64_t end) {
  std::vector<Chunk> out;
  if (offset >= end) return out;
  std::vector<Chunk> all;  // in write order: later entries are newer
  NEEDLEFS_RETURN_IF_ERROR(
      t.Scan(meta_keys::ChunkPrefix(ino), "", 0, [&](std::string_view, std::string_view cv) {
        auto c = meta_keys::DecodeChunk(cv);
        if (c.ok() && c->offset < end && c->offset + c->size > offset) all.push_back(*c);
        return true;
      }));
  // Painter's algorithm: `gaps` are the parts of [offset, end) no newer
  // chunk covered yet.
  std::vector<std::pair<uint64_t, uint64_t>> gaps{{offset, end}};
  for (auto it = all.rbegin(); it != all.rend() && !gaps.empty(); ++it) {
    const uint64_t cs = it->offset, ce = it->offset + it->size;
    std::vector<std::pair<uint64_t, uint64_t>> rest;
    for (auto [gs, ge] : gaps) {
      uint64_t s = std::max(gs, cs), e = std::min(ge, ce);
      if (s >= e) {
        rest.emplace_back(gs, ge);
        continue;
      }
      Chunk piece{it->file_id, s, e - s, it->blob_offset + (s - cs), {}};
      if (it->is_inline()) {
        piece.blob_offset = 0;
        piece.data = it->data.substr(s - cs, e - s);
      }
      out.push_back(std::move(piece));
      if (gs < s) rest.emplace_back(gs, s);
      if (e < ge) rest.emplace_back(e, ge);
    }
    gaps.swap(rest);
  }
  std::sort(out.begin(), out.end(),
            [](const Chunk& a, const Chunk& b) { return a.offset < b.offset; });
  return out;
}

}  // namespace

StatusOr<std::vector<Chunk>> Namespace::ReadChunks(InodeId ino, uint64_t offset, uint64_t length) {
  auto t = impl_->store_->Begin();
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, t->Get(meta_keys::Inode(ino)));
  if (!v) return Status::Posix(ENOENT, "no inode");
  NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord r, InodeRecord::Decode(*v));
  if (r.attr.type == FileType::kDirectory) return Status::Posix(EISDIR, "read of a directory");
  const uint64_t end = std::min(r.attr.size, offset + std::min(length, UINT64_MAX - offset));
  return VisibleChunks(*t, ino, offset, end);
}

StatusOr<InodeAttr> Namespace::Compose(const RequestContext& ctx, InodeId target, InodeId parts_dir,
                                       const std::vector<std::string>& parts, ChangeInfo* info) {
  if (parts.empty()) return Status::Posix(EINVAL, "compose of no parts");
  std::set<std::string> names;
  for (const std::string& n : parts) {
    NEEDLEFS_RETURN_IF_ERROR(CheckName(n));
    if (n == "." || n == "..") return Status::Posix(EINVAL, "compose of . or ..");
    if (!names.insert(n).second) return Status::Posix(EINVAL, "part named twice: " + n);
  }
  InodeAttr out;
  std::vector<InodeId> removed;
  Status s = RunTransaction(*impl_->store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    removed.clear();
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * r, tx.Inode(target));
    if (r->attr.type == FileType::kDirectory) return Status::Posix(EISDIR, "compose target");
    if (r->attr.type != FileType::kRegular) return Status::Posix(EINVAL, "compose target type");
    if (r->attr.size != 0) return Status::Posix(EINVAL, "compose target is not empty");
    if (!MayAccess(ctx, r->attr, 2)) return Status::Posix(EACCES, "no write permission");
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * dir, tx.Dir(ctx, parts_dir, /*write=*/true));
    if (info) info->dir.before = info->dir.after = dir->attr;
    const int64_t now = NowNs();
    uint64_t offset = 0;
    for (const std::string& name : parts) {
      NEEDLEFS_ASSIGN_OR_RETURN(auto d, tx.Entry(parts_dir, name));
      if (!d) return Status::Posix(ENOENT, name);
      if (d->ino == target) return Status::Posix(EINVAL, "compose target among its parts");
      NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * p, tx.Inode(d->ino));
      if (p->attr.type == FileType::kDirectory) return Status::Posix(EISDIR, name);
      if (p->attr.type != FileType::kRegular) return Status::Posix(EINVAL, name);
      if (p->attr.nlink != 1) return Status::Posix(EMLINK, name + " has other links");
      if ((dir->attr.mode & S_ISVTX) && ctx.uid != 0 && ctx.uid != dir->attr.uid &&
          ctx.uid != p->attr.uid) {
        return Status::Posix(EPERM, "sticky directory");
      }
      bool open = false;
      NEEDLEFS_RETURN_IF_ERROR(t.Scan(meta_keys::OpenPrefix(p->attr.ino), "", 1,
                                      [&](std::string_view, std::string_view) {
                                        open = true;
                                        return false;
                                      }));
      if (open) return Status::Posix(EBUSY, name + " is open");
      NEEDLEFS_ASSIGN_OR_RETURN(auto visible, VisibleChunks(t, p->attr.ino, 0, p->attr.size));
      std::set<FileId> moved;
      for (Chunk c : visible) {
        moved.insert(c.file_id);
        c.offset += offset;
        NEEDLEFS_RETURN_IF_ERROR(
            t.Put(meta_keys::ChunkKey(target, r->next_chunk_seq++), meta_keys::EncodeChunk(c)));
      }
      offset += p->attr.size;
      NEEDLEFS_RETURN_IF_ERROR(tx.RemoveEntry(dir, name, *d, now));
      p->attr.nlink = 0;
      NEEDLEFS_RETURN_IF_ERROR(tx.Reap(p, &impl_->garbage_seq_, &moved));
      removed.push_back(d->ino);
    }
    tx.AddStats(0, static_cast<int64_t>(offset));
    r->attr.size = offset;
    r->attr.mtime_ns = r->attr.ctime_ns = now;
    out = r->attr;
    if (info) info->dir.after = dir->attr;
    return tx.Flush();
  });
  if (!s.ok()) return s;
  for (size_t i = 0; i < parts.size(); ++i) impl_->NotifyEntry(parts_dir, parts[i], removed[i]);
  impl_->NotifyAttr(parts_dir);
  impl_->NotifyAttr(target);
  return out;
}

Status TruncateChunks(KvTransaction& t, InodeRecord* rec, uint64_t new_size,
                      BatchAllocator* garbage_seq) {
  if (new_size >= rec->attr.size) return Status::OK();
  const InodeId ino = rec->attr.ino;
  std::vector<std::pair<std::string, Chunk>> chunks;
  NEEDLEFS_RETURN_IF_ERROR(
      t.Scan(meta_keys::ChunkPrefix(ino), "", 0, [&](std::string_view k, std::string_view v) {
        auto c = meta_keys::DecodeChunk(v);
        if (c.ok() && c->offset + c->size > new_size) chunks.emplace_back(std::string(k), *c);
        return true;
      }));
  for (auto& [key, c] : chunks) {
    if (c.offset >= new_size && c.is_inline()) {
      NEEDLEFS_RETURN_IF_ERROR(t.Delete(key));  // its bytes go with it: no blob
    } else if (c.offset >= new_size) {
      NEEDLEFS_RETURN_IF_ERROR(t.Delete(key));
      // A blob may back other chunks of this file (split writes); only a
      // blob that no remaining chunk names is garbage.
      bool still_used = false;
      NEEDLEFS_RETURN_IF_ERROR(
          t.Scan(meta_keys::ChunkPrefix(ino), "", 0, [&](std::string_view k2, std::string_view v2) {
            auto o = meta_keys::DecodeChunk(v2);
            if (k2 != key && o.ok() && o->file_id == c.file_id && o->offset < new_size) {
              still_used = true;
              return false;
            }
            return true;
          }));
      if (!still_used) {
        NEEDLEFS_ASSIGN_OR_RETURN(uint64_t seq, garbage_seq->Next());
        NEEDLEFS_RETURN_IF_ERROR(t.Put(meta_keys::Garbage(seq), c.file_id.ToString()));
      }
    } else {
      c.size = new_size - c.offset;  // clip the chunk that straddles the new end
      if (c.is_inline()) c.data.resize(c.size);
      NEEDLEFS_RETURN_IF_ERROR(t.Put(key, meta_keys::EncodeChunk(c)));
    }
  }
  return Status::OK();
}

// ---- garbage queue ----

StatusOr<std::vector<std::pair<uint64_t, std::string>>> Namespace::PeekGarbage(size_t max) {
  auto t = impl_->store_->Begin();
  std::vector<std::pair<uint64_t, std::string>> out;
  NEEDLEFS_RETURN_IF_ERROR(t->Scan("G", "", max, [&](std::string_view k, std::string_view v) {
    out.emplace_back(meta_keys::ReadBE64(k.substr(1)), std::string(v));
    return true;
  }));
  return out;
}

Status Namespace::AckGarbage(uint64_t seq) {
  return RunTransaction(*impl_->store_, [&](KvTransaction& t) -> Status {
    std::vector<std::string> keys;
    NEEDLEFS_RETURN_IF_ERROR(t.Scan("G", "", 0, [&](std::string_view k, std::string_view) {
      if (meta_keys::ReadBE64(k.substr(1)) > seq) return false;
      keys.emplace_back(k);
      return true;
    }));
    for (const auto& k : keys) NEEDLEFS_RETURN_IF_ERROR(t.Delete(k));
    return Status::OK();
  });
}

}  // namespace needlefs
