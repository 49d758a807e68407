// FuseMount and the FUSE server's setup: the layer, the kernel mount, the
// loop, the ops table, the translation helpers and kernel notifications.
#include "fuse/fuse_mount.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "common/logging.h"
#include "fuse/internal/fuse_server.h"

namespace needlefs {
namespace fuse {
namespace {

/// The signals that end the mount (libfuse's handlers catch them).
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

/// Requests served per operation and the time their handlers took (from
/// the call to the return, which includes the reply): the mount's
/// per-request profile (FuseMountOptions::op_stats_file). Process-wide; two
/// atomic adds per request.
struct OpStat {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
};
enum OpKind {
  kLookupOp,
  kGetattrOp,
  kSetattrOp,
  kReadlinkOp,
  kMknodOp,
  kMkdirOp,
  kUnlinkOp,
  kRmdirOp,
  kSymlinkOp,
  kRenameOp,
  kLinkOp,
  kOpenOp,
  kReadOp,
  kWriteOp,
  kFlushOp,
  kReleaseOp,
  kFsyncOp,
  kOpendirOp,
  kReaddirOp,
  kReaddirplusOp,
  kReleasedirOp,
  kFsyncdirOp,
  kStatfsOp,
  kSetxattrOp,
  kGetxattrOp,
  kListxattrOp,
  kRemovexattrOp,
  kAccessOp,
  kCreateOp,
  kFallocateOp,
  // Not requests: the notifications this mount sent the kernel about
  // others' changes (counted with the time each took).
  kInvalInodeNote,
  kInvalEntryNote,
  kOpKinds
};
constexpr const char* kOpNames[kOpKinds] = {
    "LOOKUP",        "GETATTR",      "SETATTR",     "READLINK", "MKNOD",  "MKDIR",
    "UNLINK",        "RMDIR",        "SYMLINK",     "RENAME",   "LINK",   "OPEN",
    "READ",          "WRITE",        "FLUSH",       "RELEASE",  "FSYNC",  "OPENDIR",
    "READDIR",       "READDIRPLUS",  "RELEASEDIR",  "FSYNCDIR", "STATFS", "SETXATTR",
    "GETXATTR",      "LISTXATTR",    "REMOVEXATTR", "ACCESS",   "CREATE", "FALLOCATE",
    "(inval_inode)", "(inval_entry)"};
OpStat g_op_stats[kOpKinds];

/// Counts one event of kind `k` that took since `t0`.
void CountOp(int k, std::chrono::steady_clock::time_point t0) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  g_op_stats[k].count.fetch_add(1, std::memory_order_relaxed);
  g_op_stats[k].ns.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

/// Op F with its handler time counted under kind K.
template <auto F, int K>
struct Timed;
template <typename... A, void (*F)(fuse_req_t, A...), int K>
struct Timed<F, K> {
  static void Call(fuse_req_t req, A... a) {
    const auto t0 = std::chrono::steady_clock::now();
    F(req, a...);
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    g_op_stats[K].count.fetch_add(1, std::memory_order_relaxed);
    g_op_stats[K].ns.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }
};

/// Writes the table of g_op_stats to `path` (busiest first).
void WriteOpStats(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return spdlog::warn("cannot write op stats to {}", path);
  std::vector<int> kinds;
  for (int k = 0; k < kOpKinds; ++k)
    if (g_op_stats[k].count.load() > 0) kinds.push_back(k);
  std::sort(kinds.begin(), kinds.end(),
            [](int a, int b) { return g_op_stats[a].ns.load() > g_op_stats[b].ns.load(); });
  std::fprintf(f, "%-12s %10s %10s %12s\n", "op", "count", "mean_us", "total_ms");
  for (int k : kinds) {
    const double n = static_cast<double>(g_op_stats[k].count.load());
    const double ns = static_cast<double>(g_op_stats[k].ns.load());
    std::fprintf(f, "%-12s %10.0f %10.1f %12.1f\n", kOpNames[k], n, ns / n / 1e3, ns / 1e6);
  }
  std::fclose(f);
}

const fuse_lowlevel_ops* Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o;
    std::memset(&o, 0, sizeof(o));
    o.init = OpInit;
    o.lookup = Timed<OpLookup, kLookupOp>::Call;
    o.forget = OpForget;
    o.forget_multi = OpForgetMulti;
    o.getattr = Timed<OpGetattr, kGetattrOp>::Call;
    o.setattr = Timed<OpSetattr, kSetattrOp>::Call;
    o.readlink = Timed<OpReadlink, kReadlinkOp>::Call;
    o.mknod = Timed<OpMknod, kMknodOp>::Call;
    o.mkdir = Timed<OpMkdir, kMkdirOp>::Call;
    o.unlink = Timed<OpUnlink, kUnlinkOp>::Call;
    o.rmdir = Timed<OpRmdir, kRmdirOp>::Call;
    o.symlink = Timed<OpSymlink, kSymlinkOp>::Call;
    o.rename = Timed<OpRename, kRenameOp>::Call;
    o.link = Timed<OpLink, kLinkOp>::Call;
    o.open = Timed<OpOpen, kOpenOp>::Call;
    o.read = Timed<OpRead, kReadOp>::Call;
    o.write = Timed<OpWrite, kWriteOp>::Call;
    o.flush = Timed<OpFlush, kFlushOp>::Call;
    o.release = Timed<OpRelease, kReleaseOp>::Call;
    o.fsync = Timed<OpFsync, kFsyncOp>::Call;
    o.opendir = Timed<OpOpendir, kOpendirOp>::Call;
    o.readdir = Timed<OpReaddir, kReaddirOp>::Call;
    o.readdirplus = Timed<OpReaddirplus, kReaddirplusOp>::Call;
    o.releasedir = Timed<OpReleasedir, kReleasedirOp>::Call;
    o.fsyncdir = Timed<OpFsyncdir, kFsyncdirOp>::Call;
    o.statfs = Timed<OpStatfs, kStatfsOp>::Call;
    o.setxattr = Timed<OpSetxattr, kSetxattrOp>::Call;
    o.getxattr = Timed<OpGetxattr, kGetxattrOp>::Call;
    o.listxattr = Timed<OpListxattr, kListxattrOp>::Call;
    o.removexattr = Timed<OpRemovexattr, kRemovexattrOp>::Call;
    o.access = Timed<OpAccess, kAccessOp>::Call;
    o.create = Timed<OpCreate, kCreateOp>::Call;
    o.fallocate = Timed<OpFallocate, kFallocateOp>::Call;
    // getlk/setlk/flock stay unset: the kernel then keeps record locks and
    // flock locks itself, exact among the processes of this mount.
    return o;
  }();
  return &ops;
}

}  // namespace

FuseServer::~FuseServer() {
  if (se_) {
    Unmount();
    if (options_.handle_signals) fuse_remove_signal_handlers(se_);
  }
  // The layer's threads may call InodeChanged until it is gone: end it
  // while the session still exists.
  fs_.reset();
  if (!options_.op_stats_file.empty()) WriteOpStats(options_.op_stats_file);
  if (se_) fuse_session_destroy(se_);
}

Status FuseServer::Init() {
  FileSystemOptions fo;
  fo.meta = options_.meta;
  fo.master = options_.master;
  fo.subdir = options_.subdir;
  fo.client_name = "fuse:" + options_.mountpoint;
  fo.read_only = options_.read_only;
  fo.sync = options_.sync;
  fo.dir_cache = options_.dir_cache;
  // Listings answer lookups as long as the kernel keeps a dentry.
  fo.entry_ttl_ns = static_cast<int64_t>(options_.entry_timeout_s * 1e9);
  fo.follow_changes = options_.invalidate_from_changes;
  // The kernel asks again after every write, close and rename of a file
  // whose attributes it already had from our change.
  fo.file_attr_ttl_ns = static_cast<int64_t>(options_.attr_timeout_s * 1e9);
  fo.file = options_.file;
  auto fs = FileSystem::Open(fo, this);
  if (!fs.ok()) return fs.status();
  fs_ = std::move(fs).value();
  root_ = fs_->root();
  return MountKernel();
}

Status FuseServer::MountKernel() {
  std::vector<std::string> args{
      "needlefs", "-o",
      "fsname=needlefs:" + options_.meta + ":" + options_.subdir + ",subtype=needlefs"};
  if (options_.allow_other.value_or(geteuid() == 0)) args.insert(args.end(), {"-o", "allow_other"});
  if (options_.default_permissions) args.insert(args.end(), {"-o", "default_permissions"});
  if (options_.read_only) args.insert(args.end(), {"-o", "ro"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&fargs, Ops(), sizeof(fuse_lowlevel_ops), this);
  fuse_opt_free_args(&fargs);
  if (!se) return Status::Internal("fuse_session_new failed (bad options?)");
  if (fuse_session_mount(se, options_.mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return Status::Internal("cannot mount FUSE at " + options_.mountpoint +
                            " (see the message above; is /dev/fuse there and the "
                            "directory not already a mount?)");
  }
  {
    std::unique_lock<std::shared_mutex> g(notify_mu_);
    se_ = se;
    notify_ = true;
  }
  std::lock_guard<std::mutex> g(unmount_mu_);
  mounted_ = true;
  return Status::OK();
}

Status FuseServer::Run() {
  // Only this thread takes SIGINT/SIGTERM: libfuse's handlers end the loop.
  if (options_.handle_signals) {
    const sigset_t set = TerminationSignals();
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    if (fuse_set_signal_handlers(se_) != 0) return Status::Internal("cannot set signal handlers");
  }
  struct fuse_loop_config* cfg = fuse_loop_cfg_create();
  // Idle workers stay (libfuse's default since 3.12): capping them made
  // libfuse end and start threads all through a busy load.
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(std::max(2, options_.max_threads)));
  int rc = fuse_session_loop_mt(se_, cfg);
  fuse_loop_cfg_destroy(cfg);
  Unmount();
  if (rc != 0 && !stopping_) return Status::Internal("FUSE loop ended with " + std::to_string(rc));
  return Status::OK();
}

void FuseServer::Stop() {
  stopping_ = true;
  if (se_) fuse_session_exit(se_);
  Unmount();  // wakes the workers blocked on /dev/fuse
}

void FuseServer::Unmount() {
  {
    std::unique_lock<std::shared_mutex> g(notify_mu_);
    notify_ = false;
  }
  std::lock_guard<std::mutex> g(unmount_mu_);
  if (!mounted_ || !se_) return;
  mounted_ = false;
  fuse_session_unmount(se_);
}

RequestContext FuseServer::Ctx(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  RequestContext ctx;
  ctx.uid = c->uid;
  ctx.gid = c->gid;
  ctx.sync = options_.sync;
  ctx.pid = static_cast<uint32_t>(c->pid);
  if (c->uid == 0) return ctx;  // root needs no group checks
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> g(groups_mu_);
    auto it = groups_.find(c->pid);
    if (it != groups_.end() && now - it->second.at < std::chrono::seconds(1)) {
      ctx.groups = it->second.groups;
      return ctx;
    }
  }
  gid_t list[64];
  int n = fuse_req_getgroups(req, 64, list);
  for (int i = 0; i < std::min(n, 64); ++i) ctx.groups.push_back(list[i]);
  std::lock_guard<std::mutex> g(groups_mu_);
  if (groups_.size() > 4096) groups_.clear();
  groups_[c->pid] = GroupsEntry{ctx.groups, now};
  return ctx;
}

void FuseServer::FillStat(const InodeAttr& a, struct stat* st) const {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = ToFuse(a.ino);
  st->st_mode = a.StMode();
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_size = static_cast<off_t>(a.size);
  st->st_rdev = a.rdev;
  st->st_blksize = kBlockSize;
  st->st_blocks = (st->st_size + 511) / 512;
  st->st_atim = {a.atime_ns / 1'000'000'000, a.atime_ns % 1'000'000'000};
  st->st_mtim = {a.mtime_ns / 1'000'000'000, a.mtime_ns % 1'000'000'000};
  st->st_ctim = {a.ctime_ns / 1'000'000'000, a.ctime_ns % 1'000'000'000};
}

void FuseServer::FillEntry(const InodeAttr& a, fuse_entry_param* e) const {
  std::memset(e, 0, sizeof(*e));
  e->ino = ToFuse(a.ino);
  e->generation = a.generation.value;
  FillStat(a, &e->attr);
  e->attr_timeout = options_.attr_timeout_s;
  e->entry_timeout = options_.entry_timeout_s;
}

void FuseServer::ReplyEntry(fuse_req_t req, const StatusOr<InodeAttr>& a) const {
  if (!a.ok()) return ReplyErr(req, a.status());
  fuse_entry_param e;
  FillEntry(*a, &e);
  fuse_reply_entry(req, &e);
}

void FuseServer::ReplyLookup(fuse_req_t req, const StatusOr<InodeAttr>& a) const {
  const double negative = options_.negative_timeout_s.value_or(options_.entry_timeout_s);
  if (!a.ok() && a.status().posix_errno() == ENOENT && negative > 0) {
    fuse_entry_param e;
    std::memset(&e, 0, sizeof(e));  // ino 0: a negative entry
    e.entry_timeout = negative;
    fuse_reply_entry(req, &e);
    return;
  }
  ReplyEntry(req, a);
}

void FuseServer::ReplyAttr(fuse_req_t req, const StatusOr<InodeAttr>& a) const {
  if (!a.ok()) return ReplyErr(req, a.status());
  struct stat st;
  FillStat(*a, &st);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

void FuseServer::InodeChanged(InodeId ino) {
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_lock<std::shared_mutex> g(notify_mu_);
  if (!notify_) return;
  fuse_lowlevel_notify_inval_inode(se_, ToFuse(ino), 0, 0);
  CountOp(kInvalInodeNote, t0);
}

void FuseServer::AttributesStale(fuse_ino_t ino) {
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_lock<std::shared_mutex> g(notify_mu_);
  if (!notify_) return;
  fuse_lowlevel_notify_inval_inode(se_, ino, -1, 0);
  CountOp(kInvalInodeNote, t0);
}

void FuseServer::EntryChanged(InodeId parent, const std::string& name, InodeId ino) {
  std::shared_lock<std::shared_mutex> g(notify_mu_);
  if (!notify_) return;
  const auto t0 = std::chrono::steady_clock::now();
  fuse_lowlevel_notify_inval_entry(se_, ToFuse(parent), name.data(), name.size());
  fuse_lowlevel_notify_inval_inode(se_, ToFuse(ino), -1, 0);
  CountOp(kInvalEntryNote, t0);
}

void OpInit(void*, fuse_conn_info* conn) {
  conn->max_write = 1u << 20;
  conn->max_readahead = 4u << 20;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  // We decide about the page cache on open (keep_cache), not the kernel
  // on every mtime change it sees.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // Write-through: a write never needs the page read first, so a handle
  // open for writing only is never read from (the layer says EBADF).
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

}  // namespace fuse

class FuseMount::Impl : public fuse::FuseServer {
 public:
  using FuseServer::FuseServer;
};

FuseMount::FuseMount(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FuseMount::~FuseMount() = default;

StatusOr<std::unique_ptr<FuseMount>> FuseMount::Mount(const FuseMountOptions& options) {
  // Threads made from here on (gRPC, uploads, change stream) leave
  // termination signals to the thread that runs the FUSE loop.
  const sigset_t set = fuse::TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto impl = std::make_unique<Impl>(options);
  NEEDLEFS_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(impl)));
}

Status FuseMount::Run() { return impl_->Run(); }
void FuseMount::Stop() { impl_->Stop(); }

}  // namespace needlefs
