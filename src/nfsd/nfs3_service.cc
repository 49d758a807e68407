// Nfs3Service: the RPC envelope (RFC 5531) around the NFS and MOUNT
// programs, and the dispatch of NFSv3 procedures to their files.
#include "nfsd/internal/nfs3_service.h"

#include <openssl/rand.h>

#include <cerrno>
#include <chrono>

#include "common/logging.h"
#include "nfsd/internal/nfs3_xdr.h"

namespace needlefs::nfsd {

namespace {

/// The procedures whose retransmission must not run again (RFC 1813
/// section 4.6: a lost reply of these turns a success into an error).
bool NonIdempotent(uint32_t proc) {
  switch (proc) {
    case NFSPROC3_SETATTR:
    case NFSPROC3_WRITE:
    case NFSPROC3_CREATE:
    case NFSPROC3_MKDIR:
    case NFSPROC3_SYMLINK:
    case NFSPROC3_MKNOD:
    case NFSPROC3_REMOVE:
    case NFSPROC3_RMDIR:
    case NFSPROC3_RENAME:
    case NFSPROC3_LINK:
      return true;
    default:
      return false;
  }
}

}  // namespace

Nfs3Service::Nfs3Service(FileSystem* fs, Exports exports, std::string handle_key)
    : fs_(fs), exports_(std::move(exports)), handles_(std::move(handle_key)) {
  for (const Export& e : exports_.list) {
    for (size_t at = 1; at < e.path.size();) {
      const size_t slash = std::min(e.path.find('/', at), e.path.size());
      if (slash > at) export_components_.insert(e.path.substr(at, slash - at));
      at = slash + 1;
    }
  }
}

std::vector<InodeId> Nfs3Service::ExportRoots() {
  std::lock_guard<std::mutex> g(roots_mu_);
  if (roots_.empty()) {
    roots_.assign(exports_.list.size(), InodeId(0));
    for (size_t i = 0; i < exports_.list.size(); ++i) {
      auto a = exports_.list[i].path == "/"
                   ? fs_->GetAttr(fs_->root())
                   : fs_->ResolvePath(RequestContext::Root(), exports_.list[i].path);
      if (a.ok() && a->type == FileType::kDirectory) roots_[i] = a->ino;
    }
  }
  return roots_;
}

void Nfs3Service::ExportPathMayHaveChanged(const std::string& name) {
  if (exports_.list.size() < 2) return;  // only the root: nothing to follow
  if (!name.empty() && export_components_.count(name) == 0) return;
  std::lock_guard<std::mutex> g(roots_mu_);
  roots_.clear();
}

StatusOr<std::string> LoadHandleKey(FileSystem* fs) {
  static const std::string kName = "trusted.needlefs.nfs_handle_key";
  const RequestContext root = RequestContext::Root();
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto key = fs->GetXattr(root, fs->root(), kName);
    if (key.ok() && key->size() == kFileHandleKeyBytes) return key;
    if (key.ok()) return Status::Corruption(kName + " of the root has a wrong length");
    if (key.status().posix_errno() != ENODATA) return key.status();
    std::string fresh(kFileHandleKeyBytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(fresh.data()),
                   static_cast<int>(fresh.size())) != 1) {
      return Status::Internal("RAND_bytes failed");
    }
    Status s = fs->SetXattr(root, fs->root(), kName, fresh, kXattrCreate);
    if (s.ok()) return fresh;
    if (s.posix_errno() != EEXIST) return s;  // another nfsd made it first: read that one
  }
  return Status::Unavailable("cannot settle the file handle key");
}

std::optional<std::string> Nfs3Service::Handle(std::string_view record, const Peer& peer) {
  RpcCall call;
  if (CallProblem p = ParseCall(record, &call); p != CallProblem::kNone) {
    return RefusedCallReply(p, call.xid);
  }
  if (call.prog == kNfsProgram) {
    if (call.vers != kNfsVersion) return ProgMismatchReply(call.xid, kNfsVersion, kNfsVersion);
    if (!NonIdempotent(call.proc)) return Nfs(call, peer);
    // A retransmission gets the first reply (or none while the first runs).
    std::string reply;
    switch (drc_.Begin(peer.address, call.xid, record, &reply)) {
      case ReplyCache::Lookup::kReplay:
        return reply;
      case ReplyCache::Lookup::kInProgress:
        return std::string();  // empty: send nothing, keep the connection
      case ReplyCache::Lookup::kNew:
        break;
    }
    reply = Nfs(call, peer);
    drc_.Done(peer.address, call.xid, record, reply);
    return reply;
  }
  if (call.prog == kMountProgram) {
    if (call.vers != kMountVersion) {
      return ProgMismatchReply(call.xid, kMountVersion, kMountVersion);
    }
    return Mount(call, peer);
  }
  return AcceptedReply(call.xid, kProgUnavail);
}

const char* NfsProcName(uint32_t proc) {
  static const char* const kNames[22] = {
      "NULL",    "GETATTR",     "SETATTR", "LOOKUP", "ACCESS",   "READLINK", "READ",   "WRITE",
      "CREATE",  "MKDIR",       "SYMLINK", "MKNOD",  "REMOVE",   "RMDIR",    "RENAME", "LINK",
      "READDIR", "READDIRPLUS", "FSSTAT",  "FSINFO", "PATHCONF", "COMMIT"};
  return proc < 22 ? kNames[proc] : "UNKNOWN";
}

std::string Nfs3Service::MetricsText() const {
  std::string out =
      "# HELP needlefs_nfs_calls_total NFSv3 calls by procedure.\n"
      "# TYPE needlefs_nfs_calls_total counter\n";
  auto line = [&](const char* name, uint32_t p, double v) {
    out += std::string(name) + "{proc=\"" + NfsProcName(p) + "\"} " + std::to_string(v) + "\n";
  };
  for (uint32_t p = 0; p < 22; ++p) line("needlefs_nfs_calls_total", p, counters_.calls[p].load());
  out +=
      "# HELP needlefs_nfs_errors_total NFSv3 replies with an error status.\n"
      "# TYPE needlefs_nfs_errors_total counter\n";
  for (uint32_t p = 0; p < 22; ++p)
    line("needlefs_nfs_errors_total", p, counters_.errors[p].load());
  out +=
      "# HELP needlefs_nfs_call_seconds_total Time spent in NFSv3 calls.\n"
      "# TYPE needlefs_nfs_call_seconds_total counter\n";
  for (uint32_t p = 0; p < 22; ++p) {
    line("needlefs_nfs_call_seconds_total", p,
         static_cast<double>(counters_.nanos[p].load()) / 1e9);
  }
  out +=
      "# HELP needlefs_nfs_drc_hits_total Retransmissions answered by the duplicate request "
      "cache.\n# TYPE needlefs_nfs_drc_hits_total counter\nneedlefs_nfs_drc_hits_total " +
      std::to_string(drc_.hits()) + "\n";
  return out;
}

std::string Nfs3Service::Nfs(const RpcCall& call, const Peer& peer) {
  if (call.proc >= 22) return AcceptedReply(call.xid, kProcUnavail);
  const auto start = std::chrono::steady_clock::now();
  std::string reply = Dispatch(call, peer);
  counters_.calls[call.proc].fetch_add(1, std::memory_order_relaxed);
  counters_.nanos[call.proc].fetch_add(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count(),
      std::memory_order_relaxed);
  return reply;
}

std::string Nfs3Service::Dispatch(const RpcCall& call, const Peer& peer) {
  switch (call.proc) {
    case NFSPROC3_NULL:
      return AcceptedReply(call.xid, kSuccess);
    case NFSPROC3_GETATTR:
      return ProcGetattr(this, call, peer);
    case NFSPROC3_SETATTR:
      return ProcSetattr(this, call, peer);
    case NFSPROC3_LOOKUP:
      return ProcLookup(this, call, peer);
    case NFSPROC3_ACCESS:
      return ProcAccess(this, call, peer);
    case NFSPROC3_READLINK:
      return ProcReadlink(this, call, peer);
    case NFSPROC3_READ:
      return ProcRead(this, call, peer);
    case NFSPROC3_WRITE:
      return ProcWrite(this, call, peer);
    case NFSPROC3_CREATE:
      return ProcCreate(this, call, peer);
    case NFSPROC3_MKDIR:
      return ProcMkdir(this, call, peer);
    case NFSPROC3_SYMLINK:
      return ProcSymlink(this, call, peer);
    case NFSPROC3_MKNOD:
      return ProcMknod(this, call, peer);
    case NFSPROC3_REMOVE:
      return ProcRemove(this, call, peer, false);
    case NFSPROC3_RMDIR:
      return ProcRemove(this, call, peer, true);
    case NFSPROC3_RENAME:
      return ProcRename(this, call, peer);
    case NFSPROC3_LINK:
      return ProcLink(this, call, peer);
    case NFSPROC3_READDIR:
      return ProcReaddir(this, call, peer);
    case NFSPROC3_READDIRPLUS:
      return ProcReaddirplus(this, call, peer);
    case NFSPROC3_FSSTAT:
      return ProcFsstat(this, call, peer);
    case NFSPROC3_FSINFO:
      return ProcFsinfo(this, call, peer);
    case NFSPROC3_PATHCONF:
      return ProcPathconf(this, call, peer);
    case NFSPROC3_COMMIT:
      return ProcCommit(this, call, peer);
    default:
      return AcceptedReply(call.xid, kProcUnavail);
  }
}

}  // namespace needlefs::nfsd
