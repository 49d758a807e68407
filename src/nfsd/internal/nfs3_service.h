// The NFSv3 and MOUNTv3 programs over the file-system layer: one RPC record
// in, one reply out. nfs3_service.cc has the dispatch, the XDR plumbing,
// the translations (fattr3, wcc_data, nfsstat3) and MOUNT;
// nfs3_procs.cc has the 22 NFS procedures (RFC 1813 section 3.3), each a
// translation around one or two FileSystem calls. The rpcgen headers
// (xdr/nfs3.h, xdr/mount3.h) stay in these .cc files.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "client/file_system.h"
#include "nfsd/exports.h"
#include "nfsd/file_handle.h"
#include "nfsd/reply_cache.h"
#include "nfsd/rpc.h"
#include "nfsd/rpc_server.h"

namespace needlefs::nfsd {

inline constexpr uint32_t kNfsProgram = 100003;
inline constexpr uint32_t kNfsVersion = 3;
inline constexpr uint32_t kMountProgram = 100005;
inline constexpr uint32_t kMountVersion = 3;
/// rtmax/wtmax (FSINFO): the largest READ and WRITE, bytes.
inline constexpr uint32_t kMaxIo = 1u << 20;
/// The same over UDP, where a reply must fit in one datagram (knfsd also
/// offers 32 KiB there).
inline constexpr uint32_t kMaxUdpIo = 32u << 10;
/// The largest READ, WRITE or directory reply body for a call from `peer`.
inline uint32_t MaxIo(const Peer& peer) { return peer.datagram ? kMaxUdpIo : kMaxIo; }

/// Per-procedure counters (for /metrics and /status).
struct NfsCounters {
  std::atomic<uint64_t> calls[22] = {};
  std::atomic<uint64_t> errors[22] = {};  ///< replies with an nfsstat3 other than NFS3_OK
  std::atomic<uint64_t> nanos[22] = {};   ///< time spent, ns
};

/// RFC 1813's names of the procedures, by number.
const char* NfsProcName(uint32_t proc);

/// The key that signs file handles, shared by every nfsd of the cluster: an
/// xattr of the root inode (trusted.*: only root reads it), made with
/// random bytes by the first nfsd that finds none. Errors: those of the
/// layer's xattr calls.
StatusOr<std::string> LoadHandleKey(FileSystem* fs);

class Nfs3Service {
 public:
  /// `fs` (not owned) must outlive the service; `handle_key` signs the
  /// file handles (kFileHandleKeyBytes; LoadHandleKey).
  Nfs3Service(FileSystem* fs, Exports exports, std::string handle_key);

  /// One RPC record of NFS or MOUNT (or another program: PROG_UNAVAIL).
  std::optional<std::string> Handle(std::string_view record, const Peer& peer);

  const NfsCounters& counters() const { return counters_; }
  /// Counts a reply of procedure `proc` with an error status.
  void CountError(uint32_t proc) {
    if (proc < 22) counters_.errors[proc].fetch_add(1, std::memory_order_relaxed);
  }
  /// Prometheus text: calls, errors and seconds per procedure, DRC hits.
  std::string MetricsText() const;
  /// Retransmissions answered from the duplicate request cache.
  uint64_t drc_hits() const { return drc_.hits(); }

  /// What one call runs as: its export and identity.
  struct Caller {
    const Export* exp = nullptr;
    uint8_t export_id = 0;
    RequestContext ctx;
    const Peer* peer = nullptr;
  };

  // The procedures (nfs3_procs.cc): decode `args`, run, return the whole
  // reply record. `call` has the xid.
  std::string Nfs(const RpcCall& call, const Peer& peer);
  std::string Dispatch(const RpcCall& call, const Peer& peer);
  std::string Mount(const RpcCall& call, const Peer& peer);

  FileSystem* fs() { return fs_; }
  const Exports& exports() const { return exports_; }
  /// The root inode of each export (by export id; InodeId(0) when its path
  /// does not resolve to a directory), resolved again after a directory
  /// entry named like a component of an export path changed (through this
  /// nfsd or, by meta's change stream, anywhere: ExportPathMayHaveChanged).
  std::vector<InodeId> ExportRoots();
  /// An entry `name` was added, removed or renamed (name "": anything may
  /// have changed).
  void ExportPathMayHaveChanged(const std::string& name);
  const FileHandleCodec& handles() const { return handles_; }

 private:
  FileSystem* fs_;
  Exports exports_;
  FileHandleCodec handles_;
  NfsCounters counters_;
  std::mutex roots_mu_;
  std::vector<InodeId> roots_;               // GUARDED_BY(roots_mu_); empty: resolve again
  std::set<std::string> export_components_;  // names on the export paths
  ReplyCache drc_;
};

}  // namespace needlefs::nfsd
