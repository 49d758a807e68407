// The NFSv3 procedures on attributes and names (RFC 1813 sections 3.3.1 to
// 3.3.15): each decodes its arguments, makes one or two FileSystem calls and
// encodes the result; no rule of permissions, consistency or caching lives
// here (client/file_system.h has them).
#include "nfsd/internal/nfs3_xdr.h"

namespace needlefs::nfsd {
namespace {

/// CREATE3resok for a new object (handle and attributes) with dir_wcc.
void NewObject(Nfs3Call& c, const StatusOr<InodeAttr>& a, const ChangeInfo& info, nfsstat3* status,
               CREATE3resok* ok, CREATE3resfail* fail, Scratch* s) {
  if (!a.ok()) {
    *status = StatOf(a.status());
    Wcc(info.dir, &fail->dir_wcc);
    return;
  }
  ok->obj.handle_follows = TRUE;
  SetFh(c.HandleOf(*a), &ok->obj.post_op_fh3_u.handle, s);
  PostOp(*a, &ok->obj_attributes);
  Wcc(info.dir, &ok->dir_wcc);
}

/// Applies what `sattr` sets beyond the mode (CREATE and MKDIR set it):
/// the new object's attributes after.
StatusOr<InodeAttr> ApplyRest(Nfs3Call& c, StatusOr<InodeAttr> a, const sattr3& sattr,
                              bool only_size = false) {
  if (!a.ok()) return a;
  SetAttrRequest rest = FromSattr(sattr, /*skip_mode=*/true);
  if (only_size) {
    SetAttrRequest size_only;
    size_only.size = rest.size;
    rest = size_only;
  } else {
    // A file this call made is empty, owned by the caller and stamped now:
    // what restates that (libnfs sends size 0 with every create, Linux the
    // caller's own uid and gid) costs no second transaction.
    if (rest.size == 0 && a->size == 0) rest.size.reset();
    if (rest.uid == a->uid) rest.uid.reset();
    if (rest.gid == a->gid) rest.gid.reset();
  }
  if (Empty(rest)) return a;
  return c.fs().SetAttr(c.ctx(), a->ino, rest);
}

}  // namespace

std::string ProcGetattr(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_GETATTR3args, xdr_GETATTR3res, kSmall,
              [](Nfs3Call& c, GETATTR3args& a, GETATTR3res* r, Scratch*) {
                InodeId ino;
                FileHandle h;
                if ((r->status = c.Resolve(a.object, &ino, &h)) != NFS3_OK) return;
                auto attr = c.fs().GetAttrChecked(ino, h.generation);
                if (!attr.ok()) {
                  r->status = StatOfTarget(attr.status());
                  return;
                }
                FillFattr(*attr, &r->GETATTR3res_u.resok.obj_attributes);
              });
}

std::string ProcSetattr(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_SETATTR3args, xdr_SETATTR3res, kSmall,
              [](Nfs3Call& c, SETATTR3args& a, SETATTR3res* r, Scratch*) {
                InodeId ino;
                if ((r->status = c.ResolveForChange(a.object, &ino)) != NFS3_OK) return;
                wcc_data* wcc = &r->SETATTR3res_u.resfail.obj_wcc;  // resok has the same shape
                if (a.guard.check) {
                  auto cur = c.fs().GetAttr(ino);
                  if (!cur.ok()) {
                    r->status = StatOfTarget(cur.status());
                    return;
                  }
                  const nfstime3 ct = TimeOf(cur->ctime_ns);
                  const nfstime3& want = a.guard.sattrguard3_u.obj_ctime;
                  if (ct.seconds != want.seconds || ct.nseconds != want.nseconds) {
                    r->status = NFS3ERR_NOT_SYNC;
                    Wcc(WccAttr{cur.value(), cur.value()}, wcc);
                    return;
                  }
                }
                const SetAttrRequest req = FromSattr(a.new_attributes);
                if (Empty(req)) {
                  auto cur = c.fs().GetAttr(ino);
                  if (!cur.ok()) {
                    r->status = StatOfTarget(cur.status());
                    return;
                  }
                  Wcc(WccAttr{cur.value(), cur.value()}, wcc);
                  return;
                }
                ChangeInfo info;
                auto s = c.fs().SetAttr(c.ctx(), ino, req, 0, &info);
                if (!s.ok()) r->status = StatOfTarget(s.status());
                if (s.ok() && !info.inode.after) info.inode.after = *s;
                Wcc(info.inode, wcc);
              });
}

std::string ProcLookup(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_LOOKUP3args, xdr_LOOKUP3res, kSmall,
              [](Nfs3Call& c, LOOKUP3args& a, LOOKUP3res* r, Scratch* s) {
                InodeId dir;
                if ((r->status = c.Resolve(a.what.dir, &dir)) != NFS3_OK) return;
                const std::string name = a.what.name ? a.what.name : "";
                StatusOr<InodeAttr> found = Status::Posix(ENOENT, name);
                // ".." of the export's root stays in it: a handle never
                // leads out of its export.
                if (name == ".." && dir == c.ExportRoot()) {
                  found = c.fs().GetAttr(dir);
                } else {
                  found = c.fs().Lookup(c.ctx(), dir, name);
                }
                if (!found.ok()) {
                  r->status = StatOf(found.status());
                  return;
                }
                std::string fh;
                if ((r->status = c.CrossInto(*found, &fh)) != NFS3_OK) return;
                LOOKUP3resok& ok = r->LOOKUP3res_u.resok;
                SetFh(fh, &ok.object, s);
                PostOp(*found, &ok.obj_attributes);
              });
}

std::string ProcAccess(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_ACCESS3args, xdr_ACCESS3res, kSmall,
              [](Nfs3Call& c, ACCESS3args& a, ACCESS3res* r, Scratch*) {
                InodeId ino;
                FileHandle h;
                if ((r->status = c.Resolve(a.object, &ino, &h)) != NFS3_OK) return;
                auto attr = c.fs().GetAttrChecked(ino, h.generation);
                if (!attr.ok()) {
                  r->status = StatOfTarget(attr.status());
                  return;
                }
                auto may = [&](int m) { return MayAccess(c.ctx(), *attr, m); };
                const bool dir = attr->type == FileType::kDirectory;
                uint32_t ok = 0;
                if (may(R_OK)) ok |= ACCESS3_READ;
                if (!c.ReadOnly() && may(W_OK)) {
                  ok |= ACCESS3_MODIFY | ACCESS3_EXTEND | (dir ? ACCESS3_DELETE : 0);
                }
                if (may(X_OK)) ok |= dir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE;
                r->ACCESS3res_u.resok.access = a.access & ok;
                PostOp(*attr, &r->ACCESS3res_u.resok.obj_attributes);
              });
}

std::string ProcReadlink(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_READLINK3args, xdr_READLINK3res, 2 * kSmall,
              [](Nfs3Call& c, READLINK3args& a, READLINK3res* r, Scratch* s) {
                InodeId ino;
                if ((r->status = c.Resolve(a.symlink, &ino)) != NFS3_OK) return;
                auto t = c.fs().Readlink(ino);
                if (!t.ok()) {
                  r->status = StatOfTarget(t.status());
                  return;
                }
                r->READLINK3res_u.resok.data = s->Keep(*t);
              });
}

std::string ProcRead(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_READ3args, xdr_READ3res, MaxIo(peer) + kReplySlack,
              [](Nfs3Call& c, READ3args& a, READ3res* r, Scratch* s) {
                InodeId ino;
                if ((r->status = c.Resolve(a.file, &ino)) != NFS3_OK) return;
                const uint32_t count = std::min(a.count, c.max_io());
                auto data = c.fs().Read(c.ctx(), ino, a.offset, count);
                if (!data.ok()) {
                  r->status = StatOfTarget(data.status());
                  return;
                }
                READ3resok& ok = r->READ3res_u.resok;
                ok.count = static_cast<count3>(data->size());
                // Shorter than asked only at the end (FileSystem::Read).
                ok.eof = data->size() < count;
                ok.data.data_len = static_cast<u_int>(data->size());
                ok.data.data_val = s->Keep(std::move(data).value());
              });
}

std::string ProcWrite(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_WRITE3args, xdr_WRITE3res, kSmall,
              [](Nfs3Call& c, WRITE3args& a, WRITE3res* r, Scratch*) {
                InodeId ino;
                if ((r->status = c.ResolveForChange(a.file, &ino)) != NFS3_OK) return;
                if (a.data.data_len < a.count) {
                  r->status = NFS3ERR_INVAL;
                  return;
                }
                const std::string_view data(a.data.data_val, a.count);
                Status st = c.fs().Write(c.ctx(), ino, a.offset, data);
                // DATA_SYNC and FILE_SYNC: durable on every replica and in
                // meta before the reply (RFC 1813 section 3.3.7).
                if (st.ok() && a.stable != UNSTABLE) st = c.fs().Fsync(ino);
                if (!st.ok()) {
                  r->status = StatOfTarget(st);
                  return;
                }
                WRITE3resok& ok = r->WRITE3res_u.resok;
                ok.count = a.count;
                ok.committed = a.stable == UNSTABLE ? UNSTABLE : FILE_SYNC;
                PutVerifier(c.fs().write_verifier(), ok.verf);
              });
}

std::string ProcCreate(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(
      svc, call, peer, xdr_CREATE3args, xdr_CREATE3res, kSmall,
      [](Nfs3Call& c, CREATE3args& a, CREATE3res* r, Scratch* s) {
        InodeId dir;
        if ((r->status = c.ResolveForChange(a.where.dir, &dir)) != NFS3_OK) return;
        const std::string name = a.where.name ? a.where.name : "";
        ChangeInfo info;
        bool created = false;
        StatusOr<InodeAttr> made = Status::Posix(EINVAL, "create mode");
        if (a.how.mode == EXCLUSIVE) {
          made = c.fs().CreateFile(c.ctx(), dir, name, 0600, CreateHow::kExclusive,
                                   GetVerifier(a.how.createhow3_u.verf), &created, &info);
        } else {
          const sattr3& sa = a.how.createhow3_u.obj_attributes;
          const uint32_t mode = sa.mode.set_it ? sa.mode.set_mode3_u.mode & 07777 : 0644;
          made =
              c.fs().CreateFile(c.ctx(), dir, name, mode,
                                a.how.mode == GUARDED ? CreateHow::kGuarded : CreateHow::kUnchecked,
                                0, &created, &info);
          // A new file takes every attribute asked; an existing
          // one (UNCHECKED) only the size (O_TRUNC).
          made = ApplyRest(c, std::move(made), sa, /*only_size=*/!created);
        }
        NewObject(c, made, info, &r->status, &r->CREATE3res_u.resok, &r->CREATE3res_u.resfail, s);
      });
}

std::string ProcMkdir(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(
      svc, call, peer, xdr_MKDIR3args, xdr_MKDIR3res, kSmall,
      [](Nfs3Call& c, MKDIR3args& a, MKDIR3res* r, Scratch* s) {
        InodeId dir;
        if ((r->status = c.ResolveForChange(a.where.dir, &dir)) != NFS3_OK) return;
        const sattr3& sa = a.attributes;
        const uint32_t mode = sa.mode.set_it ? sa.mode.set_mode3_u.mode & 07777 : 0755;
        ChangeInfo info;
        auto made = c.fs().Mkdir(c.ctx(), dir, a.where.name ? a.where.name : "", mode, &info);
        c.svc()->ExportPathMayHaveChanged(a.where.name ? a.where.name : "");
        made = ApplyRest(c, std::move(made), sa);
        NewObject(c, made, info, &r->status, &r->MKDIR3res_u.resok, &r->MKDIR3res_u.resfail, s);
      });
}

std::string ProcSymlink(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(
      svc, call, peer, xdr_SYMLINK3args, xdr_SYMLINK3res, kSmall,
      [](Nfs3Call& c, SYMLINK3args& a, SYMLINK3res* r, Scratch* s) {
        InodeId dir;
        if ((r->status = c.ResolveForChange(a.where.dir, &dir)) != NFS3_OK) return;
        ChangeInfo info;
        auto made = c.fs().Symlink(c.ctx(), dir, a.where.name ? a.where.name : "",
                                   a.symlink.symlink_data ? a.symlink.symlink_data : "", &info);
        NewObject(c, made, info, &r->status, &r->SYMLINK3res_u.resok, &r->SYMLINK3res_u.resfail, s);
      });
}

std::string ProcMknod(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(
      svc, call, peer, xdr_MKNOD3args, xdr_MKNOD3res, kSmall,
      [](Nfs3Call& c, MKNOD3args& a, MKNOD3res* r, Scratch* s) {
        InodeId dir;
        if ((r->status = c.ResolveForChange(a.where.dir, &dir)) != NFS3_OK) return;
        FileType type;
        const sattr3* sa;
        uint64_t rdev = 0;
        switch (a.what.type) {
          case NF3CHR:
          case NF3BLK:
            type = a.what.type == NF3CHR ? FileType::kCharDevice : FileType::kBlockDevice;
            sa = &a.what.mknoddata3_u.device.dev_attributes;
            rdev = makedev(a.what.mknoddata3_u.device.spec.specdata1,
                           a.what.mknoddata3_u.device.spec.specdata2);
            break;
          case NF3SOCK:
          case NF3FIFO:
            type = a.what.type == NF3SOCK ? FileType::kSocket : FileType::kFifo;
            sa = &a.what.mknoddata3_u.pipe_attributes;
            break;
          default:
            r->status = NFS3ERR_BADTYPE;
            return;
        }
        const uint32_t mode = sa->mode.set_it ? sa->mode.set_mode3_u.mode & 07777 : 0644;
        ChangeInfo info;
        auto made =
            c.fs().Mknod(c.ctx(), dir, a.where.name ? a.where.name : "", type, mode, rdev, &info);
        made = ApplyRest(c, std::move(made), *sa);
        NewObject(c, made, info, &r->status, &r->MKNOD3res_u.resok, &r->MKNOD3res_u.resfail, s);
      });
}

std::string ProcRemove(Nfs3Service* svc, const RpcCall& call, const Peer& peer, bool rmdir) {
  return Proc(svc, call, peer, xdr_REMOVE3args, xdr_REMOVE3res, kSmall,
              [rmdir](Nfs3Call& c, REMOVE3args& a, REMOVE3res* r, Scratch*) {
                InodeId dir;
                if ((r->status = c.ResolveForChange(a.object.dir, &dir)) != NFS3_OK) return;
                const std::string name = a.object.name ? a.object.name : "";
                ChangeInfo info;
                Status st = rmdir ? c.fs().Rmdir(c.ctx(), dir, name, &info)
                                  : c.fs().Unlink(c.ctx(), dir, name, &info);
                if (rmdir) c.svc()->ExportPathMayHaveChanged(name);
                r->status = st.ok() ? NFS3_OK : StatOf(st);
                Wcc(info.dir, &r->REMOVE3res_u.resok.dir_wcc);  // resfail: same shape
              });
}

std::string ProcRename(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_RENAME3args, xdr_RENAME3res, kSmall,
              [](Nfs3Call& c, RENAME3args& a, RENAME3res* r, Scratch*) {
                InodeId from, to;
                if ((r->status = c.Resolve(a.from.dir, &from)) != NFS3_OK) return;
                if ((r->status = c.ResolveForChange(a.to.dir, &to)) != NFS3_OK) return;
                ChangeInfo info;
                Status st = c.fs().Rename(c.ctx(), from, a.from.name ? a.from.name : "", to,
                                          a.to.name ? a.to.name : "", 0, &info);
                c.svc()->ExportPathMayHaveChanged(a.from.name ? a.from.name : "");
                c.svc()->ExportPathMayHaveChanged(a.to.name ? a.to.name : "");
                r->status = st.ok() ? NFS3_OK : StatOf(st);
                Wcc(info.dir, &r->RENAME3res_u.resok.fromdir_wcc);
                Wcc(info.to_dir, &r->RENAME3res_u.resok.todir_wcc);
              });
}

std::string ProcLink(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_LINK3args, xdr_LINK3res, kSmall,
              [](Nfs3Call& c, LINK3args& a, LINK3res* r, Scratch*) {
                InodeId file, dir;
                if ((r->status = c.Resolve(a.file, &file)) != NFS3_OK) return;
                if ((r->status = c.ResolveForChange(a.link.dir, &dir)) != NFS3_OK) return;
                ChangeInfo info;
                auto l = c.fs().Link(c.ctx(), file, dir, a.link.name ? a.link.name : "", &info);
                r->status = l.ok() ? NFS3_OK : StatOf(l.status());
                std::optional<InodeAttr> attrs;
                if (l.ok()) attrs = *l;
                PostOp(attrs, &r->LINK3res_u.resok.file_attributes);
                Wcc(info.dir, &r->LINK3res_u.resok.linkdir_wcc);
              });
}

}  // namespace needlefs::nfsd
