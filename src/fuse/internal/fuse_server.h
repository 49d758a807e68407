// The FUSE front end's private parts, shared by its operation files: the
// server state (the file-system layer, the libfuse session), the
// translation helpers (inode numbers, request context, struct stat, replies)
// and the libfuse low-level operations, one family per file:
//   fuse_mount.cc      mounting, the loop, the ops table, kernel notifications
//   fuse_entry_ops.cc  names: lookup, getattr, setattr, mknod, mkdir, unlink,
//                      rmdir, symlink, readlink, rename, link
//   fuse_file_ops.cc   open files: open, create, read, write, flush, release,
//                      fsync, fallocate
//   fuse_dir_ops.cc    directories and the rest: opendir, readdir(plus),
//                      fsyncdir, statfs, xattrs, access
// Each operation is one call of the layer (client/file_system.h) between
// the translation of the request and the reply; no rule lives here.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "client/file_system.h"
#include "fuse/fuse_mount.h"

namespace needlefs::fuse {

/// st_blksize: cp and friends use 1 MiB buffers.
inline constexpr uint32_t kBlockSize = 1u << 20;

/// One mount: the layer, the libfuse session, and the helpers every
/// operation uses. The operations find it with Self(req).
class FuseServer : public FileSystemListener {
 public:
  explicit FuseServer(FuseMountOptions options) : options_(std::move(options)) {}
  ~FuseServer() override;

  /// Opens the layer and mounts the kernel side. Errors: as FuseMount::Mount.
  Status Init();
  Status Run();
  void Stop();

  static FuseServer* Self(fuse_req_t req) {
    return static_cast<FuseServer*>(fuse_req_userdata(req));
  }
  FileSystem& fs() { return *fs_; }
  const FuseMountOptions& options() const { return options_; }

  /// FUSE's root (1) is the layer's root; other numbers are the namespace's.
  InodeId FromFuse(fuse_ino_t ino) const {
    return ino == FUSE_ROOT_ID ? root_ : InodeId{static_cast<uint64_t>(ino)};
  }
  fuse_ino_t ToFuse(InodeId ino) const {
    return ino == root_ ? FUSE_ROOT_ID : static_cast<fuse_ino_t>(ino.value);
  }

  /// The caller's uid, gid and supplementary groups (remembered per process
  /// for a second, so checks do not read /proc for every request), with
  /// the mount's durability.
  RequestContext Ctx(fuse_req_t req);

  void FillStat(const InodeAttr& a, struct stat* st) const;
  void FillEntry(const InodeAttr& a, fuse_entry_param* e) const;

  static void ReplyErr(fuse_req_t req, const Status& s) { fuse_reply_err(req, ErrnoOf(s)); }
  void ReplyEntry(fuse_req_t req, const StatusOr<InodeAttr>& a) const;
  /// A LOOKUP's reply: as ReplyEntry, but ENOENT as a negative entry the
  /// kernel keeps for the negative timeout (FuseMountOptions).
  void ReplyLookup(fuse_req_t req, const StatusOr<InodeAttr>& a) const;
  void ReplyAttr(fuse_req_t req, const StatusOr<InodeAttr>& a) const;

  /// Drops the kernel's cached attributes of `ino` (not its pages): an
  /// open found the file changed, and the kernel must not read up to an
  /// old size (close-to-open). Called before the open's reply.
  void AttributesStale(fuse_ino_t ino);

  // FileSystemListener: others' changes, passed to the kernel's caches.
  void InodeChanged(InodeId ino) override;
  void EntryChanged(InodeId parent, const std::string& name, InodeId ino) override;

 private:
  Status MountKernel();
  void Unmount();

  struct GroupsEntry {
    std::vector<uint32_t> groups;
    std::chrono::steady_clock::time_point at;
  };

  FuseMountOptions options_;
  std::unique_ptr<FileSystem> fs_;
  InodeId root_ = kRootInode;
  fuse_session* se_ = nullptr;
  std::atomic<bool> stopping_{false};
  /// Kernel notifications (from the layer's change-stream thread, and from
  /// an open) go out only while the session is mounted: not before the
  /// mount succeeded, not while or after it is unmounted (the fd is closed
  /// then). Shared by the notifications, which must not wait on each other
  /// (dropping pages waits for READs a worker may be needed to answer).
  std::shared_mutex notify_mu_;
  bool notify_ = false;  // GUARDED_BY(notify_mu_)
  std::mutex unmount_mu_;
  bool mounted_ = false;  // GUARDED_BY(unmount_mu_)
  std::mutex groups_mu_;
  std::unordered_map<pid_t, GroupsEntry> groups_;  // GUARDED_BY(groups_mu_)
};

// The low-level operations (fuse_lowlevel_ops), by family.
void OpInit(void* userdata, fuse_conn_info* conn);
void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name);
void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets);
void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
void OpReadlink(fuse_req_t req, fuse_ino_t ino);
void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name);
void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags);
void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi);
void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* fi);

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void OpStatfs(fuse_req_t req, fuse_ino_t ino);
void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags);
void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name);
void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask);

}  // namespace needlefs::fuse
