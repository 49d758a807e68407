// The NFSv3 procedures on directories and the file system (RFC 1813
// sections 3.3.16 to 3.3.21): READDIR, READDIRPLUS, FSSTAT, FSINFO,
// PATHCONF, COMMIT.
#include "nfsd/internal/nfs3_xdr.h"

namespace needlefs::nfsd {
namespace {

/// "." and ".." (cookies 1 and 2) of `dir`, then its entries after
/// `cookie`; `add(fileid, name, cookie, attr)` returns false when the reply
/// is full. *eof: every entry was added.
template <typename Add>
Status ListDir(Nfs3Call& c, InodeId dir, uint64_t cookie, size_t want, bool plus, bool* eof,
               Add&& add) {
  *eof = false;
  if (cookie < 1) {
    if (!add(dir.value, ".", 1, std::optional<InodeAttr>())) return Status::OK();
  }
  if (cookie < 2) {
    uint64_t parent = dir.value;
    if (dir != c.ExportRoot()) {
      auto p = c.fs().Lookup(c.ctx(), dir, "..");
      if (p.ok()) parent = p->ino.value;
    }
    if (!add(parent, "..", 2, std::optional<InodeAttr>())) return Status::OK();
    cookie = 2;
  }
  auto r = c.fs().ReadDir(c.ctx(), dir, cookie, want, plus);
  if (!r.ok()) return r.status();
  for (DirEntry& d : r->entries) {
    if (!add(d.ino.value, d.name, d.cookie, d.attr)) return Status::OK();
  }
  *eof = r->eof;
  return Status::OK();
}

/// The `count` (READDIR) or `maxcount` (READDIRPLUS) of a call, capped by
/// what `peer`'s transport carries, for sizing the reply buffer; 0 when
/// the arguments do not decode.
template <typename A>
size_t ReplyBudget(const RpcCall& call, const Peer& peer, XdrFn<A> xa, uint32_t A::*field) {
  A peek;
  const bool ok = Decode(call.args, xa, &peek);
  const size_t n = ok ? std::min<size_t>(peek.*field, MaxIo(peer)) : 0;
  Free(xa, &peek);
  return n;
}

/// XDR bytes of an entryplus3 with `name`, attributes and a handle.
size_t EntryPlusBytes(size_t name) { return EntryBytes(name) + 4 + 84 + 4 + 4 + kFileHandleBytes; }

}  // namespace

std::string ProcReaddir(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  const size_t count = ReplyBudget(call, peer, xdr_READDIR3args, &READDIR3args::count);
  return Proc(svc, call, peer, xdr_READDIR3args, xdr_READDIR3res, count + kReplySlack,
              [count](Nfs3Call& c, READDIR3args& a, READDIR3res* r, Scratch* s) {
                InodeId dir;
                if ((r->status = c.Resolve(a.dir, &dir)) != NFS3_OK) return;
                READDIR3resok& ok = r->READDIR3res_u.resok;
                // The cookie verifier never changes: namespace cookies stay valid
                // through inserts and deletes, so a client never gets BAD_COOKIE
                // for a directory that changed (knfsd does the same).
                std::memset(ok.cookieverf, 0, sizeof(ok.cookieverf));
                size_t used = 4 + 4 + 84 + 8 + 4 + 4;  // status, dir attrs, verifier, end, eof
                entry3* prev = nullptr;
                bool eof = false;
                Status st = ListDir(c, dir, a.cookie, std::max<size_t>(8, count / 32), false, &eof,
                                    [&](uint64_t fileid, const std::string& name, uint64_t cookie,
                                        const std::optional<InodeAttr>&) {
                                      const size_t need = EntryBytes(name.size());
                                      if (used + need > count) return false;
                                      used += need;
                                      entry3& e = s->entries.emplace_back();
                                      e.fileid = fileid;
                                      e.name = s->Keep(name);
                                      e.cookie = cookie;
                                      e.nextentry = nullptr;
                                      (prev ? prev->nextentry : ok.reply.entries) = &e;
                                      prev = &e;
                                      return true;
                                    });
                if (!st.ok()) {
                  r->status = StatOf(st);
                  return;
                }
                if (!ok.reply.entries && !eof) r->status = NFS3ERR_TOOSMALL;
                ok.reply.eof = eof;
              });
}

std::string ProcReaddirplus(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  const size_t maxcount =
      ReplyBudget(call, peer, xdr_READDIRPLUS3args, &READDIRPLUS3args::maxcount);
  return Proc(svc, call, peer, xdr_READDIRPLUS3args, xdr_READDIRPLUS3res, maxcount + kReplySlack,
              [maxcount](Nfs3Call& c, READDIRPLUS3args& a, READDIRPLUS3res* r, Scratch* s) {
                InodeId dir;
                if ((r->status = c.Resolve(a.dir, &dir)) != NFS3_OK) return;
                READDIRPLUS3resok& ok = r->READDIRPLUS3res_u.resok;
                std::memset(ok.cookieverf, 0, sizeof(ok.cookieverf));
                // dircount: the bytes of names, ids and cookies; maxcount: all.
                const size_t dircount = std::min<size_t>(a.dircount, c.max_io());
                size_t used = 4 + 4 + 84 + 8 + 4 + 4, dir_used = 0;
                entryplus3* prev = nullptr;
                bool eof = false;
                Status st =
                    ListDir(c, dir, a.cookie, std::max<size_t>(8, maxcount / 160), true, &eof,
                            [&](uint64_t fileid, const std::string& name, uint64_t cookie,
                                const std::optional<InodeAttr>& attr) {
                              const size_t need = EntryPlusBytes(name.size());
                              const size_t dir_need = 8 + 4 + ((name.size() + 3) & ~size_t{3}) + 8;
                              if (used + need > maxcount ||
                                  (dircount > 0 && dir_used + dir_need > dircount)) {
                                return false;
                              }
                              used += need;
                              dir_used += dir_need;
                              entryplus3& e = s->plus_entries.emplace_back();
                              std::memset(&e, 0, sizeof(e));
                              e.fileid = fileid;
                              e.name = s->Keep(name);
                              e.cookie = cookie;
                              // "." and ".." come without attributes and handle, and
                              // the root of another export without a handle: the
                              // client looks them up (and LOOKUP applies that
                              // export's rules).
                              if (attr) {
                                PostOp(attr, &e.name_attributes);
                                if (c.OtherExportRootedAt(*attr) < 0) {
                                  e.name_handle.handle_follows = TRUE;
                                  SetFh(c.HandleOf(*attr), &e.name_handle.post_op_fh3_u.handle, s);
                                }
                              }
                              (prev ? prev->nextentry : ok.reply.entries) = &e;
                              prev = &e;
                              return true;
                            });
                if (!st.ok()) {
                  r->status = StatOf(st);
                  return;
                }
                if (!ok.reply.entries && !eof) r->status = NFS3ERR_TOOSMALL;
                ok.reply.eof = eof;
              });
}

std::string ProcFsstat(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_FSSTAT3args, xdr_FSSTAT3res, kSmall,
              [](Nfs3Call& c, FSSTAT3args& a, FSSTAT3res* r, Scratch*) {
                InodeId ino;
                if ((r->status = c.Resolve(a.fsroot, &ino)) != NFS3_OK) return;
                auto fs = c.fs().StatFs();
                if (!fs.ok()) {
                  r->status = StatOf(fs.status());
                  return;
                }
                FSSTAT3resok& ok = r->FSSTAT3res_u.resok;
                ok.tbytes = fs->capacity_bytes;
                ok.fbytes = ok.abytes = fs->capacity_bytes - fs->used_bytes;
                ok.tfiles = fs->inodes_used + fs->inodes_free;
                ok.ffiles = ok.afiles = fs->inodes_free;
                ok.invarsec = 0;
              });
}

std::string ProcFsinfo(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_FSINFO3args, xdr_FSINFO3res, kSmall,
              [](Nfs3Call& c, FSINFO3args& a, FSINFO3res* r, Scratch*) {
                InodeId ino;
                if ((r->status = c.Resolve(a.fsroot, &ino)) != NFS3_OK) return;
                auto attr = c.fs().GetAttr(ino);
                FSINFO3resok& ok = r->FSINFO3res_u.resok;
                if (attr.ok()) PostOp(*attr, &ok.obj_attributes);
                ok.rtmax = ok.rtpref = ok.wtmax = ok.wtpref = c.max_io();
                ok.rtmult = ok.wtmult = 4096;
                ok.dtpref = std::min<uint32_t>(64 << 10, c.max_io());
                ok.maxfilesize = 1ull << 62;
                ok.time_delta.seconds = 0;
                ok.time_delta.nseconds = 1;
                ok.properties = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
              });
}

std::string ProcPathconf(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_PATHCONF3args, xdr_PATHCONF3res, kSmall,
              [](Nfs3Call& c, PATHCONF3args& a, PATHCONF3res* r, Scratch*) {
                InodeId ino;
                if ((r->status = c.Resolve(a.object, &ino)) != NFS3_OK) return;
                PATHCONF3resok& ok = r->PATHCONF3res_u.resok;
                ok.linkmax = 65000;
                ok.name_max = kMaxNameBytes;
                ok.no_trunc = TRUE;  // longer names are ENAMETOOLONG
                ok.chown_restricted = TRUE;
                ok.case_insensitive = FALSE;
                ok.case_preserving = TRUE;
              });
}

std::string ProcCommit(Nfs3Service* svc, const RpcCall& call, const Peer& peer) {
  return Proc(svc, call, peer, xdr_COMMIT3args, xdr_COMMIT3res, kSmall,
              [](Nfs3Call& c, COMMIT3args& a, COMMIT3res* r, Scratch*) {
                InodeId ino;
                if ((r->status = c.Resolve(a.file, &ino)) != NFS3_OK) return;
                // Every buffered write of the file, durable on every replica
                // and in meta (the whole file: offset and count are hints).
                Status st = c.fs().Fsync(ino);
                if (!st.ok()) {
                  r->status = StatOfTarget(st);
                  return;
                }
                PutVerifier(c.fs().write_verifier(), r->COMMIT3res_u.resok.verf);
              });
}

}  // namespace needlefs::nfsd
