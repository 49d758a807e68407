// The XDR plumbing and translations the NFSv3 procedures share (private to
// src/nfsd): decoding arguments and encoding results with the rpcgen
// routines of xdr/nfs3.x, errno -> nfsstat3 (RFC 1813 section 2.6), fattr3,
// wcc_data, sattr3, the handle and identity of a call (Nfs3Call), and Proc,
// which runs one procedure. Include only from the procedure files.
#pragma once

#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <string>

#include "common/logging.h"
#include "nfsd/internal/nfs3_service.h"
#include "xdr/nfs3.h"

namespace needlefs::nfsd {

/// FSID of every export (the namespace is one file system).
inline constexpr uint64_t kFsid = 0x4e45454446530001ull;  // "NEEDFS" 1
/// Bytes a reply may take besides READ data or READDIR entries.
inline constexpr size_t kReplySlack = 1024;

// ---- XDR plumbing ----

template <typename T>
using XdrFn = bool_t (*)(XDR*, T*);

template <typename T>
inline bool Decode(std::string_view args, XdrFn<T> fn, T* out) {
  std::memset(out, 0, sizeof(T));
  XDR x;
  xdrmem_create(&x, const_cast<char*>(args.data()), static_cast<u_int>(args.size()), XDR_DECODE);
  const bool ok = fn(&x, out);
  xdr_destroy(&x);
  return ok;
}

template <typename T>
inline void Free(XdrFn<T> fn, T* v) {
  xdr_free(reinterpret_cast<xdrproc_t>(fn), reinterpret_cast<char*>(v));
}

template <typename T>
inline std::string Encode(uint32_t xid, XdrFn<T> fn, T* res, size_t cap) {
  std::string out(kAcceptedReplyHeaderBytes + cap, '\0');
  AcceptedReplyHeader(xid, kSuccess, out.data());
  XDR x;
  xdrmem_create(&x, out.data() + kAcceptedReplyHeaderBytes, static_cast<u_int>(cap), XDR_ENCODE);
  const bool ok = fn(&x, res);
  const size_t used = xdr_getpos(&x);
  xdr_destroy(&x);
  if (!ok) {
    spdlog::error("nfsd.encode xid={}: reply over {} bytes", xid, cap);
    return AcceptedReply(xid, kSystemErr);
  }
  out.resize(kAcceptedReplyHeaderBytes + used);
  return out;
}

/// Memory a result points into, alive until it is encoded.
struct Scratch {
  std::deque<std::string> strings;
  std::deque<entry3> entries;
  std::deque<entryplus3> plus_entries;
  char* Keep(std::string s) {
    strings.push_back(std::move(s));
    return strings.back().data();
  }
};

// ---- translations ----

inline nfsstat3 StatOf(const Status& s) {
  switch (s.posix_errno()) {
    case 0:
      break;
    case EPERM:
      return NFS3ERR_PERM;
    case ENOENT:
      return NFS3ERR_NOENT;
    case ENXIO:
      return NFS3ERR_NXIO;
    case EACCES:
      return NFS3ERR_ACCES;
    case EEXIST:
      return NFS3ERR_EXIST;
    case EXDEV:
      return NFS3ERR_XDEV;
    case ENODEV:
      return NFS3ERR_NODEV;
    case ENOTDIR:
      return NFS3ERR_NOTDIR;
    case EISDIR:
      return NFS3ERR_ISDIR;
    case EINVAL:
      return NFS3ERR_INVAL;
    case EFBIG:
      return NFS3ERR_FBIG;
    case ENOSPC:
      return NFS3ERR_NOSPC;
    case EROFS:
      return NFS3ERR_ROFS;
    case EMLINK:
      return NFS3ERR_MLINK;
    case ENAMETOOLONG:
      return NFS3ERR_NAMETOOLONG;
    case ENOTEMPTY:
      return NFS3ERR_NOTEMPTY;
    case EDQUOT:
      return NFS3ERR_DQUOT;
    case ESTALE:
      return NFS3ERR_STALE;
    case EOPNOTSUPP:
      return NFS3ERR_NOTSUPP;
    case EAGAIN:
      return NFS3ERR_JUKEBOX;
    default:
      return NFS3ERR_IO;
  }
  switch (s.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kResourceExhausted:
      return NFS3ERR_JUKEBOX;  // meta or a volume is briefly away: the client retries
    default:
      return NFS3ERR_SERVERFAULT;
  }
}

/// As StatOf, for a call whose target is the handle's own inode: a missing
/// inode is a stale handle.
inline nfsstat3 StatOfTarget(const Status& s) {
  return s.posix_errno() == ENOENT ? NFS3ERR_STALE : StatOf(s);
}

inline ftype3 TypeOf(FileType t) {
  switch (t) {
    case FileType::kRegular:
      return NF3REG;
    case FileType::kDirectory:
      return NF3DIR;
    case FileType::kSymlink:
      return NF3LNK;
    case FileType::kFifo:
      return NF3FIFO;
    case FileType::kSocket:
      return NF3SOCK;
    case FileType::kCharDevice:
      return NF3CHR;
    case FileType::kBlockDevice:
      return NF3BLK;
  }
  return NF3REG;
}

/// ns since the epoch as nfstime3: before 1970 is 0, after 2106 the last
/// second nfstime3 holds (clamped, never wrapped).
inline nfstime3 TimeOf(int64_t ns) {
  nfstime3 t;
  if (ns <= 0) {
    t.seconds = 0;
    t.nseconds = 0;
  } else if (ns / 1'000'000'000 > 0xffffffffLL) {
    t.seconds = 0xffffffffu;
    t.nseconds = 999'999'999;
  } else {
    t.seconds = static_cast<uint32>(ns / 1'000'000'000);
    t.nseconds = static_cast<uint32>(ns % 1'000'000'000);
  }
  return t;
}

inline int64_t NsOf(const nfstime3& t) {
  return static_cast<int64_t>(t.seconds) * 1'000'000'000 + t.nseconds;
}

inline void FillFattr(const InodeAttr& a, fattr3* f) {
  f->type = TypeOf(a.type);
  f->mode = a.mode & 07777;
  f->nlink = a.nlink;
  f->uid = a.uid;
  f->gid = a.gid;
  f->size = a.size;
  f->used = (a.size + 4095) & ~uint64_t{4095};
  f->rdev.specdata1 = major(a.rdev);
  f->rdev.specdata2 = minor(a.rdev);
  f->fsid = kFsid;
  f->fileid = a.ino.value;
  f->atime = TimeOf(a.atime_ns);
  f->mtime = TimeOf(a.mtime_ns);
  f->ctime = TimeOf(a.ctime_ns);
}

inline void PostOp(const std::optional<InodeAttr>& a, post_op_attr* p) {
  p->attributes_follow = a.has_value();
  if (a) FillFattr(*a, &p->post_op_attr_u.attributes);
}

inline void Wcc(const WccAttr& w, wcc_data* d) {
  d->before.attributes_follow = w.before.has_value();
  if (w.before) {
    wcc_attr& b = d->before.pre_op_attr_u.attributes;
    b.size = w.before->size;
    b.mtime = TimeOf(w.before->mtime_ns);
    b.ctime = TimeOf(w.before->ctime_ns);
  }
  PostOp(w.after, &d->after);
}

inline std::string_view Bytes(const nfs_fh3& fh) {
  return std::string_view(fh.data.data_val, fh.data.data_len);
}

inline void SetFh(const std::string& bytes, nfs_fh3* fh, Scratch* s) {
  fh->data.data_len = static_cast<u_int>(bytes.size());
  fh->data.data_val = s->Keep(bytes);
}

/// sattr3 as a SetAttrRequest; `skip_mode` when the mode was applied
/// already (CREATE, MKDIR).
inline SetAttrRequest FromSattr(const sattr3& s, bool skip_mode = false) {
  SetAttrRequest r;
  if (s.mode.set_it && !skip_mode) r.mode = s.mode.set_mode3_u.mode & 07777;
  if (s.uid.set_it) r.uid = s.uid.set_uid3_u.uid;
  if (s.gid.set_it) r.gid = s.gid.set_gid3_u.gid;
  if (s.size.set_it) r.size = s.size.set_size3_u.size;
  if (s.atime.set_it == SET_TO_SERVER_TIME) r.atime_now = true;
  if (s.atime.set_it == SET_TO_CLIENT_TIME) r.atime_ns = NsOf(s.atime.set_atime_u.atime);
  if (s.mtime.set_it == SET_TO_SERVER_TIME) r.mtime_now = true;
  if (s.mtime.set_it == SET_TO_CLIENT_TIME) r.mtime_ns = NsOf(s.mtime.set_mtime_u.mtime);
  return r;
}

inline bool Empty(const SetAttrRequest& r) {
  return !r.mode && !r.uid && !r.gid && !r.size && !r.atime_ns && !r.mtime_ns && !r.atime_now &&
         !r.mtime_now;
}

inline void PutVerifier(uint64_t v, char out[8]) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

inline uint64_t GetVerifier(const char in[8]) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

/// XDR bytes of an entry3 with `name` (value-follows flag included).
inline size_t EntryBytes(size_t name) { return 4 + 8 + 4 + ((name + 3) & ~size_t{3}) + 8; }

/// What every procedure does first with its handle(s) and identity.
class Nfs3Call {
 public:
  Nfs3Call(Nfs3Service* svc, const RpcCall& call, const Peer& peer)
      : svc_(svc), call_(call), peer_(peer) {}

  /// The handle's inode and the identity the call runs as; an error status
  /// (BADHANDLE, STALE, ACCES) otherwise.
  nfsstat3 Resolve(const nfs_fh3& fh, InodeId* ino, FileHandle* out = nullptr) {
    auto h = svc_->handles().Decode(Bytes(fh));
    if (!h) return NFS3ERR_BADHANDLE;
    const Exports& ex = svc_->exports();
    if (h->export_id >= ex.list.size()) return NFS3ERR_STALE;
    const Export& e = ex.list[h->export_id];
    if (!e.Allows(peer_.address, peer_.port)) return NFS3ERR_ACCES;
    if (exp_ != nullptr && exp_ != &e) return NFS3ERR_XDEV;  // two handles, two exports
    exp_ = &e;
    export_id_ = h->export_id;
    if (call_.flavor == kAuthSys) {
      ctx_ = e.Identity(call_.sys.uid, call_.sys.gid, call_.sys.gids);
    } else {  // AUTH_NONE: the anonymous identity
      ctx_ = RequestContext();
      ctx_.uid = e.anon_uid;
      ctx_.gid = e.anon_gid;
    }
    *ino = h->ino;
    if (out) *out = *h;
    return NFS3_OK;
  }

  /// A handle for `a` in the call's export.
  std::string HandleOf(const InodeAttr& a) const {
    FileHandle h;
    h.export_id = export_id_;
    h.ino = a.ino;
    h.generation = a.generation;
    return svc_->handles().Encode(h);
  }

  bool ReadOnly() const { return exp_ != nullptr && exp_->read_only; }
  /// Resolve for a call that changes something: also ROFS on a read-only
  /// export.
  nfsstat3 ResolveForChange(const nfs_fh3& fh, InodeId* ino) {
    const nfsstat3 st = Resolve(fh, ino);
    if (st == NFS3_OK && ReadOnly()) return NFS3ERR_ROFS;
    return st;
  }
  const RequestContext& ctx() const { return ctx_; }
  /// The largest READ or WRITE this call's transport carries, bytes.
  uint32_t max_io() const { return MaxIo(peer_); }
  FileSystem& fs() { return *svc_->fs(); }
  Nfs3Service* svc() { return svc_; }
  uint32_t xid() const { return call_.xid; }
  /// The export's root inode.
  InodeId ExportRoot() {
    if (exp_ == nullptr || exp_->path == "/") return fs().root();
    const InodeId root = svc_->ExportRoots()[export_id_];
    return root.value != 0 ? root : fs().root();
  }
  /// The handle LOOKUP gives for `a`, found in this call's export: a
  /// directory that is the root of another export (below this one) belongs
  /// to that export, whose rules then apply (NFS3ERR_ACCES when it does not
  /// allow this client). Sets *fh.
  nfsstat3 CrossInto(const InodeAttr& a, std::string* fh) {
    const int other = OtherExportRootedAt(a);
    if (other < 0) {
      *fh = HandleOf(a);
      return NFS3_OK;
    }
    if (!svc_->exports().list[other].Allows(peer_.address, peer_.port)) return NFS3ERR_ACCES;
    FileHandle h;
    h.export_id = static_cast<uint8_t>(other);
    h.ino = a.ino;
    h.generation = a.generation;
    *fh = svc_->handles().Encode(h);
    return NFS3_OK;
  }
  /// The id of another export whose root `a` is, or -1.
  int OtherExportRootedAt(const InodeAttr& a) {
    if (svc_->exports().list.size() < 2 || a.type != FileType::kDirectory) return -1;
    const std::vector<InodeId> roots = svc_->ExportRoots();
    for (size_t i = 0; i < roots.size(); ++i) {
      if (i != export_id_ && roots[i] == a.ino) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  Nfs3Service* svc_;
  const RpcCall& call_;
  const Peer& peer_;
  const Export* exp_ = nullptr;
  uint8_t export_id_ = 0;
  RequestContext ctx_;
};

/// Runs one procedure: decode, `run(call, args, res, scratch)`, encode.
template <typename A, typename R, typename Run>
inline std::string Proc(Nfs3Service* svc, const RpcCall& call, const Peer& peer, XdrFn<A> xa,
                        XdrFn<R> xr, size_t cap, Run&& run) {
  A args;
  if (!Decode(call.args, xa, &args)) {
    Free(xa, &args);
    return AcceptedReply(call.xid, kGarbageArgs);
  }
  R res;
  std::memset(&res, 0, sizeof(res));
  Scratch scratch;
  Nfs3Call c(svc, call, peer);
  run(c, args, &res, &scratch);
  if (res.status != NFS3_OK) svc->CountError(call.proc);
  std::string out = Encode(call.xid, xr, &res, cap);
  Free(xa, &args);
  return out;
}

inline constexpr size_t kSmall = 4096 + kReplySlack;

// The procedures, by file: nfs3_procs.cc (attributes and names),
// nfs3_dir_procs.cc (directories, the file system, COMMIT).
std::string ProcGetattr(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcSetattr(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcLookup(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcAccess(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcReadlink(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcRead(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcWrite(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcCreate(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcMkdir(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcSymlink(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcMknod(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcRemove(Nfs3Service* svc, const RpcCall& call, const Peer& peer, bool rmdir);
std::string ProcRename(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcLink(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcReaddir(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcReaddirplus(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcFsstat(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcFsinfo(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcPathconf(Nfs3Service* svc, const RpcCall& call, const Peer& peer);
std::string ProcCommit(Nfs3Service* svc, const RpcCall& call, const Peer& peer);

}  // namespace needlefs::nfsd
