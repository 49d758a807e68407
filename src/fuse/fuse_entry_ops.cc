// FUSE operations on names and attributes: each a translation of one
// file-system layer call (see internal/fuse_server.h).
#include <sys/stat.h>

#include <cstdio>

#include "fuse/internal/fuse_server.h"

namespace needlefs::fuse {

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseServer* s = FuseServer::Self(req);
  s->ReplyLookup(req, s->fs().Lookup(s->Ctx(req), s->FromFuse(parent), name));
}

// Inodes live in meta, not here: nothing to forget.
void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  FuseServer* s = FuseServer::Self(req);
  s->ReplyAttr(req, s->fs().GetAttr(s->FromFuse(ino)));
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
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
  // ftruncate(2) comes with the descriptor it went through.
  s->ReplyAttr(req, s->fs().SetAttr(s->Ctx(req), s->FromFuse(ino), r, fi ? fi->fh : 0));
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  FuseServer* s = FuseServer::Self(req);
  auto t = s->fs().Readlink(s->FromFuse(ino));
  if (!t.ok()) return FuseServer::ReplyErr(req, t.status());
  fuse_reply_readlink(req, t->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  FuseServer* s = FuseServer::Self(req);
  FileType type;
  switch (mode & S_IFMT) {
    case S_IFREG:
      type = FileType::kRegular;
      break;
    case S_IFDIR:
      type = FileType::kDirectory;
      break;
    case S_IFIFO:
      type = FileType::kFifo;
      break;
    case S_IFSOCK:
      type = FileType::kSocket;
      break;
    case S_IFCHR:
      type = FileType::kCharDevice;
      break;
    case S_IFBLK:
      type = FileType::kBlockDevice;
      break;
    default:
      return (void)fuse_reply_err(req, EINVAL);
  }
  s->ReplyEntry(req, s->fs().Mknod(s->Ctx(req), s->FromFuse(parent), name, type, mode & 07777,
                                   type == FileType::kCharDevice || type == FileType::kBlockDevice
                                       ? static_cast<uint64_t>(rdev)
                                       : 0));
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  FuseServer* s = FuseServer::Self(req);
  s->ReplyEntry(req, s->fs().Mkdir(s->Ctx(req), s->FromFuse(parent), name, mode & 07777));
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseServer* s = FuseServer::Self(req);
  FuseServer::ReplyErr(req, s->fs().Unlink(s->Ctx(req), s->FromFuse(parent), name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseServer* s = FuseServer::Self(req);
  FuseServer::ReplyErr(req, s->fs().Rmdir(s->Ctx(req), s->FromFuse(parent), name));
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  FuseServer* s = FuseServer::Self(req);
  s->ReplyEntry(req, s->fs().Symlink(s->Ctx(req), s->FromFuse(parent), name, link));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  FuseServer* s = FuseServer::Self(req);
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    return (void)fuse_reply_err(req, EINVAL);  // RENAME_WHITEOUT: overlayfs only
  }
  uint32_t f = 0;
  if (flags & RENAME_NOREPLACE) f |= kRenameNoReplace;
  if (flags & RENAME_EXCHANGE) f |= kRenameExchange;
  FuseServer::ReplyErr(req, s->fs().Rename(s->Ctx(req), s->FromFuse(parent), name,
                                           s->FromFuse(newparent), newname, f));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  FuseServer* s = FuseServer::Self(req);
  s->ReplyEntry(req, s->fs().Link(s->Ctx(req), s->FromFuse(ino), s->FromFuse(newparent), newname));
}

}  // namespace needlefs::fuse
