#include "client/file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
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

/// How long Open waits for meta's change stream to start.
constexpr std::chrono::milliseconds kSubscribeStartTimeout{5'000};
/// Files of at most this many chunks get their chunk list with the
/// attributes on open (GetAttrWithChunks).
constexpr uint32_t kChunksWithOpen = 64;
/// Longest path ResolvePath takes, bytes (Linux PATH_MAX).
constexpr size_t kMaxPathBytes = 4096;
/// Nominal capacity until the master reports free space (issue 3).
constexpr uint64_t kNominalCapacityBytes = 1ull << 50;

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool IsPosixAcl(const std::string& name) { return name.rfind("system.posix_acl_", 0) == 0; }
bool IsCapability(const std::string& name) { return name == "security.capability"; }

/// The kernel's __FMODE_EXEC in the flags of the open execve(2) makes: it
/// needs execute permission, not read (a 0711 program runs).
constexpr int kFmodeExec = 0x20;

/// R_OK/W_OK/X_OK of open(2) flags (O_TRUNC needs write permission).
int AccessMask(int flags) {
  if (flags & kFmodeExec) return X_OK;
  const int acc = flags & O_ACCMODE;
  int mask = acc == O_RDONLY ? R_OK : acc == O_WRONLY ? W_OK : R_OK | W_OK;
  if (flags & O_TRUNC) mask |= W_OK;
  return mask;
}

/// One open of a file: explicit (Open/Create) or implicit (stateless I/O).
struct Handle {
  InodeId ino;
  bool readable = false;
  bool writable = false;
  bool fresh = false;  ///< from the create that made the file (FreshFile)
};

/// The implicit open of an inode: one per inode, shared by every stateless
/// caller, with the attributes its permission checks use.
struct ImplicitOpen {
  uint64_t handle = 0;
  InodeAttr attr;
  bool attr_valid = false;  ///< false after a change: fetch again
  int64_t last_use_ns = 0;
  int busy = 0;  ///< calls using it now: it does not expire meanwhile
};

}  // namespace

class FileSystem::Impl {
 public:
  Impl(FileSystemOptions o, FileSystemListener* listener)
      : options_(std::move(o)), listener_(listener) {
    std::random_device rd;
    verifier_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(MonotonicNs());
  }

  ~Impl() {
    StopBackground();
    if (files_) {
      std::vector<uint64_t> handles;
      {
        std::lock_guard<std::mutex> g(open_mu_);
        for (const auto& [h, _] : handles_) handles.push_back(h);
        implicit_.clear();
      }
      for (uint64_t h : handles) Release(h);
    }
    if (session_ != 0 && meta_) (void)meta_->CloseSession(session_);
  }

  Status Init() {
    auto m = MetaClient::Create(options_.meta, options_.meta_timeout_ms);
    if (!m.ok()) return m.status();
    meta_ = std::move(m).value();
    BlobClientOptions bo;
    bo.master = options_.master;
    blobs_ = std::make_unique<BlobClient>(bo);
    FileClientOptions fo = options_.file;
    // close(2) promises no durability; fsync(2) does (and sync on flush).
    fo.unstable_uploads = true;
    // A commit's echo (an attribute event of the inode) is this client's own.
    fo.before_commit = [this](InodeId ino) {
      RecordOwnAttr(ino);
      return BeginFileChange(ino);
    };
    fo.commit_attrs = [this](InodeId ino, bool last) { return TakeDeferred(ino, last); };
    fo.after_commit = [this](InodeId ino, uint64_t token, const InodeAttr* committed) {
      dirs_->InvalidateInode(ino);  // its size and mtime in a cached listing
      InvalidateImplicit(ino);
      EndFileChange(ino, token, committed);
      if (!committed) DropOwnAttr(ino);
    };
    files_ = std::make_unique<FileClient>(meta_.get(), blobs_.get(), fo);
    DirCacheOptions dc;
    // Listings answer lookups only while meta's change stream can
    // invalidate them.
    dc.ttl_ns = options_.dir_cache && options_.follow_changes ? options_.entry_ttl_ns : 0;
    dirs_ = std::make_unique<DirCache>(meta_.get(), dc);

    auto root = ResolveFrom(RequestContext::Root(), kRootInode, options_.subdir, true);
    if (!root.ok()) {
      if (root.status().posix_errno() == ENOENT) {
        return Status::NotFound("subdirectory " + options_.subdir + " does not exist");
      }
      if (root.status().posix_errno() == ENOTDIR) {
        return Status::FailedPrecondition(options_.subdir + " is not a directory");
      }
      if (root.status().posix_errno() != 0) {
        return Status::InvalidArgument("subdirectory " + options_.subdir + ": " +
                                       std::string(root.status().message()));
      }
      return root.status().WithContext("meta at " + options_.meta);
    }
    if (root->type != FileType::kDirectory) {
      return Status::FailedPrecondition(options_.subdir + " is not a directory");
    }
    root_ = root->ino;

    auto session = meta_->OpenSession(options_.client_name, options_.session_lease_ms);
    if (!session.ok()) return session.status().WithContext("open session");
    session_ = *session;
    StartBackground();
    return Status::OK();
  }

  // ---- helpers ----

  /// `ctx` with this layer's durability (options.sync).
  RequestContext C(const RequestContext& ctx) const {
    RequestContext c = ctx;
    c.sync = options_.sync;
    return c;
  }

  Status ReadOnly() const {
    return options_.read_only ? Status::Posix(EROFS, "read-only file system") : Status::OK();
  }

  /// `a` with the size of data buffered here (and the attribute changes
  /// deferred to its commit, OverlayDeferred).
  InodeAttr WithPending(InodeAttr a) {
    if (a.type == FileType::kRegular) {
      if (auto pending = files_->PendingSize(a.ino)) a.size = *pending;
      OverlayDeferred(&a);
    }
    return a;
  }
  StatusOr<InodeAttr> WithPending(StatusOr<InodeAttr> a) {
    if (a.ok()) return WithPending(*a);
    return a;
  }

  /// `fetch()` (meta's attributes of `ino`) with the size of data buffered
  /// here. A flush that commits while meta answers would leave neither: the
  /// buffered size is gone and meta's answer predates the commit, a size
  /// too small (the kernel then appends over the last write). So when data
  /// was buffered before the call and is not after, ask again.
  /// With `kept_ok`, attributes kept from this client's own change of a
  /// file (CachedFileAttr) stand for meta's.
  template <typename Fetch>
  StatusOr<InodeAttr> FreshAttr(InodeId ino, Fetch&& fetch, bool kept_ok = false) {
    for (int attempt = 0;; ++attempt) {
      const bool buffered = files_->PendingSize(ino).has_value();
      std::optional<InodeAttr> kept;
      if (kept_ok) kept = CachedFileAttr(ino);
      StatusOr<InodeAttr> a = kept ? StatusOr<InodeAttr>(*kept) : fetch();
      if (!a.ok()) return a;
      if (!kept) DropKeptFileAttr(ino);  // meta's answer is newer
      if (a->type != FileType::kRegular) return a;
      OverlayDeferred(&*a);
      if (auto pending = files_->PendingSize(ino)) {
        a->size = *pending;
        return a;
      }
      if (!buffered || attempt == 3) return a;
    }
  }

  /// Resolves `path` from `dir` with `ctx`'s permissions; see ResolvePath.
  /// `allow_dots`: "." components are skipped (the configured subdir).
  StatusOr<InodeAttr> ResolveFrom(const RequestContext& ctx, InodeId dir, std::string_view path,
                                  bool allow_dots) {
    if (path.size() > kMaxPathBytes) return Status::Posix(ENAMETOOLONG, "path too long");
    auto cur = meta_->GetAttr(dir);
    if (!cur.ok()) return cur;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t next = path.find('/', pos);
      if (next == std::string_view::npos) next = path.size();
      const std::string part(path.substr(pos, next - pos));
      pos = next + 1;
      if (part.empty()) continue;
      if (part == "." && allow_dots) continue;
      if (part == "." || part == "..") {
        return Status::Posix(EINVAL, "path component " + part + " is not allowed");
      }
      if (cur->type == FileType::kSymlink) return Status::Posix(ENOTDIR, "symlink in path");
      if (cur->type != FileType::kDirectory) return Status::Posix(ENOTDIR, "not a directory");
      auto a = Lookup(ctx, cur->ino, part);
      if (!a.ok()) return a;
      cur = std::move(a);
    }
    if (!path.empty() && path.back() == '/' && cur->type != FileType::kDirectory) {
      return Status::Posix(ENOTDIR, "trailing / after a non-directory");
    }
    return cur;
  }

  // ---- attribute changes deferred to the commit of a new file ----
  //
  // tar, cp -a and rsync create a file, write it, and set its owner, mode
  // and times through the open descriptor before closing it: three
  // SETATTRs, each a meta round trip, for a file no other client can have
  // seen complete (close-to-open promises it only after close). So a
  // change this client can be sure meta will accept (see Deferrable) of a
  // file it created and still holds open from that create is answered here
  // and sent with the file's commit, in the same meta transaction
  // (AddChunks' attributes), where meta applies it with SetAttr's own
  // rules. Anything else, a truncate, a change not sure to pass, or a
  // write after deferred times, first sends what was deferred.

  struct FreshFile {
    uint32_t creator = 0;   ///< the process that created it (RequestContext::pid)
    int handles = 0;        ///< handles of this create still open
    bool deferring = true;  ///< off once the last commit took the changes or one was sent
    InodeAttr shown;        ///< the attributes as the deferred changes left them
    std::optional<std::pair<RequestContext, SetAttrRequest>> pending;
  };

  /// The create of `a` by `ctx` returned a handle: that process's changes
  /// of it may be deferred (when meta takes attributes with a commit).
  void NoteFresh(const RequestContext& ctx, const InodeAttr& a) {
    if (ctx.pid == 0 || !meta_->TakesCommitAttributes()) return;
    std::lock_guard<std::mutex> g(fresh_mu_);
    FreshFile& f = fresh_[a.ino.value];
    ++f.handles;
    f.creator = ctx.pid;
    f.shown = a;
  }

  /// A change meta is sure to accept as SetAttr would: no size, no "now"
  /// times (meta's clock), by the owner or root; a mode without set-id bits
  /// unless by root (meta may clear them); an owner or group only as root
  /// and unchanged (tar's and cp's chown to what the file has).
  static bool Deferrable(const RequestContext& ctx, const InodeAttr& a, const SetAttrRequest& req) {
    if (req.size || req.atime_now || req.mtime_now) return false;
    if (ctx.uid != 0 && ctx.uid != a.uid) return false;
    if (req.mode && ctx.uid != 0 && (*req.mode & (S_ISUID | S_ISGID))) return false;
    if ((req.uid && (ctx.uid != 0 || *req.uid != a.uid)) ||
        (req.gid && (ctx.uid != 0 || *req.gid != a.gid))) {
      return false;
    }
    return req.mode || req.uid || req.gid || req.atime_ns || req.mtime_ns;
  }

  /// Defers `req` on fresh file `ino` when it may be: the attributes as
  /// the change leaves them; nullopt when it was not deferred.
  std::optional<InodeAttr> TryDefer(const RequestContext& ctx, InodeId ino,
                                    const SetAttrRequest& req) {
    std::lock_guard<std::mutex> g(fresh_mu_);
    auto it = fresh_.find(ino.value);
    if (it == fresh_.end() || !it->second.deferring) return std::nullopt;
    FreshFile& f = it->second;
    // Only the creator's own changes: another process's chmod of a file
    // someone keeps open (a log) must reach meta now.
    if (ctx.pid != f.creator || !Deferrable(ctx, f.shown, req)) return std::nullopt;
    if (f.pending && (f.pending->first.uid != ctx.uid || f.pending->first.gid != ctx.gid)) {
      return std::nullopt;  // another caller: its own rules, its own call
    }
    if (!f.pending) f.pending.emplace(C(ctx), SetAttrRequest{});
    SetAttrRequest& q = f.pending->second;
    if (req.mode) q.mode = f.shown.mode = *req.mode & 07777;
    if (req.uid) q.uid = *req.uid;
    if (req.gid) q.gid = *req.gid;
    if (req.atime_ns) q.atime_ns = f.shown.atime_ns = *req.atime_ns;
    if (req.mtime_ns) q.mtime_ns = f.shown.mtime_ns = *req.mtime_ns;
    f.shown.ctime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    return f.shown;
  }

  /// The deferred changes of `ino` for a commit that sends them
  /// (FileClientOptions::commit_attrs): a mode or owner goes with any
  /// commit (data must not reach meta under the old mode); times only with
  /// the `last` one, which ends the deferring for this open.
  std::optional<std::pair<RequestContext, SetAttrRequest>> TakeDeferred(InodeId ino,
                                                                        bool last = true) {
    std::lock_guard<std::mutex> g(fresh_mu_);
    auto it = fresh_.find(ino.value);
    if (it == fresh_.end()) return std::nullopt;
    FreshFile& f = it->second;
    if (last) {
      f.deferring = false;
      auto out = std::move(f.pending);
      f.pending.reset();
      return out;
    }
    if (!f.pending) return std::nullopt;
    SetAttrRequest& q = f.pending->second;
    if (!q.mode && !q.uid && !q.gid) return std::nullopt;
    std::pair<RequestContext, SetAttrRequest> out{f.pending->first, SetAttrRequest{}};
    std::swap(out.second.mode, q.mode);
    std::swap(out.second.uid, q.uid);
    std::swap(out.second.gid, q.gid);
    if (!q.atime_ns && !q.mtime_ns) f.pending.reset();
    return out;
  }

  /// Sends what is deferred for `ino`, if anything, as a SetAttr of its
  /// own (a change that must follow it, or a close without a commit).
  Status SendDeferred(InodeId ino) {
    auto d = TakeDeferred(ino);
    if (!d) return Status::OK();
    RecordOwnAttr(ino);
    const uint64_t token = BeginFileChange(ino);
    auto a = meta_->SetAttr(d->first, ino, d->second);
    EndFileChange(ino, token, a.ok() ? &*a : nullptr);
    if (!a.ok()) DropOwnAttr(ino);
    dirs_->InvalidateInode(ino);
    return a.status();
  }

  /// Commits what `ino` buffered (the commit takes the deferred changes the
  /// data goes before), then sends what is left deferred: what a change
  /// that must follow them does first.
  Status CommitDeferred(InodeId ino) {
    NEEDLEFS_RETURN_IF_ERROR(files_->Flush(ino));
    return SendDeferred(ino);
  }

  /// True when something is deferred for `ino`.
  bool HasDeferred(InodeId ino) {
    std::lock_guard<std::mutex> g(fresh_mu_);
    auto it = fresh_.find(ino.value);
    return it != fresh_.end() && it->second.pending.has_value();
  }

  /// True when `ino` has deferred times: a write must send them first (the
  /// commit would set mtime after them, not before).
  bool HasDeferredTimes(InodeId ino) {
    std::lock_guard<std::mutex> g(fresh_mu_);
    auto it = fresh_.find(ino.value);
    return it != fresh_.end() && it->second.pending &&
           (it->second.pending->second.atime_ns || it->second.pending->second.mtime_ns);
  }

  /// `a` with the changes deferred for it.
  void OverlayDeferred(InodeAttr* a) {
    std::lock_guard<std::mutex> g(fresh_mu_);
    auto it = fresh_.find(a->ino.value);
    if (it == fresh_.end() || !it->second.pending) return;
    const FreshFile& f = it->second;
    a->mode = f.shown.mode;
    a->uid = f.shown.uid;
    a->gid = f.shown.gid;
    if (f.pending->second.atime_ns) a->atime_ns = f.shown.atime_ns;
    if (f.pending->second.mtime_ns) a->mtime_ns = f.shown.mtime_ns;
    a->ctime_ns = std::max(a->ctime_ns, f.shown.ctime_ns);
  }

  /// One handle of `ino` went: at the last, the file is not fresh any more.
  void DropFresh(InodeId ino) {
    std::lock_guard<std::mutex> g(fresh_mu_);
    auto it = fresh_.find(ino.value);
    if (it != fresh_.end() && --it->second.handles <= 0) fresh_.erase(it);
  }

  // ---- own-entry marks: echoes of this client's own changes ----

  /// Remembers that this client is about to change entry `parent`/`name`,
  /// so the change stream's echo of it is not passed to the listener (an
  /// invalidated dentry that is some process's cwd makes getcwd fail).
  /// Counted: the same name changed again before the first echo arrives
  /// (rm -rf then mkdir) expects one echo per change.
  void RecordOwnEntry(InodeId parent, const std::string& name) {
    std::lock_guard<std::mutex> g(own_mu_);
    if (own_entries_.size() > 100'000) own_entries_.clear();
    ++own_entries_[EntryKey(parent, name)];
  }
  /// A marked call failed (or made no entry): forgets the mark, and since
  /// it may have swallowed another client's event for the name meanwhile,
  /// drops the directory's cached listing.
  void DropOwnEntry(InodeId parent, const std::string& name) {
    {
      std::lock_guard<std::mutex> g(own_mu_);
      auto it = own_entries_.find(EntryKey(parent, name));
      if (it != own_entries_.end() && --it->second <= 0) own_entries_.erase(it);
    }
    dirs_->InvalidateDir(parent);
  }
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

  // ---- own directory changes: attributes without a round trip ----
  //
  // Every change of a directory's entries changes its attributes (size,
  // mtime, ctime, nlink), and the kernel then asks for them again before its
  // next permission check in that directory (-o default_permissions: a
  // GETATTR per create or unlink). Meta returns them with the change
  // (ChangeInfo); this client keeps them for GetAttr until the entry
  // timeout ends or another client changes the directory. The change
  // stream's echo of this client's own change is marked, as entries are.

  /// What one modifying call needs to report its directories' new
  /// attributes: the ChangeInfo meta fills (the caller's or a local one)
  /// and the directories it changes.
  struct DirChange {
    ChangeInfo local;
    ChangeInfo* info = nullptr;
    InodeId dirs[2];
    int count = 0;
  };

  /// Marks `dir` (and `dir2`, when another) as changed by this client now:
  /// pass `c.info` to the meta call, then EndDirChange.
  void BeginDirChange(DirChange* c, ChangeInfo* caller, InodeId dir,
                      std::optional<InodeId> dir2 = std::nullopt) {
    c->info = caller ? caller : &c->local;
    c->dirs[c->count++] = dir;
    if (dir2 && *dir2 != dir) c->dirs[c->count++] = *dir2;
    std::lock_guard<std::mutex> g(own_mu_);
    if (own_attrs_.size() > 100'000) own_attrs_.clear();
    for (int i = 0; i < c->count; ++i) ++own_attrs_[c->dirs[i].value];
  }

  /// `committed`: the call changed the directories (meta will echo it).
  /// Otherwise the marks go, and no attributes are kept.
  void EndDirChange(DirChange* c, bool committed) {
    const int64_t expiry = MonotonicNs() + options_.entry_ttl_ns;
    for (int i = 0; i < c->count; ++i) {
      const InodeId dir = c->dirs[i];
      // Its attributes in its own parent's cached listing are stale now.
      dirs_->InvalidateInode(dir);
      const std::optional<InodeAttr>& after = i == 0 ? c->info->dir.after : c->info->to_dir.after;
      std::lock_guard<std::mutex> g(own_mu_);
      if (!committed) {
        auto it = own_attrs_.find(dir.value);
        if (it != own_attrs_.end() && --it->second <= 0) own_attrs_.erase(it);
        dir_attrs_.erase(dir.value);
      } else if (after && after->type == FileType::kDirectory && options_.follow_changes &&
                 options_.entry_ttl_ns > 0) {
        if (dir_attrs_.size() > 100'000) dir_attrs_.clear();
        dir_attrs_[dir.value] = {*after, expiry};
      } else {
        dir_attrs_.erase(dir.value);
      }
    }
  }

  /// Remembers that this client is about to change the attributes of
  /// `ino` itself (SetAttr, a commit of written data): the change stream's
  /// echo of it is then not passed on. The front end already has the new
  /// attributes from the reply, and its pages are this client's own
  /// writes; an echo handled as another client's change dropped the
  /// kernel's attributes and pages of every file rsync wrote (four
  /// notifications and a GETATTR more per file).
  void RecordOwnAttr(InodeId ino) {
    std::lock_guard<std::mutex> g(own_mu_);
    if (own_attrs_.size() > 100'000) own_attrs_.clear();
    ++own_attrs_[ino.value];
  }
  /// A marked change failed or may not have happened: forgets the mark and,
  /// since it may have swallowed another client's event for `ino`
  /// meanwhile, drops what this layer caches about it. (The front end's
  /// cache, the kernel's, then expires with its timeout.)
  void DropOwnAttr(InodeId ino) {
    {
      std::lock_guard<std::mutex> g(own_mu_);
      auto it = own_attrs_.find(ino.value);
      if (it != own_attrs_.end() && --it->second <= 0) own_attrs_.erase(it);
    }
    ForgetInode(ino);
  }

  /// Drops what this layer caches about inode `ino` (another client changed
  /// it, or may have): its attributes, chunk list, place in listings, the
  /// absence of security.capability, an implicit open's attributes.
  void ForgetInode(InodeId ino) {
    ForgetDirAttr(ino);
    ForgetFileAttr(ino);
    files_->Invalidate(ino);
    dirs_->InvalidateInode(ino);
    SetNoCapability(ino, false);
    InvalidateImplicit(ino);
  }

  /// True (and one mark used up) when an attribute event only echoes
  /// this client's own change (of a directory's entries, or RecordOwnAttr).
  bool IsOwnAttr(const ChangeEvent& e) {
    std::lock_guard<std::mutex> g(own_mu_);
    auto it = own_attrs_.find(e.ino.value);
    if (it == own_attrs_.end()) return false;
    if (--it->second <= 0) own_attrs_.erase(it);
    return true;
  }

  // ---- own changes of files: attributes without a round trip ----
  //
  // The kernel asks for a file's attributes again after each write, close,
  // and rename (rsync stats every file after closing it). The attributes
  // this client's own SetAttr or commit returned, or an open fetched,
  // answer for file_attr_ttl_ns, as the kernel's own cache would. Kept
  // only from a call during which no other change of the inode began and
  // no event of it arrived, so an older reply never overwrites a newer
  // state; this client's renames, links and unlinks (ctime, nlink) drop
  // them all.

  /// What is under way for one inode: changes running, changes begun (a
  /// change's token), and whether an event, an entry change or two calls
  /// at once spoiled them (until none runs).
  struct FileChange {
    int running = 0;
    uint64_t begun = 0;
    bool spoiled = false;
  };

  /// Whether files' attributes are kept at all (FUSE); otherwise the calls
  /// below touch nothing, off the hot path of NFS and S3.
  bool KeepsFileAttrs() const { return options_.file_attr_ttl_ns > 0 && options_.follow_changes; }

  /// Marks a change of `ino` as begun; pass the token to EndFileChange.
  uint64_t BeginFileChange(InodeId ino) {
    if (!KeepsFileAttrs()) return 0;
    std::lock_guard<std::mutex> g(own_mu_);
    file_attrs_.erase(ino.value);
    FileChange& c = file_changes_[ino.value];
    // Overlapping calls may be applied in any order: none of them keeps
    // its reply.
    if (c.running > 0) c.spoiled = true;
    ++c.running;
    return ++c.begun;
  }

  /// Ends the change `token` of `ino`: keeps `after` (null: it failed) when
  /// nothing else happened to the inode meanwhile.
  void EndFileChange(InodeId ino, uint64_t token, const InodeAttr* after) {
    if (!KeepsFileAttrs()) return;
    std::lock_guard<std::mutex> g(own_mu_);
    auto it = file_changes_.find(ino.value);
    if (it == file_changes_.end()) return;  // a reset cleared it
    FileChange& c = it->second;
    const bool keep = after && after->type != FileType::kDirectory && c.begun == token &&
                      c.running == 1 && !c.spoiled;
    if (--c.running <= 0) file_changes_.erase(it);
    if (!keep) return;
    if (file_attrs_.size() > 100'000) file_attrs_.clear();
    file_attrs_[ino.value] = {*after, MonotonicNs() + options_.file_attr_ttl_ns};
  }

  /// A file's attributes from an own change, still fresh (without what is
  /// buffered or deferred: FreshAttr adds those).
  std::optional<InodeAttr> CachedFileAttr(InodeId ino) {
    if (!KeepsFileAttrs()) return std::nullopt;
    std::lock_guard<std::mutex> g(own_mu_);
    return TakeFresh(&file_attrs_, ino);
  }

  /// Drops `ino`'s kept attributes (meta answered with newer ones).
  void DropKeptFileAttr(InodeId ino) {
    if (!KeepsFileAttrs()) return;
    std::lock_guard<std::mutex> g(own_mu_);
    file_attrs_.erase(ino.value);
  }

  /// Drops `ino`'s kept attributes and spoils changes of it under way.
  void ForgetFileAttr(InodeId ino) {
    if (!KeepsFileAttrs()) return;
    std::lock_guard<std::mutex> g(own_mu_);
    file_attrs_.erase(ino.value);
    auto it = file_changes_.find(ino.value);
    if (it != file_changes_.end()) it->second.spoiled = true;
  }

  /// An entry change of this client (rename, link, unlink) changes the
  /// ctime or nlink of an inode this layer may not know by number: drops
  /// every file's kept attributes and spoils every change under way.
  void ForgetAllFileAttrs() {
    if (!KeepsFileAttrs()) return;
    std::lock_guard<std::mutex> g(own_mu_);
    file_attrs_.clear();
    for (auto& [ino, c] : file_changes_) c.spoiled = true;
  }

  /// Directory attributes this client's own change returned, still fresh.
  std::optional<InodeAttr> CachedDirAttr(InodeId ino) {
    std::lock_guard<std::mutex> g(own_mu_);
    return TakeFresh(&dir_attrs_, ino);
  }

  /// `ino`'s attributes in `kept` (attributes with their expiry, ns,
  /// monotonic) while fresh; an expired entry goes. REQUIRES: own_mu_.
  static std::optional<InodeAttr> TakeFresh(
      std::unordered_map<uint64_t, std::pair<InodeAttr, int64_t>>* kept, InodeId ino) {
    auto it = kept->find(ino.value);
    if (it == kept->end()) return std::nullopt;
    if (MonotonicNs() >= it->second.second) {
      kept->erase(it);
      return std::nullopt;
    }
    return it->second.first;
  }

  void ForgetDirAttr(InodeId ino) {
    std::lock_guard<std::mutex> g(own_mu_);
    dir_attrs_.erase(ino.value);
  }

  /// Makes entry `parent`/`name` with `make(ChangeInfo*)` (a meta call),
  /// marked as this client's own before the call so an echo that beats the
  /// reply is caught.
  template <typename Make>
  StatusOr<InodeAttr> NewEntry(InodeId parent, const std::string& name, ChangeInfo* info,
                               Make&& make) {
    NEEDLEFS_RETURN_IF_ERROR(ReadOnly());
    RecordOwnEntry(parent, name);
    DirChange change;
    BeginDirChange(&change, info, parent);
    StatusOr<InodeAttr> a = make(change.info);
    EndDirChange(&change, a.ok());
    if (a.ok()) {
      dirs_->Added(parent, name, *a);
    } else {
      DropOwnEntry(parent, name);
    }
    return WithPending(std::move(a));
  }

  template <typename Remove>
  Status RemoveEntry(InodeId parent, const std::string& name, ChangeInfo* info, Remove&& remove) {
    RecordOwnEntry(parent, name);
    DirChange change;
    BeginDirChange(&change, info, parent);
    Status st = remove(change.info);
    EndDirChange(&change, st.ok());
    if (st.ok()) {
      dirs_->Removed(parent, name);
    } else {
      DropOwnEntry(parent, name);
    }
    return st;
  }

  /// Before an unlink or rename replaces `name`: when this client holds the
  /// inode open, tell meta, so the data outlives the name (POSIX).
  void HoldIfOpen(const RequestContext& ctx, InodeId parent, const std::string& name) {
    {
      std::lock_guard<std::mutex> g(open_mu_);
      if (open_count_.empty()) return;
    }
    auto a = meta_->Lookup(ctx, parent, name);
    if (!a.ok() || a->type != FileType::kRegular) return;
    // An idle implicit open (stateless NFS I/O) alone does not keep a
    // removed file alive: it ends now, its data flushed first (another link
    // may keep the file), so the file goes at once and its NFS handle is
    // STALE, as on a stateless server.
    uint64_t idle_implicit = 0;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      auto n = open_count_.find(a->ino.value);
      if (n == open_count_.end() || held_.count(a->ino.value)) return;
      auto imp = implicit_.find(a->ino.value);
      if (imp != implicit_.end() && imp->second.busy == 0 && n->second == 1) {
        idle_implicit = imp->second.handle;
        implicit_.erase(imp);
        ++expiring_;
      }
    }
    if (idle_implicit != 0) {
      Release(idle_implicit);
      std::lock_guard<std::mutex> g(open_mu_);
      --expiring_;
      return;
    }
    // No lock over the meta call: every read and write takes open_mu_.
    if (!meta_->OpenFile(session_, a->ino).ok()) return;
    bool still_open;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      still_open = open_count_.count(a->ino.value) > 0;
      if (still_open) held_.insert(a->ino.value);
    }
    if (!still_open) (void)meta_->ReleaseFile(session_, a->ino);  // closed meanwhile
  }

  // ---- the open-file table ----

  /// Sets up I/O on regular file `a` and records a handle for it.
  OpenedFile NewHandle(const InodeAttr& a, bool readable, bool writable, bool track_cache,
                       std::optional<std::vector<Chunk>> chunks = std::nullopt) {
    files_->Open(a, std::move(chunks));
    OpenedFile out;
    out.attr = WithPending(a);
    std::lock_guard<std::mutex> g(open_mu_);
    out.handle = next_handle_++;
    handles_[out.handle] = Handle{a.ino, readable, writable};
    ++open_count_[a.ino.value];
    if (track_cache) {
      // Close-to-open: keep the cached pages only when nothing changed
      // since this client last opened the file.
      auto& seen = seen_[a.ino.value];
      out.keep_cache = seen.first == a.mtime_ns && seen.second == a.size;
      seen = {a.mtime_ns, a.size};
      if (seen_.size() > 200'000) seen_.clear();
    }
    return out;
  }

  bool IsOpenHere(InodeId ino) {
    std::lock_guard<std::mutex> g(open_mu_);
    return open_count_.count(ino.value) > 0;
  }

  /// The handle `handle` for `ino`, or EBADF.
  StatusOr<Handle> FindHandle(uint64_t handle, InodeId ino) {
    std::lock_guard<std::mutex> g(open_mu_);
    auto it = handles_.find(handle);
    if (it == handles_.end() || it->second.ino != ino) {
      return Status::Posix(EBADF, "no such open file");
    }
    return it->second;
  }

  void Release(uint64_t handle) {
    InodeId ino;
    bool fresh = false;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      auto it = handles_.find(handle);
      if (it == handles_.end()) return;
      ino = it->second.ino;
      fresh = it->second.fresh;
      handles_.erase(it);
    }
    Status st = files_->Flush(ino);  // normally empty: the front end flushed first
    if (!st.ok()) {
      spdlog::warn("fs.release ino={}: {}", ino.value, st.ToString());
      LostBufferedData();
    }
    if (Status sent = SendDeferred(ino); !sent.ok()) {
      spdlog::warn("fs.release ino={} attributes: {}", ino.value, sent.ToString());
    }
    if (fresh) DropFresh(ino);
    files_->Release(ino);
    bool release_hold = false;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      auto it = open_count_.find(ino.value);
      if (it != open_count_.end() && --it->second <= 0) {
        open_count_.erase(it);
        release_hold = held_.erase(ino.value) > 0;
      }
    }
    if (release_hold) (void)meta_->ReleaseFile(session_, ino);
  }

  /// Buffered data the caller was not told about was lost (an implicit
  /// open's flush failed): a new write verifier makes NFS clients resend.
  void LostBufferedData() { verifier_.fetch_add(1); }

  /// May `ctx` read or write (`mask`) a file with attributes `a` without
  /// an open? The owner may whatever the mode, as NFS servers allow (a
  /// client creates a file 0444 and then writes it).
  static bool StatelessMayAccess(const RequestContext& ctx, const InodeAttr& a, int mask) {
    return MayAccess(ctx, a, mask) || ctx.uid == a.uid;
  }

  /// The implicit open of `ino` for a stateless call that `ctx` may make
  /// (`mask`), made on first use, marked busy (pair with EndImplicit) and
  /// its idle clock restarted. Errors: EACCES (nothing is opened then),
  /// EISDIR, EINVAL (not a regular file), ENOENT.
  StatusOr<uint64_t> BeginImplicit(const RequestContext& ctx, InodeId ino, int mask) {
    {
      std::lock_guard<std::mutex> g(open_mu_);
      auto it = implicit_.find(ino.value);
      if (it != implicit_.end() && it->second.attr_valid) {
        if (!StatelessMayAccess(ctx, it->second.attr, mask)) return Denied(mask);
        it->second.last_use_ns = MonotonicNs();
        ++it->second.busy;
        return it->second.handle;
      }
    }
    // A read gets the chunk list with the attributes (one round trip, as
    // an open does): an NFS READ of a file not read lately needs no
    // ReadChunks call after it.
    std::optional<std::vector<Chunk>> chunks;
    auto a = (mask & R_OK) ? meta_->GetAttrWithChunks(ino, kChunksWithOpen, &chunks)
                           : meta_->GetAttr(ino);
    if (!a.ok()) return a.status();
    if (a->type == FileType::kDirectory) return Status::Posix(EISDIR, "a directory");
    if (a->type != FileType::kRegular) return Status::Posix(EINVAL, "not a regular file");
    if (!StatelessMayAccess(ctx, *a, mask)) return Denied(mask);
    {
      std::lock_guard<std::mutex> g(open_mu_);
      auto it = implicit_.find(ino.value);
      if (it != implicit_.end()) {
        it->second.attr = *a;
        it->second.attr_valid = true;
        it->second.last_use_ns = MonotonicNs();
        ++it->second.busy;
        return it->second.handle;
      }
    }
    OpenedFile f = NewHandle(*a, true, true, false, std::move(chunks));
    uint64_t theirs = 0;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      auto [it, inserted] = implicit_.try_emplace(ino.value);
      if (inserted) {
        it->second = ImplicitOpen{f.handle, *a, true, MonotonicNs(), 1};
        return f.handle;
      }
      // Another caller made it meanwhile: use theirs, drop ours.
      ++it->second.busy;
      theirs = it->second.handle;
    }
    Release(f.handle);
    return theirs;
  }

  /// Ends a BeginImplicit's use; the idle clock starts again now.
  void EndImplicit(InodeId ino) {
    std::lock_guard<std::mutex> g(open_mu_);
    auto it = implicit_.find(ino.value);
    if (it == implicit_.end()) return;
    --it->second.busy;
    it->second.last_use_ns = MonotonicNs();
  }

  static Status Denied(int mask) {
    return Status::Posix(EACCES, mask & W_OK ? "no write permission" : "no read permission");
  }

  /// Runs `io` through `handle` (checked for `mask`: EBADF) or, with handle
  /// 0, through the inode's implicit open after the permission check.
  template <typename Io>
  auto WithHandle(const RequestContext& ctx, InodeId ino, uint64_t handle, int mask, Io&& io)
      -> decltype(io()) {
    if (handle != 0) {
      NEEDLEFS_ASSIGN_OR_RETURN(Handle h, FindHandle(handle, ino));
      if ((mask & R_OK) && !h.readable) return Status::Posix(EBADF, "not open for reading");
      if ((mask & W_OK) && !h.writable) return Status::Posix(EBADF, "not open for writing");
      return io();
    }
    auto begun = BeginImplicit(ctx, ino, mask);
    if (!begun.ok()) return begun.status();
    auto result = io();
    EndImplicit(ino);
    return result;
  }

  void InvalidateImplicit(InodeId ino) {
    std::lock_guard<std::mutex> g(open_mu_);
    auto it = implicit_.find(ino.value);
    if (it != implicit_.end()) it->second.attr_valid = false;
  }

  size_t ExpireImplicitOpens(int64_t idle_ns) {
    std::vector<uint64_t> expired;
    const int64_t now = MonotonicNs();
    {
      std::lock_guard<std::mutex> g(open_mu_);
      for (auto it = implicit_.begin(); it != implicit_.end();) {
        if (it->second.busy == 0 && now - it->second.last_use_ns >= idle_ns) {
          expired.push_back(it->second.handle);
          it = implicit_.erase(it);
          ++expiring_;
        } else {
          ++it;
        }
      }
    }
    for (uint64_t h : expired) {
      Release(h);
      std::lock_guard<std::mutex> g(open_mu_);
      --expiring_;
    }
    return expired.size();
  }

  // ---- the operations ----

  StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent, const std::string& name) {
    if (name.size() > kMaxNameBytes) return Status::Posix(ENAMETOOLONG, "name too long");
    StatusOr<InodeAttr> a = dirs_->Lookup(ctx, parent, name);
    if (a.ok() && a->type == FileType::kRegular && IsOpenHere(a->ino)) {
      // Its size may be changing under a flush of this client: as GetAttr.
      const InodeId ino = a->ino;
      auto fresh = FreshAttr(
          ino, [&] { return meta_->GetAttr(ino); }, /*kept_ok=*/true);
      if (fresh.ok() || fresh.status().posix_errno() != ENOENT) return fresh;
      // The cached entry named an inode replaced meanwhile (a rename over
      // the name): ask meta for the name itself.
      a = meta_->Lookup(ctx, parent, name);
    }
    return WithPending(std::move(a));
  }

  /// Flushes buffered writes before a size or mtime change (so none lands
  /// after it), changes the attributes in meta, then drops buffered data
  /// past a new size: the one truncate ordering of every front end.
  StatusOr<InodeAttr> SetAttr(const RequestContext& ctx, InodeId ino, const SetAttrRequest& req,
                              uint64_t handle, ChangeInfo* info = nullptr) {
    NEEDLEFS_RETURN_IF_ERROR(ReadOnly());
    if (!info) {
      if (auto a = TryDefer(ctx, ino, req)) return WithPending(*a);
    }
    // What was deferred goes first, with the data written before it (the
    // commit takes it; sent alone, deferred times would then be overwritten
    // by the commit's mtime): this change must follow both.
    if (HasDeferred(ino)) NEEDLEFS_RETURN_IF_ERROR(CommitDeferred(ino));
    if (req.size || req.mtime_ns || req.mtime_now) NEEDLEFS_RETURN_IF_ERROR(files_->Flush(ino));
    RequestContext c = C(ctx);
    const bool only_size = req.size && !req.mode && !req.uid && !req.gid && !req.atime_ns &&
                           !req.mtime_ns && !req.atime_now && !req.mtime_now;
    if (only_size && handle != 0 && c.uid != 0) {
      // ftruncate(2): the descriptor's write access was checked at open.
      auto h = FindHandle(handle, ino);
      if (h.ok() && h->writable) c = AsOwnerOf(c);
    }
    ForgetDirAttr(ino);
    RecordOwnAttr(ino);
    const uint64_t token = BeginFileChange(ino);
    auto a = meta_->SetAttr(c, ino, req, info);
    EndFileChange(ino, token, a.ok() ? &*a : nullptr);
    if (!a.ok()) DropOwnAttr(ino);
    if (a.ok() && req.size) files_->Truncated(ino, *req.size);
    dirs_->InvalidateInode(ino);
    InvalidateImplicit(ino);
    return WithPending(std::move(a));
  }

  /// A context that passes the namespace's checks of a change POSIX allows
  /// for another reason (ftruncate through a descriptor open for writing):
  /// root's identity, with the caller's durability.
  static RequestContext AsOwnerOf(const RequestContext& c) {
    RequestContext r = RequestContext::Root();
    r.sync = c.sync;
    return r;
  }

  StatusOr<OpenedFile> Open(const RequestContext& ctx, InodeId ino, int flags) {
    const int acc = flags & O_ACCMODE;
    if (acc != O_RDONLY || (flags & O_TRUNC)) NEEDLEFS_RETURN_IF_ERROR(ReadOnly());
    // The chunk list comes with the attributes (one round trip), so the
    // first read needs no ReadChunks call.
    std::optional<std::vector<Chunk>> chunks;
    // Meta's answer is newer than what is kept, and answers the front
    // end's next GETATTR (it may have to tell the kernel its attributes
    // are stale: OpenedFile::keep_cache).
    const uint64_t token = BeginFileChange(ino);
    auto a = meta_->GetAttrWithChunks(ino, kChunksWithOpen, &chunks);
    EndFileChange(ino, token, a.ok() ? &*a : nullptr);
    if (!a.ok()) return a.status();
    return OpenAttr(ctx, *a, flags, std::move(chunks));
  }

  /// Open of a file whose attributes are at hand: type and permission
  /// checks, O_TRUNC, the handle.
  StatusOr<OpenedFile> OpenAttr(const RequestContext& ctx, InodeAttr a, int flags,
                                std::optional<std::vector<Chunk>> chunks) {
    if (a.type == FileType::kDirectory) return Status::Posix(EISDIR, "a directory");
    if (a.type != FileType::kRegular) return Status::Posix(EINVAL, "not a regular file");
    if (!MayAccess(ctx, a, AccessMask(flags))) return Status::Posix(EACCES, "open: permission");
    // The size with what this client buffered: a file another process here
    // wrote but has not closed is not empty to this open.
    if ((flags & O_TRUNC) && WithPending(a).size != 0) {
      SetAttrRequest r;
      r.size = 0;
      auto t = SetAttr(ctx, a.ino, r, 0);
      if (!t.ok()) return t.status();
      a = *t;
      chunks.reset();  // the truncate changed them
    }
    const int acc = flags & O_ACCMODE;
    return NewHandle(a, acc != O_WRONLY, acc != O_RDONLY, true, std::move(chunks));
  }

  StatusOr<OpenedFile> Create(const RequestContext& ctx, InodeId parent, const std::string& name,
                              uint32_t mode, int flags, bool* created_out) {
    NEEDLEFS_RETURN_IF_ERROR(ReadOnly());
    bool created = false;
    auto a = CreateNode(ctx, parent, name, mode,
                        (flags & O_EXCL) ? CreateHow::kGuarded : CreateHow::kUnchecked, 0, &created,
                        nullptr);
    if (!a.ok()) return a.status();
    if (created_out) *created_out = created;
    if (created) {
      const int acc = flags & O_ACCMODE;
      // The creator may use the descriptor whatever the new mode says.
      OpenedFile h = NewHandle(*a, acc != O_WRONLY, acc != O_RDONLY, true);
      if (!options_.sync) {
        NoteFresh(ctx, *a);
        std::lock_guard<std::mutex> g(open_mu_);
        handles_[h.handle].fresh = true;
      }
      return h;
    }
    return OpenAttr(ctx, *a, flags, std::nullopt);
  }

  /// Creates regular file `name` (the own-entry and directory marks, the
  /// caches): meta's attributes, without the pending size.
  StatusOr<InodeAttr> CreateNode(const RequestContext& ctx, InodeId parent, const std::string& name,
                                 uint32_t mode, CreateHow how, uint64_t verifier, bool* created_out,
                                 ChangeInfo* info) {
    bool created = false;
    std::optional<uint64_t> verf;
    if (how == CreateHow::kExclusive) verf = verifier;
    RecordOwnEntry(parent, name);  // before: see NewEntry
    DirChange change;
    BeginDirChange(&change, info, parent);
    auto a = meta_->Create(C(ctx), parent, name, mode & 07777, how != CreateHow::kUnchecked,
                           &created, change.info, verf);
    EndDirChange(&change, a.ok() && created);
    if (!created) DropOwnEntry(parent, name);  // no entry made: no echo to expect
    if (!a.ok()) return a;
    if (created) {
      SetNoCapability(a->ino, true);
      dirs_->Added(parent, name, *a);
    }
    if (created_out) *created_out = created;
    return a;
  }

  StatusOr<InodeAttr> CreateFile(const RequestContext& ctx, InodeId parent, const std::string& name,
                                 uint32_t mode, CreateHow how, uint64_t verifier, bool* created_out,
                                 ChangeInfo* info) {
    return WithPending(CreateNode(ctx, parent, name, mode, how, verifier, created_out, info));
  }

  StatusOr<std::string> Read(const RequestContext& ctx, InodeId ino, uint64_t offset,
                             uint64_t length, uint64_t handle) {
    return WithHandle(ctx, ino, handle, R_OK, [&] { return files_->Read(ino, offset, length); });
  }

  Status Write(const RequestContext& ctx, InodeId ino, uint64_t offset, std::string_view data,
               uint64_t handle) {
    NEEDLEFS_RETURN_IF_ERROR(ReadOnly());
    // The data before the times, then the times, then this write.
    if (HasDeferredTimes(ino)) NEEDLEFS_RETURN_IF_ERROR(CommitDeferred(ino));
    return WithHandle(ctx, ino, handle, W_OK, [&] { return files_->Write(ino, offset, data); });
  }

  Status Flush(InodeId ino) {
    Status st = options_.sync ? files_->Fsync(ino) : files_->Flush(ino);
    // Deferred changes no commit took (nothing was written since): now.
    Status sent = SendDeferred(ino);
    if (st.ok()) st = sent;
    dirs_->InvalidateInode(ino);  // its size and mtime may have changed
    InvalidateImplicit(ino);
    return st;
  }

  Status Allocate(const RequestContext& ctx, InodeId ino, uint64_t offset, uint64_t length,
                  uint64_t handle) {
    NEEDLEFS_RETURN_IF_ERROR(ReadOnly());
    if (length == 0 || offset + length < offset) return Status::Posix(EINVAL, "bad range");
    const uint64_t end = offset + length;
    NEEDLEFS_RETURN_IF_ERROR(files_->Flush(ino));
    auto a = meta_->GetAttr(ino);
    if (!a.ok()) return a.status();
    if (a->type != FileType::kRegular) return Status::Posix(ENODEV, "not a regular file");
    if (a->size >= end) return Status::OK();
    SetAttrRequest r;
    r.size = end;
    return SetAttr(ctx, ino, r, handle).status();
  }

  Status ReadTo(const RequestContext& ctx, InodeId ino, uint64_t offset,
                const std::function<Status(std::string_view)>& sink) {
    auto a = meta_->GetAttr(ino);
    if (!a.ok()) return a.status();
    if (a->type == FileType::kDirectory) return Status::Posix(EISDIR, "a directory");
    if (a->type != FileType::kRegular) return Status::Posix(EINVAL, "not a regular file");
    if (!MayAccess(ctx, *a, R_OK)) return Status::Posix(EACCES, "no read permission");
    const uint64_t piece = std::max<uint64_t>(options_.file.chunk_size, 64 << 10);
    // Open for the stream, so the file client sees a sequential reader and
    // fetches the next chunks while `sink` sends this one.
    files_->Open(*a);
    Status st;
    for (;;) {
      auto data = files_->Read(ino, offset, piece);
      if (!data.ok()) {
        st = data.status();
        break;
      }
      if (data->empty()) break;
      st = sink(*data);
      if (!st.ok()) break;
      offset += data->size();
      if (data->size() < piece) break;
    }
    files_->Release(ino);
    return st;
  }

  Status WriteFrom(const RequestContext& ctx, InodeId ino,
                   const std::function<Status(std::string* piece)>& source) {
    NEEDLEFS_ASSIGN_OR_RETURN(OpenedFile f, Open(ctx, ino, O_WRONLY | O_TRUNC));
    Status st;
    uint64_t offset = 0;
    std::string piece;
    for (;;) {
      piece.clear();
      st = source(&piece);
      if (!st.ok() || piece.empty()) break;
      st = files_->Write(ino, offset, piece);
      if (!st.ok()) break;
      offset += piece.size();
    }
    Status fl = Flush(ino);
    Release(f.handle);
    return st.ok() ? fl : st;
  }

  // ---- xattrs ----

  /// Inodes known to have no security.capability xattr. The kernel asks for
  /// it before every write (to drop file capabilities); the answer is kept
  /// until the inode's attributes change anywhere (the change stream) or here.
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

  // ---- background: session lease, implicit opens, change stream ----

  void StartBackground() {
    housekeeper_ = std::thread([this] { HousekeepingLoop(); });
    if (!options_.follow_changes) return;
    subscriber_ = std::thread([this] { SubscribeLoop(); });
    // The stream starts with a reset, which clears the own-entry marks:
    // applied after the front end is in use, it would wipe the marks of the
    // first changes, whose echoes then invalidate the front end's own new
    // entries. So the layer is ready only once the stream is.
    std::unique_lock<std::mutex> l(bg_mu_);
    if (!bg_cv_.wait_for(l, kSubscribeStartTimeout, [&] { return subscribed_ || bg_stop_; })) {
      spdlog::warn("fs.subscribe: no change stream after {} ms; going on without waiting",
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
    if (housekeeper_.joinable()) housekeeper_.join();
    if (subscriber_.joinable()) subscriber_.join();
  }

  /// Once a second: ends idle implicit opens; every third of the lease:
  /// renews the meta session (it holds unlinked-but-open files), opening a
  /// new one and holding the files again when meta forgot it.
  void HousekeepingLoop() {
    const int64_t renew_every_ns = options_.session_lease_ms * 1'000'000 / 3;
    int64_t last_renew = MonotonicNs();
    std::unique_lock<std::mutex> l(bg_mu_);
    while (!bg_cv_.wait_for(l, std::chrono::seconds(1), [&] { return bg_stop_; })) {
      l.unlock();
      ExpireImplicitOpens(options_.implicit_open_idle_ns);
      if (MonotonicNs() - last_renew >= renew_every_ns) {
        last_renew = MonotonicNs();
        RenewSession();
      }
      l.lock();
    }
  }

  void RenewSession() {
    Status st = meta_->RenewSession(session_, options_.session_lease_ms);
    if (st.ok()) return;
    spdlog::warn("fs.session renew: {}", st.ToString());
    if (st.code() != StatusCode::kNotFound) return;
    auto s = meta_->OpenSession(options_.client_name, options_.session_lease_ms);
    if (!s.ok()) return;
    session_ = *s;
    std::vector<uint64_t> held;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      held.assign(held_.begin(), held_.end());
    }
    for (uint64_t ino : held) (void)meta_->OpenFile(session_, InodeId{ino});
  }

  /// Follows meta's change stream: drops what the caches hold about what
  /// others changed, and tells the listener.
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
          OnReset();
          return true;
        }
        if (e.kind == ChangeEvent::Kind::kAttr) {
          if (IsOwnAttr(e)) return true;  // handled when the change returned
          ForgetInode(e.ino);
          if (listener_) listener_->InodeChanged(e.ino);
        } else if (!IsOwnEntry(e)) {
          // Another client's rename, link or unlink changed the inode's
          // ctime or nlink (a replaced one may be gone), and meta sends no
          // attribute event for that.
          if (e.ino.value != 0) {
            ForgetFileAttr(e.ino);
          } else {
            ForgetAllFileAttrs();
          }
          dirs_->InvalidateDir(e.parent);
          dirs_->InvalidateInode(e.ino);
          InvalidateImplicit(e.ino);
          if (listener_) listener_->EntryChanged(e.parent, e.name, e.ino);
        }
        return true;
      });
      std::unique_lock<std::mutex> l(bg_mu_);
      if (bg_stop_) return;
      if (!st.ok()) spdlog::debug("fs.subscribe: {}", st.ToString());
      bg_cv_.wait_for(l, std::chrono::seconds(1), [&] { return bg_stop_; });
    }
  }

  void OnReset() {
    files_->InvalidateAll();
    dirs_->Clear();
    {
      // Echoes lost with the old stream would keep their marks.
      std::lock_guard<std::mutex> g(own_mu_);
      own_entries_.clear();
      own_attrs_.clear();
      dir_attrs_.clear();
      file_attrs_.clear();
      for (auto& [ino, c] : file_changes_) c.spoiled = true;
    }
    {
      std::lock_guard<std::mutex> g(nocap_mu_);
      no_capability_.clear();
    }
    {
      std::lock_guard<std::mutex> g(open_mu_);
      for (auto& [_, io] : implicit_) io.attr_valid = false;
    }
    if (listener_ && subscribed_once_) listener_->AllChanged();
    subscribed_once_ = true;
    {
      // Last: the layer is ready once this is set, and its first marks
      // must not be cleared by this reset.
      std::lock_guard<std::mutex> g(bg_mu_);
      subscribed_ = true;
    }
    bg_cv_.notify_all();
  }

  FileSystemOptions options_;
  FileSystemListener* listener_;
  std::atomic<uint64_t> verifier_{0};
  std::unique_ptr<MetaClient> meta_;
  std::unique_ptr<BlobClient> blobs_;
  std::unique_ptr<FileClient> files_;
  std::unique_ptr<DirCache> dirs_;
  InodeId root_ = kRootInode;
  std::atomic<uint64_t> session_{0};  // written by the housekeeper, read by callers

  std::mutex open_mu_;
  uint64_t next_handle_ = 1;                             // GUARDED_BY(open_mu_)
  std::unordered_map<uint64_t, Handle> handles_;         // GUARDED_BY(open_mu_)
  std::unordered_map<uint64_t, int> open_count_;         // GUARDED_BY(open_mu_): per inode
  std::unordered_map<uint64_t, ImplicitOpen> implicit_;  // GUARDED_BY(open_mu_): per inode
  size_t expiring_ = 0;  // GUARDED_BY(open_mu_): implicit opens ended, not yet flushed
  std::unordered_map<uint64_t, std::pair<int64_t, uint64_t>> seen_;  // (mtime, size) at open
  std::set<uint64_t> held_;  // GUARDED_BY(open_mu_): inodes meta holds open for us

  std::mutex fresh_mu_;
  std::unordered_map<uint64_t, FreshFile> fresh_;  // GUARDED_BY(fresh_mu_): by inode
  std::mutex own_mu_;
  std::unordered_map<std::string, int> own_entries_;  // GUARDED_BY(own_mu_): marks per name
  std::unordered_map<uint64_t, int> own_attrs_;       // GUARDED_BY(own_mu_): marks per directory
  /// Directory attributes from this client's own changes, with expiry (ns,
  /// monotonic). GUARDED_BY(own_mu_)
  std::unordered_map<uint64_t, std::pair<InodeAttr, int64_t>> dir_attrs_;
  /// Files' attributes from this client's own changes, with expiry (ns,
  /// monotonic), and the changes under way. GUARDED_BY(own_mu_)
  std::unordered_map<uint64_t, std::pair<InodeAttr, int64_t>> file_attrs_;
  std::unordered_map<uint64_t, FileChange> file_changes_;

  std::mutex nocap_mu_;
  std::unordered_set<uint64_t> no_capability_;  // GUARDED_BY(nocap_mu_)

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool subscribed_ = false;       // GUARDED_BY(bg_mu_): the stream's first reset arrived
  bool subscribed_once_ = false;  // only the subscriber thread
  bool bg_stop_ = false;          // GUARDED_BY(bg_mu_)
  std::thread housekeeper_;
  std::thread subscriber_;
};

// ---- FileSystem: forwarding to Impl ----

FileSystem::FileSystem(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FileSystem::~FileSystem() = default;

StatusOr<std::unique_ptr<FileSystem>> FileSystem::Open(const FileSystemOptions& options,
                                                       FileSystemListener* listener) {
  auto impl = std::make_unique<Impl>(options, listener);
  NEEDLEFS_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<FileSystem>(new FileSystem(std::move(impl)));
}

InodeId FileSystem::root() const { return impl_->root_; }
const FileSystemOptions& FileSystem::options() const { return impl_->options_; }
WriteVerifier FileSystem::write_verifier() const { return impl_->verifier_.load(); }

StatusOr<InodeAttr> FileSystem::Lookup(const RequestContext& ctx, InodeId parent,
                                       const std::string& name) {
  return impl_->Lookup(ctx, parent, name);
}

StatusOr<InodeAttr> FileSystem::ResolvePath(const RequestContext& ctx, std::string_view path) {
  return impl_->ResolveFrom(ctx, impl_->root_, path, false);
}

StatusOr<InodeAttr> FileSystem::GetAttr(InodeId ino) {
  if (auto a = impl_->CachedDirAttr(ino)) return *a;
  return impl_->FreshAttr(
      ino, [&] { return impl_->meta_->GetAttr(ino); }, /*kept_ok=*/true);
}

StatusOr<InodeAttr> FileSystem::GetAttrChecked(InodeId ino, Generation generation) {
  return impl_->FreshAttr(ino, [&] { return impl_->meta_->GetAttrChecked(ino, generation); });
}

StatusOr<InodeAttr> FileSystem::SetAttr(const RequestContext& ctx, InodeId ino,
                                        const SetAttrRequest& req, uint64_t handle,
                                        ChangeInfo* info) {
  return impl_->SetAttr(ctx, ino, req, handle, info);
}

StatusOr<std::string> FileSystem::Readlink(InodeId ino) { return impl_->meta_->Readlink(ino); }

StatusOr<InodeAttr> FileSystem::Mkdir(const RequestContext& ctx, InodeId parent,
                                      const std::string& name, uint32_t mode, ChangeInfo* info) {
  return impl_->NewEntry(parent, name, info, [&](ChangeInfo* ci) {
    return impl_->meta_->Mkdir(impl_->C(ctx), parent, name, mode & 07777, ci);
  });
}

StatusOr<InodeAttr> FileSystem::Mknod(const RequestContext& ctx, InodeId parent,
                                      const std::string& name, FileType type, uint32_t mode,
                                      uint64_t rdev, ChangeInfo* info) {
  return impl_->NewEntry(parent, name, info, [&](ChangeInfo* ci) -> StatusOr<InodeAttr> {
    switch (type) {
      case FileType::kRegular:
        return impl_->meta_->Create(impl_->C(ctx), parent, name, mode & 07777, true, nullptr, ci);
      case FileType::kDirectory:
        return impl_->meta_->Mkdir(impl_->C(ctx), parent, name, mode & 07777, ci);
      default:
        return impl_->meta_->Mknod(impl_->C(ctx), parent, name, type, mode & 07777, rdev, ci);
    }
  });
}

StatusOr<InodeAttr> FileSystem::Symlink(const RequestContext& ctx, InodeId parent,
                                        const std::string& name, const std::string& target,
                                        ChangeInfo* info) {
  return impl_->NewEntry(parent, name, info, [&](ChangeInfo* ci) {
    return impl_->meta_->Symlink(impl_->C(ctx), parent, name, target, ci);
  });
}

StatusOr<InodeAttr> FileSystem::Link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                                     const std::string& new_name, ChangeInfo* info) {
  impl_->ForgetFileAttr(ino);  // its nlink and ctime
  auto a = impl_->NewEntry(new_parent, new_name, info, [&](ChangeInfo* ci) {
    return impl_->meta_->Link(impl_->C(ctx), ino, new_parent, new_name, ci);
  });
  impl_->ForgetFileAttr(ino);
  return a;
}

Status FileSystem::Unlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                          ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  impl_->HoldIfOpen(ctx, parent, name);
  // The inode's nlink and ctime change (its number may not be known here).
  impl_->ForgetAllFileAttrs();
  Status st = impl_->RemoveEntry(parent, name, info, [&](ChangeInfo* ci) {
    return impl_->meta_->Unlink(impl_->C(ctx), parent, name, ci);
  });
  impl_->ForgetAllFileAttrs();
  return st;
}

Status FileSystem::Rmdir(const RequestContext& ctx, InodeId parent, const std::string& name,
                         ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  return impl_->RemoveEntry(parent, name, info, [&](ChangeInfo* ci) {
    return impl_->meta_->Rmdir(impl_->C(ctx), parent, name, ci);
  });
}

Status FileSystem::Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                          InodeId new_parent, const std::string& new_name, uint32_t flags,
                          ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  const bool move = !(flags & kRenameExchange);
  if (move) {
    impl_->HoldIfOpen(ctx, new_parent, new_name);
    // Front ends move their own cached entries; the echoes must not drop
    // them. Marked before the call, so an echo that beats the reply is
    // caught.
    impl_->RecordOwnEntry(parent, name);
    impl_->RecordOwnEntry(new_parent, new_name);
  }
  // The moved inode's ctime (and a replaced one's nlink) change.
  impl_->ForgetAllFileAttrs();
  Impl::DirChange change;
  impl_->BeginDirChange(&change, info, parent, new_parent);
  Status st =
      impl_->meta_->Rename(impl_->C(ctx), parent, name, new_parent, new_name, flags, change.info);
  impl_->EndDirChange(&change, st.ok());
  impl_->ForgetAllFileAttrs();
  if (st.ok()) {
    impl_->dirs_->Renamed(parent, name, new_parent, new_name, !move);
  } else if (move) {
    impl_->DropOwnEntry(parent, name);
    impl_->DropOwnEntry(new_parent, new_name);
  }
  return st;
}

StatusOr<InodeAttr> FileSystem::OpenDir(const RequestContext& ctx, InodeId ino) {
  auto a = impl_->meta_->GetAttr(ino);
  if (!a.ok()) return a;
  if (a->type != FileType::kDirectory) return Status::Posix(ENOTDIR, "not a directory");
  if (!MayAccess(ctx, *a, R_OK)) return Status::Posix(EACCES, "opendir: no read permission");
  return a;
}

StatusOr<ReadDirResult> FileSystem::ReadDir(const RequestContext& ctx, InodeId dir, uint64_t cookie,
                                            size_t max_entries, bool plus) {
  auto r = impl_->meta_->ReadDir(ctx, dir, cookie, max_entries, plus);
  if (r.ok() && plus) {
    for (DirEntry& d : r->entries) {
      if (d.attr) d.attr = impl_->WithPending(*d.attr);
    }
  }
  return r;
}

Status FileSystem::SyncNamespace() { return impl_->meta_->Sync(); }

StatusOr<OpenedFile> FileSystem::Open(const RequestContext& ctx, InodeId ino, int flags) {
  return impl_->Open(ctx, ino, flags);
}

StatusOr<OpenedFile> FileSystem::Create(const RequestContext& ctx, InodeId parent,
                                        const std::string& name, uint32_t mode, int flags,
                                        bool* created) {
  return impl_->Create(ctx, parent, name, mode, flags, created);
}

StatusOr<InodeAttr> FileSystem::CreateFile(const RequestContext& ctx, InodeId parent,
                                           const std::string& name, uint32_t mode, CreateHow how,
                                           uint64_t verifier, bool* created, ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  return impl_->CreateFile(ctx, parent, name, mode, how, verifier, created, info);
}

void FileSystem::Release(uint64_t handle) { impl_->Release(handle); }

StatusOr<std::string> FileSystem::Read(const RequestContext& ctx, InodeId ino, uint64_t offset,
                                       uint64_t length, uint64_t handle) {
  return impl_->Read(ctx, ino, offset, length, handle);
}

Status FileSystem::Write(const RequestContext& ctx, InodeId ino, uint64_t offset,
                         std::string_view data, uint64_t handle) {
  return impl_->Write(ctx, ino, offset, data, handle);
}

Status FileSystem::Flush(InodeId ino) { return impl_->Flush(ino); }

Status FileSystem::Fsync(InodeId ino) {
  // Deferred attributes (with the data they follow) before the sync.
  if (impl_->HasDeferred(ino)) NEEDLEFS_RETURN_IF_ERROR(impl_->CommitDeferred(ino));
  Status st = impl_->files_->Fsync(ino);
  impl_->dirs_->InvalidateInode(ino);
  return st;
}

Status FileSystem::Allocate(const RequestContext& ctx, InodeId ino, uint64_t offset,
                            uint64_t length, uint64_t handle) {
  return impl_->Allocate(ctx, ino, offset, length, handle);
}

Status FileSystem::ReadTo(const RequestContext& ctx, InodeId ino, uint64_t offset,
                          const std::function<Status(std::string_view)>& sink) {
  return impl_->ReadTo(ctx, ino, offset, sink);
}

Status FileSystem::WriteFrom(const RequestContext& ctx, InodeId ino,
                             const std::function<Status(std::string* piece)>& source) {
  return impl_->WriteFrom(ctx, ino, source);
}

Status FileSystem::Access(const RequestContext& ctx, InodeId ino, int mask) {
  if (mask & W_OK) NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  return impl_->meta_->Access(ctx, ino, mask);
}

StatusOr<FsStat> FileSystem::StatFs() {
  auto fs = impl_->meta_->GetStatFs();
  if (!fs.ok()) return fs.status();
  FsStat out;
  out.used_bytes = fs->bytes_used;
  out.capacity_bytes = std::max(kNominalCapacityBytes, fs->bytes_used);
  out.inodes_used = fs->inodes;
  out.inodes_free = 1ull << 32;
  return out;
}

Status FileSystem::SetXattr(const RequestContext& ctx, InodeId ino, const std::string& name,
                            const std::string& value, int flags) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  if (IsPosixAcl(name)) return Status::Posix(EOPNOTSUPP, "POSIX ACLs are not supported");
  impl_->SetNoCapability(ino, false);
  impl_->ForgetFileAttr(ino);  // its ctime
  Status st = impl_->meta_->SetXattr(impl_->C(ctx), ino, name, value, flags);
  impl_->ForgetFileAttr(ino);
  return st;
}

StatusOr<std::string> FileSystem::GetXattr(const RequestContext& ctx, InodeId ino,
                                           const std::string& name) {
  if (IsPosixAcl(name)) return Status::Posix(EOPNOTSUPP, "POSIX ACLs are not supported");
  const bool cap = IsCapability(name);
  if (cap && impl_->KnownNoCapability(ino)) return Status::Posix(ENODATA, name);
  auto v = impl_->meta_->GetXattr(ctx, ino, name);
  if (cap && !v.ok() && v.status().posix_errno() == ENODATA) impl_->SetNoCapability(ino, true);
  return v;
}

StatusOr<std::vector<std::string>> FileSystem::ListXattr(const RequestContext& ctx, InodeId ino) {
  return impl_->meta_->ListXattr(ctx, ino);
}

Status FileSystem::RemoveXattr(const RequestContext& ctx, InodeId ino, const std::string& name) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  if (IsPosixAcl(name)) return Status::Posix(EOPNOTSUPP, "POSIX ACLs are not supported");
  impl_->SetNoCapability(ino, false);
  impl_->ForgetFileAttr(ino);  // its ctime
  Status st = impl_->meta_->RemoveXattr(impl_->C(ctx), ino, name);
  impl_->ForgetFileAttr(ino);
  return st;
}

StatusOr<InodeAttr> FileSystem::Compose(const RequestContext& ctx, InodeId target,
                                        InodeId parts_dir, const std::vector<std::string>& parts,
                                        ChangeInfo* info) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  NEEDLEFS_RETURN_IF_ERROR(impl_->files_->Flush(target));
  for (const std::string& p : parts) {
    auto a = impl_->Lookup(ctx, parts_dir, p);
    if (a.ok() && a->type == FileType::kRegular) {
      NEEDLEFS_RETURN_IF_ERROR(impl_->files_->Flush(a->ino));
    }
  }
  for (const std::string& p : parts) impl_->RecordOwnEntry(parts_dir, p);
  impl_->ForgetAllFileAttrs();
  Impl::DirChange change;
  impl_->BeginDirChange(&change, info, parts_dir);
  auto a = impl_->meta_->Compose(impl_->C(ctx), target, parts_dir, parts, change.info);
  impl_->EndDirChange(&change, a.ok());
  for (const std::string& p : parts) {
    if (a.ok()) {
      impl_->dirs_->Removed(parts_dir, p);
    } else {
      impl_->DropOwnEntry(parts_dir, p);
    }
  }
  impl_->ForgetAllFileAttrs();
  impl_->files_->Invalidate(target);
  impl_->dirs_->InvalidateInode(target);
  impl_->InvalidateImplicit(target);
  return impl_->WithPending(std::move(a));
}

StatusOr<InodeAttr> FileSystem::ReplaceFile(const RequestContext& ctx, InodeId parent,
                                            const std::string& name, uint32_t mode,
                                            const std::function<Status(std::string* piece)>& source,
                                            ChangeInfo* info, uint32_t rename_flags,
                                            const std::function<Status(InodeId)>& before_rename) {
  NEEDLEFS_RETURN_IF_ERROR(impl_->ReadOnly());
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char tmp[40];
  std::snprintf(tmp, sizeof(tmp), ".needlefs-tmp-%016llx", static_cast<unsigned long long>(rng()));
  NEEDLEFS_ASSIGN_OR_RETURN(OpenedFile f, Create(ctx, parent, tmp, mode, O_WRONLY | O_EXCL));
  const InodeId ino = f.attr.ino;
  Status st;
  uint64_t offset = 0;
  std::string piece;
  for (;;) {
    piece.clear();
    st = source(&piece);
    if (!st.ok() || piece.empty()) break;
    st = Write(ctx, ino, offset, piece, f.handle);
    if (!st.ok()) break;
    offset += piece.size();
  }
  if (st.ok()) st = Flush(ino);
  Release(f.handle);
  if (st.ok() && before_rename) st = before_rename(ino);
  if (st.ok()) st = Rename(ctx, parent, tmp, parent, name, rename_flags, info);
  if (!st.ok()) {
    Status rm = Unlink(ctx, parent, tmp);
    if (!rm.ok()) spdlog::warn("fs.replace: cannot remove {}: {}", tmp, rm.ToString());
    return st;
  }
  return GetAttr(ino);
}

size_t FileSystem::implicit_opens() const {
  std::lock_guard<std::mutex> g(impl_->open_mu_);
  return impl_->implicit_.size() + impl_->expiring_;
}

size_t FileSystem::ExpireImplicitOpens(int64_t idle_ns) {
  return impl_->ExpireImplicitOpens(idle_ns);
}

}  // namespace needlefs
