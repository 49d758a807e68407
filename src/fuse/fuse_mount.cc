#define FUSE_USE_VERSION 312
#include "fuse/fuse_mount.h"

#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "client/blob_client.h"
#include "client/dir_cache.h"
#include "client/meta_client.h"
#include "common/logging.h"

namespace needlefs {
namespace {

constexpr int64_t kSessionLeaseMs = 60'000;
/// How long mounting waits for meta's change stream to start.
constexpr std::chrono::milliseconds kSubscribeStartTimeout{5'000};
/// Deadline of one meta call from the mount.
constexpr int kMetaCallTimeoutMs = 60'000;
constexpr uint32_t kBlockSize = 1u << 20;  // st_blksize: cp and friends use 1 MiB buffers
/// Files of at most this many chunks get their chunk list with the
/// attributes on open (GetAttrWithChunks).
constexpr uint32_t kChunksWithOpen = 64;

/// The signals that end the mount (libfuse's handlers catch them).
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

/// Remembered groups of a calling process, so permission checks do not
/// read /proc for every request.
struct GroupsEntry {
  std::vector<uint32_t> groups;
  std::chrono::steady_clock::time_point at;
};

}  // namespace

class FuseMount::Impl {
 public:
  explicit Impl(FuseMountOptions o) : options_(std::move(o)) {}

  ~Impl() {
    StopBackground();
    if (se_) {
      Unmount();
      if (options_.handle_signals) fuse_remove_signal_handlers(se_);
      fuse_session_destroy(se_);
    }
    if (session_ != 0 && meta_) (void)meta_->CloseSession(session_);
  }

  Status Init() {
    // A slow meta (a stalled disk sync under load) makes a file operation
    // wait, as a hard NFS mount does, rather than fail with EIO at once.
    auto m = MetaClient::Create(options_.meta, kMetaCallTimeoutMs);
    if (!m.ok()) return m.status();
    meta_ = std::move(m).value();
    BlobClientOptions bo;
    bo.master = options_.master;
    blobs_ = std::make_unique<BlobClient>(bo);
    FileClientOptions fo = options_.file;
    // close(2) promises no durability; fsync(2) does (and -o sync on close).
    fo.unstable_uploads = true;
    files_ = std::make_unique<FileClient>(meta_.get(), blobs_.get(), fo);
    DirCacheOptions dc;
    // Listings answer lookups as long as the kernel keeps a dentry, and
    // only while meta's change stream can invalidate them.
    dc.ttl_ns = options_.dir_cache && options_.invalidate_from_changes
                    ? static_cast<int64_t>(options_.entry_timeout_s * 1e9)
                    : 0;
    dirs_ = std::make_unique<DirCache>(meta_.get(), dc);

    // Resolve the subdirectory served as the root.
    InodeId ino = kRootInode;
    std::string path = options_.subdir;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t next = path.find('/', pos);
      if (next == std::string::npos) next = path.size();
      std::string part = path.substr(pos, next - pos);
      pos = next + 1;
      if (part.empty() || part == ".") continue;
      auto a = meta_->Lookup(RequestContext::Root(), ino, part);
      if (!a.ok()) {
        if (a.status().posix_errno() == ENOENT) {
          return Status::NotFound("subdirectory " + options_.subdir + " does not exist");
        }
        return a.status().WithContext("resolve " + options_.subdir);
      }
      if (a->type != FileType::kDirectory) {
        return Status::FailedPrecondition(options_.subdir + " is not a directory");
      }
      ino = a->ino;
    }
    auto root = meta_->GetAttr(ino);
    if (!root.ok()) return root.status().WithContext("meta at " + options_.meta);
    root_ = ino;

    auto session = meta_->OpenSession("fuse:" + options_.mountpoint, kSessionLeaseMs);
    if (!session.ok()) return session.status().WithContext("open session");
    session_ = *session;
    return MountKernel();
  }

  Status Run() {
    // Only this thread takes SIGINT/SIGTERM: libfuse's handlers end the loop.
    if (options_.handle_signals) {
      const sigset_t set = TerminationSignals();
      pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      if (fuse_set_signal_handlers(se_) != 0) {
        return Status::Internal("cannot set signal handlers");
      }
    }
    struct fuse_loop_config* cfg = fuse_loop_cfg_create();
    // Idle workers stay (libfuse's default since 3.12): capping them made
    // libfuse end and start threads all through a busy load.
    fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(std::max(2, options_.max_threads)));
    int rc = fuse_session_loop_mt(se_, cfg);
    fuse_loop_cfg_destroy(cfg);
    StopBackground();
    Unmount();
    if (rc != 0 && !stopping_) {
      return Status::Internal("FUSE loop ended with " + std::to_string(rc));
    }
    return Status::OK();
  }

  void Stop() {
    stopping_ = true;
    if (se_) fuse_session_exit(se_);
    Unmount();  // wakes the workers blocked on /dev/fuse
  }

  // ---- the operations (fuse_lowlevel_ops) ----

  static Impl* Self(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }

  InodeId FromFuse(fuse_ino_t ino) const {
    return ino == FUSE_ROOT_ID ? root_ : InodeId{static_cast<uint64_t>(ino)};
  }
  fuse_ino_t ToFuse(InodeId ino) const {
    return ino == root_ ? FUSE_ROOT_ID : static_cast<fuse_ino_t>(ino.value);
  }

  RequestContext Ctx(fuse_req_t req) {
    const fuse_ctx* c = fuse_req_ctx(req);
    RequestContext ctx;
    ctx.uid = c->uid;
    ctx.gid = c->gid;
    ctx.sync = options_.sync;
    if (c->uid == 0 || options_.default_permissions) return ctx;  // no group checks needed
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

  void FillStat(const InodeAttr& a, struct stat* st) {
    std::memset(st, 0, sizeof(*st));
    st->st_ino = ToFuse(a.ino);
    st->st_mode = a.StMode();
    st->st_nlink = a.nlink;
    st->st_uid = a.uid;
    st->st_gid = a.gid;
    st->st_size = static_cast<off_t>(a.size);
    if (a.type == FileType::kRegular) {
      if (auto pending = files_->PendingSize(a.ino)) st->st_size = static_cast<off_t>(*pending);
    }
    st->st_rdev = a.rdev;
    st->st_blksize = kBlockSize;
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_atim = {a.atime_ns / 1'000'000'000, a.atime_ns % 1'000'000'000};
    st->st_mtim = {a.mtime_ns / 1'000'000'000, a.mtime_ns % 1'000'000'000};
    st->st_ctim = {a.ctime_ns / 1'000'000'000, a.ctime_ns % 1'000'000'000};
  }

  void FillEntry(const InodeAttr& a, fuse_entry_param* e) {
    std::memset(e, 0, sizeof(*e));
    e->ino = ToFuse(a.ino);
    e->generation = a.generation;
    FillStat(a, &e->attr);
    e->attr_timeout = options_.attr_timeout_s;
    e->entry_timeout = options_.entry_timeout_s;
  }

  static void ReplyErr(fuse_req_t req, const Status& s) { fuse_reply_err(req, ErrnoOf(s)); }

  /// Remembers that this mount is about to change entry `parent`/`name`
  /// (add, remove or rename it), so the change stream's echo of it does not
  /// invalidate the kernel's dentry (an invalidated dentry that is some
  /// process's cwd makes getcwd fail). Counted: the same name changed again
  /// before the first echo arrives (rm -rf then mkdir, a lock file renamed
  /// over and over) expects one echo per change.
  void RecordOwnEntry(InodeId parent, const std::string& name) {
    std::lock_guard<std::mutex> g(own_mu_);
    if (own_entries_.size() > 100'000) own_entries_.clear();
    ++own_entries_[EntryKey(parent, name)];
  }
  void ForgetOwnEntry(InodeId parent, const std::string& name) {
    std::lock_guard<std::mutex> g(own_mu_);
    auto it = own_entries_.find(EntryKey(parent, name));
    if (it != own_entries_.end() && --it->second <= 0) own_entries_.erase(it);
  }
  /// A marked call failed (or made no entry): forgets the mark, and since the
  /// mark may have swallowed another client's event for that name meanwhile
  /// (its create won the race, say), drops the directory's cached listing.
  /// The kernel holds no negative dentry of ours to invalidate.
  void DropOwnEntry(InodeId parent, const std::string& name) {
    ForgetOwnEntry(parent, name);
    dirs_->InvalidateDir(parent);
  }
  /// True (and one mark used up) when the event only echoes RecordOwnEntry.
  bool IsOwnEntry(const ChangeEvent& e) {
    std::lock_guard<std::mutex> g(own_mu_);
    auto it = own_entries_.find(EntryKey(e.parent, e.name));
    if (it == own_entries_.end()) return false;
    if (--it->second <= 0) own_entries_.erase(it);
    return true;
  }
  static std::string EntryKey(InodeId parent, const std::string& name) {
    return std::to_string(parent.value) + "/" + name;
  }

  /// Makes a new entry `parent`/`name` with `make` (a meta call) and
  /// replies with it. The entry is marked as this mount's own before the
  /// call, so an echo that beats the reply is caught too.
  template <typename Make>
  void ReplyNewEntry(fuse_req_t req, fuse_ino_t parent, const char* name, Make&& make) {
    const InodeId p = FromFuse(parent);
    RecordOwnEntry(p, name);
    StatusOr<InodeAttr> a = make();
    if (a.ok()) {
      dirs_->Added(p, name, *a);
    } else {
      DropOwnEntry(p, name);
    }
    ReplyEntry(req, a);
  }

  /// Removes entry `parent`/`name` with `remove` (a meta call) and replies.
  template <typename Remove>
  void ReplyRemoved(fuse_req_t req, InodeId parent, const char* name, Remove&& remove) {
    RecordOwnEntry(parent, name);
    Status st = remove();
    if (st.ok()) {
      dirs_->Removed(parent, name);
    } else {
      DropOwnEntry(parent, name);
    }
    fuse_reply_err(req, ErrnoOf(st));
  }

  void ReplyEntry(fuse_req_t req, const StatusOr<InodeAttr>& a) {
    if (!a.ok()) return ReplyErr(req, a.status());
    fuse_entry_param e;
    FillEntry(*a, &e);
    fuse_reply_entry(req, &e);
  }

  void ReplyAttr(fuse_req_t req, const StatusOr<InodeAttr>& a) {
    if (!a.ok()) return ReplyErr(req, a.status());
    struct stat st;
    FillStat(*a, &st);
    fuse_reply_attr(req, &st, options_.attr_timeout_s);
  }

  bool ReadOnly(fuse_req_t req) {
    if (!options_.read_only) return false;
    fuse_reply_err(req, EROFS);
    return true;
  }

  /// Before an unlink or rename replaces `name`: when this mount holds the
  /// inode open, tell meta, so the data outlives the name (POSIX).
  void HoldIfOpen(const RequestContext& ctx, InodeId parent, const std::string& name) {
    {
      std::lock_guard<std::mutex> g(open_mu_);
      if (open_count_.empty()) return;
    }
    auto a = meta_->Lookup(ctx, parent, name);
    if (!a.ok() || a->type != FileType::kRegular) return;
    std::lock_guard<std::mutex> g(open_mu_);
    auto it = open_count_.find(a->ino.value);
    if (it == open_count_.end() || held_.count(a->ino.value)) return;
    if (meta_->OpenFile(session_, a->ino).ok()) held_.insert(a->ino.value);
  }

  static void OpInit(void* userdata, fuse_conn_info* conn) {
    auto* self = static_cast<Impl*>(userdata);
    conn->max_write = 1u << 20;
    conn->max_readahead = 4u << 20;
    if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
    if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    // We decide about the page cache on open (keep_cache), not the kernel
    // on every mtime change it sees.
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    (void)self;
  }

  static void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* s = Self(req);
    s->ReplyEntry(req, s->dirs_->Lookup(s->Ctx(req), s->FromFuse(parent), name));
  }

  static void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
  static void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

  static void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    Impl* s = Self(req);
    s->ReplyAttr(req, s->meta_->GetAttr(s->FromFuse(ino)));
  }

  /// Sets regular file `ino`'s size (truncate or extend): buffered writes
  /// are committed first so none lands after it, then meta changes the size,
  /// then the file client drops what lies past it. Errors: as
  /// FileClient::Flush and Namespace::SetAttr.
  StatusOr<InodeAttr> Resize(const RequestContext& ctx, InodeId ino, uint64_t size) {
    NEEDLEFS_RETURN_IF_ERROR(files_->Flush(ino));
    SetAttrRequest r;
    r.size = size;
    auto a = meta_->SetAttr(ctx, ino, r);
    if (a.ok()) files_->Truncated(ino, size);
    dirs_->InvalidateInode(ino);
    return a;
  }

  static void OpSetattr(fuse_req_t req, fuse_ino_t fino, struct stat* attr, int to_set,
                        fuse_file_info*) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    const InodeId ino = s->FromFuse(fino);
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.mode = attr->st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_UID) r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) r.size = static_cast<uint64_t>(attr->st_size);
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      r.atime_now = true;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      r.atime_ns = attr->st_atim.tv_sec * 1'000'000'000LL + attr->st_atim.tv_nsec;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      r.mtime_now = true;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      r.mtime_ns = attr->st_mtim.tv_sec * 1'000'000'000LL + attr->st_mtim.tv_nsec;
    }
    if (r.size || r.mtime_ns || r.mtime_now) {
      // Buffered writes go first, so they cannot land after the truncate
      // (or stamp an mtime after the one set here).
      Status f = s->files_->Flush(ino);
      if (!f.ok()) return ReplyErr(req, f);
    }
    auto a = s->meta_->SetAttr(s->Ctx(req), ino, r);
    if (a.ok() && r.size) s->files_->Truncated(ino, *r.size);
    s->dirs_->InvalidateInode(ino);
    s->ReplyAttr(req, a);
  }

  static void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
    Impl* s = Self(req);
    auto t = s->meta_->Readlink(s->FromFuse(ino));
    if (!t.ok()) return ReplyErr(req, t.status());
    fuse_reply_readlink(req, t->c_str());
  }

  static void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                      dev_t rdev) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    const InodeId p = s->FromFuse(parent);
    const uint32_t perm = mode & 07777;
    switch (mode & S_IFMT) {
      case S_IFREG:
        return s->ReplyNewEntry(req, parent, name,
                                [&] { return s->meta_->Create(s->Ctx(req), p, name, perm, true); });
      case S_IFDIR:
        return s->ReplyNewEntry(req, parent, name,
                                [&] { return s->meta_->Mkdir(s->Ctx(req), p, name, perm); });
      case S_IFIFO:
        return s->ReplyNewEntry(req, parent, name, [&] {
          return s->meta_->Mknod(s->Ctx(req), p, name, FileType::kFifo, perm, 0);
        });
      case S_IFSOCK:
        return s->ReplyNewEntry(req, parent, name, [&] {
          return s->meta_->Mknod(s->Ctx(req), p, name, FileType::kSocket, perm, 0);
        });
      case S_IFCHR:
        return s->ReplyNewEntry(req, parent, name, [&] {
          return s->meta_->Mknod(s->Ctx(req), p, name, FileType::kCharDevice, perm, rdev);
        });
      case S_IFBLK:
        return s->ReplyNewEntry(req, parent, name, [&] {
          return s->meta_->Mknod(s->Ctx(req), p, name, FileType::kBlockDevice, perm, rdev);
        });
      default:
        fuse_reply_err(req, EINVAL);
    }
  }

  static void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    s->ReplyNewEntry(req, parent, name, [&] {
      return s->meta_->Mkdir(s->Ctx(req), s->FromFuse(parent), name, mode & 07777);
    });
  }

  static void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    RequestContext ctx = s->Ctx(req);
    const InodeId p = s->FromFuse(parent);
    s->HoldIfOpen(ctx, p, name);
    s->ReplyRemoved(req, p, name, [&] { return s->meta_->Unlink(ctx, p, name); });
  }

  static void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    const InodeId p = s->FromFuse(parent);
    s->ReplyRemoved(req, p, name, [&] { return s->meta_->Rmdir(s->Ctx(req), p, name); });
  }

  static void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    s->ReplyNewEntry(req, parent, name, [&] {
      return s->meta_->Symlink(s->Ctx(req), s->FromFuse(parent), name, link);
    });
  }

  static void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                       const char* newname, unsigned int flags) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    uint32_t f = 0;
    if (flags & RENAME_NOREPLACE) f |= kRenameNoReplace;
    if (flags & RENAME_EXCHANGE) f |= kRenameExchange;
    if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      return (void)fuse_reply_err(req, EINVAL);  // RENAME_WHITEOUT: overlayfs only
    }
    RequestContext ctx = s->Ctx(req);
    const InodeId p = s->FromFuse(parent), np = s->FromFuse(newparent);
    const bool move = !(f & kRenameExchange);
    if (move) {
      s->HoldIfOpen(ctx, np, newname);
      // The kernel moves its dentries itself; the echoes must not unhash
      // them. Marked before the call, so an echo that beats the reply is
      // caught.
      s->RecordOwnEntry(p, name);
      s->RecordOwnEntry(np, newname);
    }
    Status st = s->meta_->Rename(ctx, p, name, np, newname, f);
    if (st.ok()) {
      s->dirs_->Renamed(p, name, np, newname, !move);
    } else if (move) {
      s->DropOwnEntry(p, name);
      s->DropOwnEntry(np, newname);
    }
    fuse_reply_err(req, ErrnoOf(st));
  }

  static void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    s->ReplyNewEntry(req, newparent, newname, [&] {
      return s->meta_->Link(s->Ctx(req), s->FromFuse(ino), s->FromFuse(newparent), newname);
    });
  }

  /// Sets up I/O on an opened regular file and decides about the page cache.
  void OpenFile(const InodeAttr& a, fuse_file_info* fi,
                std::optional<std::vector<Chunk>> chunks = std::nullopt) {
    files_->Open(a, std::move(chunks), (fi->flags & O_ACCMODE) != O_WRONLY);
    std::lock_guard<std::mutex> g(open_mu_);
    ++open_count_[a.ino.value];
    // Close-to-open: keep the kernel's pages only when nothing changed
    // since this mount last opened the file.
    auto& seen = seen_[a.ino.value];
    fi->keep_cache = seen.first == a.mtime_ns && seen.second == a.size;
    seen = {a.mtime_ns, a.size};
    if (seen_.size() > 200'000) seen_.clear();
  }

  static void OpOpen(fuse_req_t req, fuse_ino_t fino, fuse_file_info* fi) {
    Impl* s = Self(req);
    const int acc = fi->flags & O_ACCMODE;
    if (s->options_.read_only && (acc != O_RDONLY || (fi->flags & O_TRUNC))) {
      return (void)fuse_reply_err(req, EROFS);
    }
    const InodeId ino = s->FromFuse(fino);
    // The chunk list comes with the attributes (one round trip), so the
    // first read needs no ReadChunks call.
    std::optional<std::vector<Chunk>> chunks;
    auto a = s->meta_->GetAttrWithChunks(ino, kChunksWithOpen, &chunks);
    if (!a.ok()) return ReplyErr(req, a.status());
    if (a->type == FileType::kDirectory) return (void)fuse_reply_err(req, EISDIR);
    if (!s->options_.default_permissions) {
      const int mask = (acc == O_RDONLY   ? 4
                        : acc == O_WRONLY ? 2
                                          : 6) |
                       (fi->flags & O_TRUNC ? 2 : 0);
      if (!MayAccess(s->Ctx(req), *a, mask)) return (void)fuse_reply_err(req, EACCES);
    }
    if ((fi->flags & O_TRUNC) && a->size != 0) {
      // FUSE_CAP_ATOMIC_O_TRUNC: the kernel leaves O_TRUNC to us.
      a = s->Resize(s->Ctx(req), ino, 0);
      if (!a.ok()) return ReplyErr(req, a.status());
      chunks.reset();  // the truncate changed them
    }
    s->OpenFile(*a, fi, std::move(chunks));
    fuse_reply_open(req, fi);
  }

  static void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                       fuse_file_info* fi) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    bool created = false;
    RequestContext ctx = s->Ctx(req);
    const InodeId p = s->FromFuse(parent);
    s->RecordOwnEntry(p, name);  // before: see ReplyNewEntry
    auto a = s->meta_->Create(ctx, p, name, mode & 07777, (fi->flags & O_EXCL) != 0, &created);
    if (!created) s->DropOwnEntry(p, name);  // no entry made, no echo to expect
    if (!a.ok()) return ReplyErr(req, a.status());
    if (!created && (fi->flags & O_TRUNC) && a->size != 0) {
      a = s->Resize(ctx, a->ino, 0);
      if (!a.ok()) return ReplyErr(req, a.status());
    }
    if (created) {
      s->SetNoCapability(a->ino, true);  // a new file has no xattrs
      s->dirs_->Added(p, name, *a);
    }
    s->OpenFile(*a, fi);
    fuse_entry_param e;
    s->FillEntry(*a, &e);
    fuse_reply_create(req, &e, fi);
  }

  static void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    Impl* s = Self(req);
    auto data = s->files_->Read(s->FromFuse(ino), static_cast<uint64_t>(off), size);
    if (!data.ok()) return ReplyErr(req, data.status());
    fuse_reply_buf(req, data->data(), data->size());
  }

  static void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                      fuse_file_info*) {
    Impl* s = Self(req);
    Status st =
        s->files_->Write(s->FromFuse(ino), static_cast<uint64_t>(off), std::string_view(buf, size));
    if (!st.ok()) return ReplyErr(req, st);
    fuse_reply_write(req, size);
  }

  static void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    Impl* s = Self(req);
    const InodeId i = s->FromFuse(ino);
    Status st = s->options_.sync ? s->files_->Fsync(i) : s->files_->Flush(i);
    s->dirs_->InvalidateInode(i);  // its size and mtime may have changed
    fuse_reply_err(req, ErrnoOf(st));
  }

  static void OpRelease(fuse_req_t req, fuse_ino_t fino, fuse_file_info*) {
    Impl* s = Self(req);
    const InodeId ino = s->FromFuse(fino);
    Status st = s->files_->Flush(ino);  // normally empty: flush came first
    if (!st.ok()) spdlog::warn("fuse.release ino={}: {}", ino.value, st.ToString());
    s->files_->Release(ino);
    bool release_hold = false;
    {
      std::lock_guard<std::mutex> g(s->open_mu_);
      auto it = s->open_count_.find(ino.value);
      if (it != s->open_count_.end() && --it->second <= 0) {
        s->open_count_.erase(it);
        release_hold = s->held_.erase(ino.value) > 0;
      }
    }
    if (release_hold) (void)s->meta_->ReleaseFile(s->session_, ino);
    fuse_reply_err(req, 0);
  }

  static void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    Impl* s = Self(req);
    Status st = s->files_->Fsync(s->FromFuse(ino));
    if (!st.ok()) spdlog::warn("fuse.fsync ino={}: {}", ino, st.ToString());
    fuse_reply_err(req, ErrnoOf(st));
  }

  static void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Impl* s = Self(req);
    auto a = s->meta_->GetAttr(s->FromFuse(ino));
    if (!a.ok()) return ReplyErr(req, a.status());
    if (a->type != FileType::kDirectory) return (void)fuse_reply_err(req, ENOTDIR);
    fuse_reply_open(req, fi);
  }

  void ReadDir(fuse_req_t req, fuse_ino_t fino, size_t size, off_t off, bool plus) {
    const InodeId dir = FromFuse(fino);
    std::string buf(size, '\0');
    size_t used = 0;
    auto add = [&](const std::string& name, const struct stat& st, uint64_t cookie,
                   const fuse_entry_param* e) -> bool {
      size_t n = plus ? fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), e,
                                               static_cast<off_t>(cookie))
                      : fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st,
                                          static_cast<off_t>(cookie));
      if (n > size - used) return false;
      used += n;
      return true;
    };
    uint64_t cookie = static_cast<uint64_t>(off);
    RequestContext ctx = Ctx(req);
    if (cookie < 2) {
      // "." (cookie 1) and ".." (cookie 2); the kernel never looks these up.
      fuse_entry_param e;
      std::memset(&e, 0, sizeof(e));
      e.attr.st_mode = S_IFDIR;
      e.attr.st_ino = fino;
      if (cookie < 1) {
        if (!add(".", e.attr, 1, &e)) return (void)fuse_reply_buf(req, buf.data(), used);
      }
      e.attr.st_ino = fino == FUSE_ROOT_ID ? FUSE_ROOT_ID : 0;
      if (!add("..", e.attr, 2, &e)) return (void)fuse_reply_buf(req, buf.data(), used);
      cookie = 2;
    }
    // About 100 bytes per entry (plus: 200): ask for what fits.
    const size_t want = std::max<size_t>(8, size / (plus ? 160 : 48));
    auto r = meta_->ReadDir(ctx, dir, cookie, want, plus);
    if (!r.ok()) {
      if (used > 0) return (void)fuse_reply_buf(req, buf.data(), used);
      return ReplyErr(req, r.status());
    }
    for (const DirEntry& d : r->entries) {
      fuse_entry_param e;
      if (plus && d.attr) {
        FillEntry(*d.attr, &e);
      } else {
        std::memset(&e, 0, sizeof(e));
        e.attr.st_ino = ToFuse(d.ino);
        InodeAttr tmp;
        tmp.type = d.type;
        e.attr.st_mode = tmp.StMode();
      }
      if (!add(d.name, e.attr, d.cookie, &e)) break;
    }
    fuse_reply_buf(req, buf.data(), used);
  }

  static void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    Self(req)->ReadDir(req, ino, size, off, false);
  }
  static void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                            fuse_file_info*) {
    Self(req)->ReadDir(req, ino, size, off, true);
  }
  static void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
  static void OpFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
    // Namespace changes are committed (visible) when they return; this
    // makes them, and every other change so far, durable on meta's disk.
    fuse_reply_err(req, ErrnoOf(Self(req)->meta_->Sync()));
  }

  static void OpStatfs(fuse_req_t req, fuse_ino_t) {
    Impl* s = Self(req);
    auto fs = s->meta_->GetStatFs();
    if (!fs.ok()) return ReplyErr(req, fs.status());
    struct statvfs st;
    std::memset(&st, 0, sizeof(st));
    const uint64_t bsize = 4096;
    const uint64_t used_blocks = (fs->bytes_used + bsize - 1) / bsize;
    const uint64_t capacity = s->Capacity();
    st.f_bsize = kBlockSize;
    st.f_frsize = bsize;
    st.f_blocks = std::max(capacity / bsize, used_blocks);
    st.f_bfree = st.f_blocks - used_blocks;
    st.f_bavail = st.f_bfree;
    st.f_files = fs->inodes + (1ull << 32);
    st.f_ffree = 1ull << 32;
    st.f_favail = st.f_ffree;
    st.f_namemax = kMaxNameBytes;
    fuse_reply_statfs(req, &st);
  }

  /// Bytes the cluster can hold, for df. TODO(issue 3): the master's
  /// free-space figure; until then a nominal 1 PiB.
  uint64_t Capacity() { return 1ull << 50; }

  /// POSIX ACLs are refused by the namespace (EOPNOTSUPP); answering here
  /// saves cp -a and tar a round trip per file.
  static bool IsPosixAcl(const char* name) {
    return std::strncmp(name, "system.posix_acl_", 17) == 0;
  }
  static bool IsCapability(const char* name) {
    return std::strcmp(name, "security.capability") == 0;
  }

  /// Inodes known to have no security.capability xattr. The kernel asks for
  /// it before every write (to drop file capabilities); the answer is
  /// remembered until the inode's attributes change anywhere (the change
  /// stream) or here.
  bool KnownNoCapability(InodeId ino) {
    std::lock_guard<std::mutex> g(nocap_mu_);
    return no_capability_.count(ino.value) > 0;
  }
  void SetNoCapability(InodeId ino, bool none) {
    std::lock_guard<std::mutex> g(nocap_mu_);
    if (!none) {
      no_capability_.erase(ino.value);
      return;
    }
    if (no_capability_.size() > 100'000) no_capability_.clear();
    no_capability_.insert(ino.value);
  }

  static void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                         size_t size, int flags) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    if (IsPosixAcl(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
    s->SetNoCapability(s->FromFuse(ino), false);
    int f = 0;
    if (flags & XATTR_CREATE) f |= kXattrCreate;
    if (flags & XATTR_REPLACE) f |= kXattrReplace;
    fuse_reply_err(req, ErrnoOf(s->meta_->SetXattr(s->Ctx(req), s->FromFuse(ino), name,
                                                   std::string(value, size), f)));
  }

  static void OpGetxattr(fuse_req_t req, fuse_ino_t fino, const char* name, size_t size) {
    Impl* s = Self(req);
    if (IsPosixAcl(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
    const InodeId ino = s->FromFuse(fino);
    const bool cap = IsCapability(name);
    if (cap && s->KnownNoCapability(ino)) return (void)fuse_reply_err(req, ENODATA);
    auto v = s->meta_->GetXattr(s->Ctx(req), ino, name);
    if (cap && !v.ok() && v.status().posix_errno() == ENODATA) s->SetNoCapability(ino, true);
    if (!v.ok()) return ReplyErr(req, v.status());
    if (size == 0) return (void)fuse_reply_xattr(req, v->size());
    if (v->size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, v->data(), v->size());
  }

  static void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    Impl* s = Self(req);
    auto names = s->meta_->ListXattr(s->Ctx(req), s->FromFuse(ino));
    if (!names.ok()) return ReplyErr(req, names.status());
    std::string out;
    for (const auto& n : *names) {
      out += n;
      out.push_back('\0');
    }
    if (size == 0) return (void)fuse_reply_xattr(req, out.size());
    if (out.size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, out.data(), out.size());
  }

  static void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    if (IsPosixAcl(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
    s->SetNoCapability(s->FromFuse(ino), false);
    fuse_reply_err(req, ErrnoOf(s->meta_->RemoveXattr(s->Ctx(req), s->FromFuse(ino), name)));
  }

  static void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
    Impl* s = Self(req);
    if ((mask & W_OK) && s->options_.read_only) return (void)fuse_reply_err(req, EROFS);
    fuse_reply_err(req, ErrnoOf(s->meta_->Access(s->Ctx(req), s->FromFuse(ino), mask)));
  }

  static void OpFallocate(fuse_req_t req, fuse_ino_t fino, int mode, off_t offset, off_t length,
                          fuse_file_info*) {
    Impl* s = Self(req);
    if (s->ReadOnly(req)) return;
    if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
    const InodeId ino = s->FromFuse(fino);
    if (mode == FALLOC_FL_KEEP_SIZE) return (void)fuse_reply_err(req, 0);  // no space to reserve
    if (mode != 0) return (void)fuse_reply_err(req, EOPNOTSUPP);
    // Holes read as zeros, so allocating is extending the size.
    const uint64_t end = static_cast<uint64_t>(offset) + static_cast<uint64_t>(length);
    Status f = s->files_->Flush(ino);
    if (!f.ok()) return ReplyErr(req, f);
    auto a = s->meta_->GetAttr(ino);
    if (!a.ok()) return ReplyErr(req, a.status());
    if (a->type != FileType::kRegular) return (void)fuse_reply_err(req, ENODEV);
    if (a->size < end) {
      auto b = s->Resize(s->Ctx(req), ino, end);
      if (!b.ok()) return ReplyErr(req, b.status());
    }
    fuse_reply_err(req, 0);
  }

  static const fuse_lowlevel_ops* Ops() {
    static const fuse_lowlevel_ops ops = [] {
      fuse_lowlevel_ops o;
      std::memset(&o, 0, sizeof(o));
      o.init = OpInit;
      o.lookup = OpLookup;
      o.forget = OpForget;
      o.forget_multi = OpForgetMulti;
      o.getattr = OpGetattr;
      o.setattr = OpSetattr;
      o.readlink = OpReadlink;
      o.mknod = OpMknod;
      o.mkdir = OpMkdir;
      o.unlink = OpUnlink;
      o.rmdir = OpRmdir;
      o.symlink = OpSymlink;
      o.rename = OpRename;
      o.link = OpLink;
      o.open = OpOpen;
      o.read = OpRead;
      o.write = OpWrite;
      o.flush = OpFlush;
      o.release = OpRelease;
      o.fsync = OpFsync;
      o.opendir = OpOpendir;
      o.readdir = OpReaddir;
      o.readdirplus = OpReaddirplus;
      o.releasedir = OpReleasedir;
      o.fsyncdir = OpFsyncdir;
      o.statfs = OpStatfs;
      o.setxattr = OpSetxattr;
      o.getxattr = OpGetxattr;
      o.listxattr = OpListxattr;
      o.removexattr = OpRemovexattr;
      o.access = OpAccess;
      o.create = OpCreate;
      o.fallocate = OpFallocate;
      // getlk/setlk/flock stay unset: the kernel then keeps record locks and
      // flock locks itself, exact among the processes of this mount.
      return o;
    }();
    return &ops;
  }

 private:
  Status MountKernel() {
    std::vector<std::string> args{
        "needlefs", "-o",
        "fsname=needlefs:" + options_.meta + ":" + options_.subdir + ",subtype=needlefs"};
    if (options_.allow_other) args.insert(args.end(), {"-o", "allow_other"});
    if (options_.default_permissions) args.insert(args.end(), {"-o", "default_permissions"});
    if (options_.read_only) args.insert(args.end(), {"-o", "ro"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    se_ = fuse_session_new(&fargs, Ops(), sizeof(fuse_lowlevel_ops), this);
    fuse_opt_free_args(&fargs);
    if (!se_) return Status::Internal("fuse_session_new failed (bad options?)");
    if (fuse_session_mount(se_, options_.mountpoint.c_str()) != 0) {
      fuse_session_destroy(se_);
      se_ = nullptr;
      return Status::Internal("cannot mount FUSE at " + options_.mountpoint +
                              " (see the message above; is /dev/fuse there and the "
                              "directory not already a mount?)");
    }
    mounted_ = true;
    StartBackground();
    return Status::OK();
  }

  void Unmount() {
    std::lock_guard<std::mutex> g(unmount_mu_);
    if (!mounted_ || !se_) return;
    mounted_ = false;
    fuse_session_unmount(se_);
  }

  void StartBackground() {
    renewer_ = std::thread([this] { RenewLoop(); });
    if (!options_.invalidate_from_changes) return;
    subscriber_ = std::thread([this] { SubscribeLoop(); });
    // The stream starts with a reset, which clears the own-entry marks:
    // applied after the mount is in use, it wiped the marks of the first
    // changes, whose echoes then invalidated dentries of this mount's own
    // new directories (getcwd failed in one). So the mount is ready only
    // once the stream is.
    std::unique_lock<std::mutex> l(bg_mu_);
    if (!bg_cv_.wait_for(l, kSubscribeStartTimeout, [&] { return subscribed_ || bg_stop_; })) {
      spdlog::warn("fuse.subscribe: no change stream after {} ms; going on without waiting",
                   kSubscribeStartTimeout.count());
    }
  }

  void StopBackground() {
    {
      std::lock_guard<std::mutex> g(bg_mu_);
      bg_stop_ = true;
    }
    bg_cv_.notify_all();
    if (meta_) meta_->CancelSubscribe();
    if (renewer_.joinable()) renewer_.join();
    if (subscriber_.joinable()) subscriber_.join();
  }

  /// Keeps the meta session alive (it holds unlinked-but-open files).
  void RenewLoop() {
    std::unique_lock<std::mutex> l(bg_mu_);
    while (!bg_cv_.wait_for(l, std::chrono::milliseconds(kSessionLeaseMs / 3),
                            [&] { return bg_stop_; })) {
      l.unlock();
      Status st = meta_->RenewSession(session_, kSessionLeaseMs);
      if (!st.ok()) spdlog::warn("fuse.session renew: {}", st.ToString());
      if (st.code() == StatusCode::kNotFound) {
        auto s = meta_->OpenSession("fuse:" + options_.mountpoint, kSessionLeaseMs);
        if (s.ok()) {
          session_ = *s;
          std::lock_guard<std::mutex> g(open_mu_);
          for (uint64_t ino : held_) (void)meta_->OpenFile(session_, InodeId{ino});
        }
      }
      l.lock();
    }
  }

  /// Follows meta's change stream and drops what the kernel caches about
  /// what others changed.
  void SubscribeLoop() {
    uint64_t last = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> g(bg_mu_);
        if (bg_stop_) return;
      }
      Status st = meta_->Subscribe(last, [&](uint64_t seq, const ChangeEvent& e, bool reset) {
        last = seq;
        if (reset) {
          files_->InvalidateAll();
          dirs_->Clear();
          {
            // Echoes lost with the old stream would keep their marks.
            std::lock_guard<std::mutex> g(own_mu_);
            own_entries_.clear();
          }
          {
            std::lock_guard<std::mutex> g(nocap_mu_);
            no_capability_.clear();
          }
          {
            // Last: the mount starts serving once this is set, and its
            // first marks must not be cleared by this reset.
            std::lock_guard<std::mutex> g(bg_mu_);
            subscribed_ = true;
          }
          bg_cv_.notify_all();
          return true;
        }
        if (e.kind == ChangeEvent::Kind::kAttr) {
          files_->Invalidate(e.ino);
          dirs_->InvalidateInode(e.ino);
          SetNoCapability(e.ino, false);
          fuse_lowlevel_notify_inval_inode(se_, ToFuse(e.ino), 0, 0);
        } else if (!IsOwnEntry(e)) {
          dirs_->InvalidateDir(e.parent);
          dirs_->InvalidateInode(e.ino);
          fuse_lowlevel_notify_inval_entry(se_, ToFuse(e.parent), e.name.data(), e.name.size());
          fuse_lowlevel_notify_inval_inode(se_, ToFuse(e.ino), -1, 0);
        }
        return true;
      });
      std::unique_lock<std::mutex> l(bg_mu_);
      if (bg_stop_) return;
      if (!st.ok()) spdlog::debug("fuse.subscribe: {}", st.ToString());
      bg_cv_.wait_for(l, std::chrono::seconds(1), [&] { return bg_stop_; });
    }
  }

  FuseMountOptions options_;
  std::unique_ptr<MetaClient> meta_;
  std::unique_ptr<BlobClient> blobs_;
  std::unique_ptr<FileClient> files_;
  std::unique_ptr<DirCache> dirs_;
  fuse_session* se_ = nullptr;
  InodeId root_ = kRootInode;
  std::atomic<uint64_t> session_{0};  // written by RenewLoop, read by workers
  std::atomic<bool> stopping_{false};
  std::mutex unmount_mu_;
  bool mounted_ = false;  // GUARDED_BY(unmount_mu_)

  std::mutex groups_mu_;
  std::unordered_map<pid_t, GroupsEntry> groups_;  // GUARDED_BY(groups_mu_)

  std::mutex open_mu_;
  std::unordered_map<uint64_t, int> open_count_;  // GUARDED_BY(open_mu_): opens per inode
  std::unordered_map<uint64_t, std::pair<int64_t, uint64_t>> seen_;  // (mtime, size) at open
  std::set<uint64_t> held_;  // GUARDED_BY(open_mu_): inodes meta holds open for us

  std::mutex own_mu_;
  std::unordered_map<std::string, int> own_entries_;  // GUARDED_BY(own_mu_): marks per name

  std::mutex nocap_mu_;
  std::unordered_set<uint64_t> no_capability_;  // GUARDED_BY(nocap_mu_)

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool subscribed_ = false;  // GUARDED_BY(bg_mu_): the change stream's first reset arrived
  bool bg_stop_ = false;     // GUARDED_BY(bg_mu_)
  std::thread renewer_;
  std::thread subscriber_;
};

FuseMount::FuseMount(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FuseMount::~FuseMount() = default;

StatusOr<std::unique_ptr<FuseMount>> FuseMount::Mount(const FuseMountOptions& options) {
  // Threads made from here on (gRPC, uploads, change stream) leave
  // termination signals to the thread that runs the FUSE loop.
  const sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto impl = std::make_unique<Impl>(options);
  NEEDLEFS_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(impl)));
}

Status FuseMount::Run() { return impl_->Run(); }
void FuseMount::Stop() { impl_->Stop(); }

}  // namespace needlefs
