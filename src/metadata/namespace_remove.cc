// Namespace: unlink, rmdir and rename (rename(2) and renameat2(2) flags).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "metadata/internal/namespace_impl.h"

namespace needlefs {

using meta_keys::DentryValue;
using meta_keys::InodeRecord;

namespace {

/// The sticky-bit rule: in a sticky directory only the owner of the entry,
/// the owner of the directory, or root may remove or rename it.
bool StickyAllows(const RequestContext& ctx, const InodeAttr& dir, const InodeAttr& victim) {
  return !(dir.mode & S_ISVTX) || ctx.uid == 0 || ctx.uid == dir.uid || ctx.uid == victim.uid;
}

}  // namespace

Status Namespace::Unlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                         ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(CheckName(name));
  if (name == "." || name == "..") return Status::Posix(EISDIR, name);
  return impl_->RemoveName(ctx, parent, name, /*directory=*/false, info);
}

Status Namespace::Rmdir(const RequestContext& ctx, InodeId parent, const std::string& name,
                        ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(CheckName(name));
  if (name == ".") return Status::Posix(EINVAL, "rmdir of .");
  if (name == "..") return Status::Posix(ENOTEMPTY, "rmdir of ..");
  return impl_->RemoveName(ctx, parent, name, /*directory=*/true, info);
}

Status Namespace::Impl::RemoveName(const RequestContext& ctx, InodeId parent,
                                   const std::string& name, bool directory, ChangeInfo* info) {
  InodeId removed;
  Status st = RunTransaction(*store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * p, tx.Dir(ctx, parent, /*write=*/true));
    if (info) info->dir.before = info->dir.after = p->attr;
    NEEDLEFS_ASSIGN_OR_RETURN(auto d, tx.Entry(parent, name));
    if (!d) return Status::Posix(ENOENT, name);
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * c, tx.Inode(d->ino));
    const bool is_dir = c->attr.type == FileType::kDirectory;
    if (is_dir != directory) return Status::Posix(directory ? ENOTDIR : EISDIR, name);
    if (!StickyAllows(ctx, p->attr, c->attr)) return Status::Posix(EPERM, "sticky directory");
    if (directory) {
      NEEDLEFS_ASSIGN_OR_RETURN(bool empty, tx.DirEmpty(d->ino));
      if (!empty) return Status::Posix(ENOTEMPTY, name);
      p->attr.nlink -= 1;  // the removed directory's ".."
    }
    const int64_t now = NowNs();
    NEEDLEFS_RETURN_IF_ERROR(tx.RemoveEntry(p, name, *d, now));
    NEEDLEFS_RETURN_IF_ERROR(tx.DropLink(c, now, &garbage_seq_));
    removed = d->ino;
    if (info) info->dir.after = p->attr;
    return tx.Flush();
  });
  if (st.ok()) {
    NotifyEntry(parent, name, removed);
    NotifyAttr(removed);
    NotifyAttr(parent);
  }
  return st;
}

Status Namespace::Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                         InodeId new_parent, const std::string& new_name, uint32_t flags,
                         ChangeInfo* info) {
  Status s = impl_->Rename(ctx, parent, name, new_parent, new_name, flags, info);
  if (s.ok()) {
    impl_->NotifyEntry(parent, name, InodeId());
    impl_->NotifyEntry(new_parent, new_name, InodeId());
    impl_->NotifyAttr(parent);
    if (new_parent != parent) impl_->NotifyAttr(new_parent);
  }
  return s;
}

Status Namespace::Impl::Rename(const RequestContext& ctx, InodeId sp, const std::string& sn,
                               InodeId dp, const std::string& dn, uint32_t flags,
                               ChangeInfo* info) {
  if ((flags & kRenameNoReplace) && (flags & kRenameExchange)) {
    return Status::Posix(EINVAL, "RENAME_NOREPLACE with RENAME_EXCHANGE");
  }
  if (flags & ~static_cast<uint32_t>(kRenameNoReplace | kRenameExchange)) {
    return Status::Posix(EINVAL, "unknown rename flags");
  }
  NEEDLEFS_RETURN_IF_ERROR(CheckName(sn));
  NEEDLEFS_RETURN_IF_ERROR(CheckName(dn));
  for (const std::string* n : {&sn, &dn}) {
    if (*n == "." || *n == "..") return Status::Posix(EINVAL, "rename of . or ..");
  }
  // Moving a directory to another parent can create a cycle with a
  // concurrent rename (mv a b/ and mv b a/): like Linux's
  // s_vfs_rename_mutex, serialize those renames, here and across meta
  // servers through one KV lock key.
  std::unique_lock<std::mutex> cross_dir;
  if (sp != dp) cross_dir = std::unique_lock<std::mutex>(rename_mu_);

  return RunTransaction(*store_, TxnFor(ctx), [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    if (sp != dp) NEEDLEFS_RETURN_IF_ERROR(t.GetForUpdate(meta_keys::kRenameLock).status());
    // Lock parents in inode order to keep lock waits acyclic.
    InodeId first = sp.value <= dp.value ? sp : dp, second = sp.value <= dp.value ? dp : sp;
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * p1, tx.Dir(ctx, first, /*write=*/true));
    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * p2, tx.Dir(ctx, second, /*write=*/true));
    InodeRecord* src_dir = first == sp ? p1 : p2;
    InodeRecord* dst_dir = first == dp ? p1 : p2;
    // The directories as read; record_after() sets them as written.
    if (info) {
      info->dir.before = info->dir.after = src_dir->attr;
      info->to_dir.before = info->to_dir.after = dst_dir->attr;
    }
    auto record_after = [&] {
      if (!info) return;
      info->dir.after = src_dir->attr;
      info->to_dir.after = dst_dir->attr;
    };

    NEEDLEFS_ASSIGN_OR_RETURN(auto sd, tx.Entry(sp, sn));
    if (!sd) return Status::Posix(ENOENT, sn);
    NEEDLEFS_ASSIGN_OR_RETURN(auto dd, tx.Entry(dp, dn));
    if (dd && dd->ino == sd->ino) return Status::OK();  // same inode: nothing to do
    if ((flags & kRenameNoReplace) && dd) return Status::Posix(EEXIST, dn);
    if ((flags & kRenameExchange) && !dd) return Status::Posix(ENOENT, dn);

    NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * src, tx.Inode(sd->ino));
    InodeRecord* dst = nullptr;
    if (dd) {
      NEEDLEFS_ASSIGN_OR_RETURN(dst, tx.Inode(dd->ino));
    }
    if (!StickyAllows(ctx, src_dir->attr, src->attr)) return Status::Posix(EPERM, "sticky source");
    if (dst && !StickyAllows(ctx, dst_dir->attr, dst->attr)) {
      return Status::Posix(EPERM, "sticky target");
    }
    const bool src_is_dir = src->attr.type == FileType::kDirectory;
    const bool dst_is_dir = dst && dst->attr.type == FileType::kDirectory;
    // A directory that changes parent has its ".." rewritten: that needs
    // write permission on the directory itself (Linux vfs_rename), also
    // for the target of an exchange.
    if (sp != dp && src_is_dir && !MayAccess(ctx, src->attr, W_OK)) {
      return Status::Posix(EACCES, "moving a directory needs write permission on it");
    }
    if (sp != dp && (flags & kRenameExchange) && dst_is_dir && !MayAccess(ctx, dst->attr, W_OK)) {
      return Status::Posix(EACCES, "moving a directory needs write permission on it");
    }

    // A directory may not move into its own subtree: walk up from the new
    // parent (for an exchange, also from the old parent for the target).
    auto check_not_ancestor = [&](InodeId moving, InodeId new_home) -> Status {
      InodeId cur = new_home;
      for (int depth = 0; depth < 1'000'000; ++depth) {
        if (cur == moving) return Status::Posix(EINVAL, "directory into its own subtree");
        if (cur == kRootInode) return Status::OK();
        NEEDLEFS_ASSIGN_OR_RETURN(auto v, t.Get(meta_keys::Inode(cur)));
        if (!v) return Status::Posix(ENOENT, "ancestor vanished");
        NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord r, InodeRecord::Decode(*v));
        cur = r.parent;
      }
      return Status::Internal("directory tree too deep or cyclic");
    };
    if (src_is_dir && sp != dp) NEEDLEFS_RETURN_IF_ERROR(check_not_ancestor(sd->ino, dp));
    if ((flags & kRenameExchange) && dst_is_dir && sp != dp) {
      NEEDLEFS_RETURN_IF_ERROR(check_not_ancestor(dd->ino, sp));
    }

    const int64_t now = NowNs();
    if (flags & kRenameExchange) {
      // Swap the two entries' targets; cookies stay with the names.
      DentryValue new_s{dd->ino, dd->type, sd->cookie};
      DentryValue new_d{sd->ino, sd->type, dd->cookie};
      NEEDLEFS_RETURN_IF_ERROR(t.Put(meta_keys::Dentry(sp, sn), new_s.Encode()));
      NEEDLEFS_RETURN_IF_ERROR(t.Put(meta_keys::Dentry(dp, dn), new_d.Encode()));
      if (sp != dp) {
        if (src_is_dir) {
          src->parent = dp;
          src_dir->attr.nlink -= 1;
          dst_dir->attr.nlink += 1;
        }
        if (dst_is_dir) {
          dst->parent = sp;
          dst_dir->attr.nlink -= 1;
          src_dir->attr.nlink += 1;
        }
      }
      src->attr.ctime_ns = dst->attr.ctime_ns = now;
      src_dir->attr.mtime_ns = src_dir->attr.ctime_ns = now;
      dst_dir->attr.mtime_ns = dst_dir->attr.ctime_ns = now;
      record_after();
      return tx.Flush();
    }

    if (dst) {
      if (src_is_dir && !dst_is_dir) return Status::Posix(ENOTDIR, dn);
      if (!src_is_dir && dst_is_dir) return Status::Posix(EISDIR, dn);
      if (dst_is_dir) {
        NEEDLEFS_ASSIGN_OR_RETURN(bool empty, tx.DirEmpty(dd->ino));
        if (!empty) return Status::Posix(ENOTEMPTY, dn);
        dst_dir->attr.nlink -= 1;  // the replaced directory's ".."
      }
      NEEDLEFS_RETURN_IF_ERROR(tx.RemoveEntry(dst_dir, dn, *dd, now));
      NEEDLEFS_RETURN_IF_ERROR(tx.DropLink(dst, now, &garbage_seq_));
    }
    NEEDLEFS_RETURN_IF_ERROR(tx.RemoveEntry(src_dir, sn, *sd, now));
    NEEDLEFS_RETURN_IF_ERROR(tx.AddEntry(dst_dir, dn, sd->ino, sd->type, now));
    if (src_is_dir && sp != dp) {
      src->parent = dp;
      src_dir->attr.nlink -= 1;
      dst_dir->attr.nlink += 1;
    }
    src->attr.ctime_ns = now;
    record_after();
    return tx.Flush();
  });
}

}  // namespace needlefs
