// FUSE operations on directories, the file system and xattrs: each a
// translation of one file-system layer call (see internal/fuse_server.h).
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <cstring>
#include <string>

#include "fuse/internal/fuse_server.h"

namespace needlefs::fuse {
namespace {

/// READDIR and READDIRPLUS: "." and ".." (cookies 1 and 2) then the
/// layer's entries, as many as fit in `size` bytes.
void ReadDir(fuse_req_t req, fuse_ino_t fino, size_t size, off_t off, bool plus) {
  FuseServer* s = FuseServer::Self(req);
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
  auto r = s->fs().ReadDir(s->Ctx(req), s->FromFuse(fino), cookie, want, plus);
  if (!r.ok()) {
    if (used > 0) return (void)fuse_reply_buf(req, buf.data(), used);
    return FuseServer::ReplyErr(req, r.status());
  }
  for (const DirEntry& d : r->entries) {
    fuse_entry_param e;
    if (plus && d.attr) {
      s->FillEntry(*d.attr, &e);
    } else {
      std::memset(&e, 0, sizeof(e));
      e.attr.st_ino = s->ToFuse(d.ino);
      InodeAttr tmp;
      tmp.type = d.type;
      e.attr.st_mode = tmp.StMode();
    }
    if (!add(d.name, e.attr, d.cookie, &e)) break;
  }
  fuse_reply_buf(req, buf.data(), used);
}

/// Replies to getxattr/listxattr: the size with size 0, ERANGE when the
/// buffer is too small, else the bytes.
void ReplyXattr(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, value.size());
  if (value.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, value.data(), value.size());
}

}  // namespace

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
  auto a = s->fs().OpenDir(s->Ctx(req), s->FromFuse(ino));
  if (!a.ok()) return FuseServer::ReplyErr(req, a.status());
  fuse_reply_open(req, fi);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ReadDir(req, ino, size, off, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ReadDir(req, ino, size, off, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  // Namespace changes are committed (visible) when they return; this makes
  // them, and every other change so far, durable on meta's disk.
  FuseServer::ReplyErr(req, FuseServer::Self(req)->fs().SyncNamespace());
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  auto fs = FuseServer::Self(req)->fs().StatFs();
  if (!fs.ok()) return FuseServer::ReplyErr(req, fs.status());
  struct statvfs st;
  std::memset(&st, 0, sizeof(st));
  const uint64_t bsize = 4096;
  const uint64_t used_blocks = (fs->used_bytes + bsize - 1) / bsize;
  st.f_bsize = kBlockSize;
  st.f_frsize = bsize;
  st.f_blocks = std::max(fs->capacity_bytes / bsize, used_blocks);
  st.f_bfree = st.f_blocks - used_blocks;
  st.f_bavail = st.f_bfree;
  st.f_files = fs->inodes_used + fs->inodes_free;
  st.f_ffree = fs->inodes_free;
  st.f_favail = st.f_ffree;
  st.f_namemax = kMaxNameBytes;
  fuse_reply_statfs(req, &st);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  FuseServer* s = FuseServer::Self(req);
  int f = 0;
  if (flags & XATTR_CREATE) f |= kXattrCreate;
  if (flags & XATTR_REPLACE) f |= kXattrReplace;
  FuseServer::ReplyErr(
      req, s->fs().SetXattr(s->Ctx(req), s->FromFuse(ino), name, std::string(value, size), f));
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  FuseServer* s = FuseServer::Self(req);
  auto v = s->fs().GetXattr(s->Ctx(req), s->FromFuse(ino), name);
  if (!v.ok()) return FuseServer::ReplyErr(req, v.status());
  ReplyXattr(req, *v, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  FuseServer* s = FuseServer::Self(req);
  auto names = s->fs().ListXattr(s->Ctx(req), s->FromFuse(ino));
  if (!names.ok()) return FuseServer::ReplyErr(req, names.status());
  std::string out;
  for (const auto& n : *names) {
    out += n;
    out.push_back('\0');
  }
  ReplyXattr(req, out, size);
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  FuseServer* s = FuseServer::Self(req);
  FuseServer::ReplyErr(req, s->fs().RemoveXattr(s->Ctx(req), s->FromFuse(ino), name));
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  FuseServer* s = FuseServer::Self(req);
  FuseServer::ReplyErr(req, s->fs().Access(s->Ctx(req), s->FromFuse(ino), mask));
}

}  // namespace needlefs::fuse
