// FUSE operations on open files: each a translation of one file-system
// layer call (see internal/fuse_server.h). fi->fh holds the layer's handle.
#include <fcntl.h>

#include <string_view>

#include "common/logging.h"
#include "fuse/internal/fuse_server.h"

namespace needlefs::fuse {
namespace {

/// The caller's identity for I/O through a handle: its permission was
/// checked at open, so the supplementary groups are not fetched.
RequestContext IoCtx(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  RequestContext ctx;
  ctx.uid = c->uid;
  ctx.gid = c->gid;
  return ctx;
}

}  // namespace

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
  // FUSE_CAP_ATOMIC_O_TRUNC: O_TRUNC reaches us with the open.
  auto f = s->fs().Open(s->Ctx(req), s->FromFuse(ino), fi->flags);
  if (!f.ok()) return FuseServer::ReplyErr(req, f.status());
  fi->fh = f->handle;
  fi->keep_cache = f->keep_cache;
  // Changed since this client last opened it (or never opened here): the
  // kernel's attributes may be older than meta's (another client's close
  // within the attribute timeout), and it reads only up to their size.
  // The next GETATTR is answered from what the open fetched.
  if (!f->keep_cache) s->AttributesStale(ino);
  // An interrupted open gets no release: drop the handle now.
  if (fuse_reply_open(req, fi) != 0) s->fs().Release(f->handle);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
  auto f = s->fs().Create(s->Ctx(req), s->FromFuse(parent), name, mode & 07777, fi->flags);
  if (!f.ok()) return FuseServer::ReplyErr(req, f.status());
  fi->fh = f->handle;
  fi->keep_cache = f->keep_cache;
  fuse_entry_param e;
  s->FillEntry(f->attr, &e);
  if (fuse_reply_create(req, &e, fi) != 0) s->fs().Release(f->handle);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
  auto data = s->fs().Read(IoCtx(req), s->FromFuse(ino), static_cast<uint64_t>(off), size, fi->fh);
  if (!data.ok()) return FuseServer::ReplyErr(req, data.status());
  fuse_reply_buf(req, data->data(), data->size());
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
  Status st = s->fs().Write(IoCtx(req), s->FromFuse(ino), static_cast<uint64_t>(off),
                            std::string_view(buf, size), fi->fh);
  if (!st.ok()) return FuseServer::ReplyErr(req, st);
  fuse_reply_write(req, size);
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  FuseServer* s = FuseServer::Self(req);
  FuseServer::ReplyErr(req, s->fs().Flush(s->FromFuse(ino)));
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  FuseServer::Self(req)->fs().Release(fi->fh);
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  FuseServer* s = FuseServer::Self(req);
  Status st = s->fs().Fsync(s->FromFuse(ino));
  if (!st.ok()) spdlog::warn("fuse.fsync ino={}: {}", ino, st.ToString());
  FuseServer::ReplyErr(req, st);
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* fi) {
  FuseServer* s = FuseServer::Self(req);
  if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  if (s->options().read_only) return (void)fuse_reply_err(req, EROFS);
  if (mode == FALLOC_FL_KEEP_SIZE) return (void)fuse_reply_err(req, 0);  // no space to reserve
  if (mode != 0) return (void)fuse_reply_err(req, EOPNOTSUPP);
  FuseServer::ReplyErr(
      req, s->fs().Allocate(s->Ctx(req), s->FromFuse(ino), static_cast<uint64_t>(offset),
                            static_cast<uint64_t>(length), fi ? fi->fh : 0));
}

}  // namespace needlefs::fuse
