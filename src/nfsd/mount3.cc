// MOUNT version 3 (RFC 1813 Appendix I): MNT hands out the root handle of
// an export to an allowed client; EXPORT lists the exports; DUMP, UMNT and
// UMNTALL keep no state (a client that never unmounts leaves nothing
// behind), as Linux clients use them only as hints.
#include "xdr/mount3.h"

#include <cstring>
#include <deque>

#include "nfsd/internal/nfs3_service.h"

namespace needlefs::nfsd {
namespace {

template <typename T>
using XdrFn = bool_t (*)(XDR*, T*);

template <typename T>
std::string Reply(uint32_t xid, XdrFn<T> fn, T* res, size_t cap) {
  std::string out(kAcceptedReplyHeaderBytes + cap, '\0');
  AcceptedReplyHeader(xid, kSuccess, out.data());
  XDR x;
  xdrmem_create(&x, out.data() + kAcceptedReplyHeaderBytes, static_cast<u_int>(cap), XDR_ENCODE);
  const bool ok = fn(&x, res);
  const size_t used = xdr_getpos(&x);
  xdr_destroy(&x);
  if (!ok) return AcceptedReply(xid, kSystemErr);
  out.resize(kAcceptedReplyHeaderBytes + used);
  return out;
}

bool DecodePath(std::string_view args, std::string* path) {
  char* p = nullptr;
  XDR x;
  xdrmem_create(&x, const_cast<char*>(args.data()), static_cast<u_int>(args.size()), XDR_DECODE);
  const bool ok = xdr_dirpath(&x, &p);
  xdr_destroy(&x);
  if (ok && p) path->assign(p);
  xdr_free(reinterpret_cast<xdrproc_t>(xdr_dirpath), reinterpret_cast<char*>(&p));
  return ok;
}

/// Whether `path` is `export_path` or below it.
bool Under(const std::string& path, const std::string& export_path) {
  if (export_path == "/") return true;
  return path == export_path ||
         (path.size() > export_path.size() &&
          path.compare(0, export_path.size(), export_path) == 0 && path[export_path.size()] == '/');
}

}  // namespace

std::string Nfs3Service::Mount(const RpcCall& call, const Peer& peer) {
  switch (call.proc) {
    case MOUNTPROC3_NULL:
    case MOUNTPROC3_UMNT:
    case MOUNTPROC3_UMNTALL:
      return AcceptedReply(call.xid, kSuccess);
    case MOUNTPROC3_DUMP: {
      mountlist none = nullptr;
      return Reply(call.xid, xdr_mountlist, &none, 64);
    }
    case MOUNTPROC3_MNT: {
      std::string path;
      if (!DecodePath(call.args, &path)) return AcceptedReply(call.xid, kGarbageArgs);
      mountres3 res;
      std::memset(&res, 0, sizeof(res));
      // The longest export that holds the path decides (as mountd's
      // export table does): a rule written for a subtree is not bypassed by
      // one for a directory above it.
      int best = -1;
      for (size_t i = 0; i < exports_.list.size(); ++i) {
        if (!Under(path, exports_.list[i].path)) continue;
        if (best < 0 || exports_.list[i].path.size() > exports_.list[best].path.size()) {
          best = static_cast<int>(i);
        }
      }
      if (best < 0 || !exports_.list[best].Allows(peer.address, peer.port)) {
        res.fhs_status = best < 0 ? MNT3ERR_NOENT : MNT3ERR_ACCES;
        return Reply(call.xid, xdr_mountres3, &res, 64);
      }
      auto dir = fs_->ResolvePath(RequestContext::Root(), path);
      if (!dir.ok()) {
        const int e = dir.status().posix_errno();
        res.fhs_status = e == ENOENT                        ? MNT3ERR_NOENT
                         : e == ENOTDIR                     ? MNT3ERR_NOTDIR
                         : e == EACCES                      ? MNT3ERR_ACCES
                         : e == EINVAL || e == ENAMETOOLONG ? MNT3ERR_INVAL
                                                            : MNT3ERR_SERVERFAULT;
        return Reply(call.xid, xdr_mountres3, &res, 64);
      }
      if (dir->type != FileType::kDirectory) {
        res.fhs_status = MNT3ERR_NOTDIR;
        return Reply(call.xid, xdr_mountres3, &res, 64);
      }
      FileHandle h;
      h.export_id = static_cast<uint8_t>(best);
      h.ino = dir->ino;
      h.generation = dir->generation;
      std::string fh = handles_.Encode(h);
      int flavors[1] = {kAuthSys};
      res.fhs_status = MNT3_OK;
      res.mountres3_u.mountinfo.fhandle.fhandle3_len = static_cast<u_int>(fh.size());
      res.mountres3_u.mountinfo.fhandle.fhandle3_val = fh.data();
      res.mountres3_u.mountinfo.auth_flavors.auth_flavors_len = 1;
      res.mountres3_u.mountinfo.auth_flavors.auth_flavors_val = flavors;
      return Reply(call.xid, xdr_mountres3, &res, 256);
    }
    case MOUNTPROC3_EXPORT: {
      std::deque<exportnode> nodes;
      std::deque<groupnode> group_nodes;
      std::deque<std::string> strings;
      exportnode* head = nullptr;
      exportnode** tail = &head;
      size_t bytes = 64;
      for (const Export& e : exports_.list) {
        // Only what this client can mount: clients that mount every export
        // listed under the one they asked for (libnfs does) would fail on
        // an export refused to them, or one whose directory is missing.
        if (!e.Allows(peer.address, peer.port)) continue;
        auto dir = fs_->ResolvePath(RequestContext::Root(), e.path);
        if (!dir.ok() || dir->type != FileType::kDirectory) continue;
        exportnode& n = nodes.emplace_back();
        strings.push_back(e.path);
        n.ex_dir = strings.back().data();
        n.ex_groups = nullptr;
        n.ex_next = nullptr;
        groupnode** gtail = &n.ex_groups;
        for (const std::string& c : e.client_specs) {
          groupnode& g = group_nodes.emplace_back();
          strings.push_back(c);
          g.gr_name = strings.back().data();
          g.gr_next = nullptr;
          *gtail = &g;
          gtail = &g.gr_next;
          bytes += c.size() + 16;
        }
        *tail = &n;
        tail = &n.ex_next;
        bytes += e.path.size() + 16;
      }
      return Reply(call.xid, xdr_exports, &head, bytes);
    }
    default:
      return AcceptedReply(call.xid, kProcUnavail);
  }
}

}  // namespace needlefs::nfsd
