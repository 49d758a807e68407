#include "meta_convert.h"

namespace needlefs {

namespace pb = ::needlefs::meta;

RequestContext FromPb(const pb::Caller& c) {
  RequestContext ctx;
  ctx.uid = c.uid();
  ctx.gid = c.gid();
  ctx.groups.assign(c.groups().begin(), c.groups().end());
  ctx.sync = !c.no_sync();
  return ctx;
}

void ToPb(const RequestContext& ctx, pb::Caller* out) {
  out->set_uid(ctx.uid);
  out->set_gid(ctx.gid);
  out->mutable_groups()->Add(ctx.groups.begin(), ctx.groups.end());
  out->set_no_sync(!ctx.sync);
}

void ToPb(const InodeAttr& a, pb::Attr* out) {
  out->set_ino(a.ino.value);
  out->set_generation(a.generation.value);
  out->set_type(static_cast<uint32_t>(a.type));
  out->set_mode(a.mode);
  out->set_uid(a.uid);
  out->set_gid(a.gid);
  out->set_size(a.size);
  out->set_nlink(a.nlink);
  out->set_atime_ns(a.atime_ns);
  out->set_mtime_ns(a.mtime_ns);
  out->set_ctime_ns(a.ctime_ns);
  out->set_rdev(a.rdev);
}

InodeAttr FromPb(const pb::Attr& a) {
  InodeAttr out;
  out.ino = InodeId(a.ino());
  out.generation = Generation(a.generation());
  out.type = static_cast<FileType>(a.type());
  out.mode = a.mode();
  out.uid = a.uid();
  out.gid = a.gid();
  out.size = a.size();
  out.nlink = a.nlink();
  out.atime_ns = a.atime_ns();
  out.mtime_ns = a.mtime_ns();
  out.ctime_ns = a.ctime_ns();
  out.rdev = a.rdev();
  return out;
}

void ToPb(const Chunk& c, pb::Chunk* out) {
  out->set_offset(c.offset);
  out->set_size(c.size);
  out->set_blob_offset(c.blob_offset);
  if (c.is_inline()) {
    out->set_data(c.data);
  } else {
    out->set_file_id(c.file_id.ToString());
  }
}

SetAttrRequest FromPb(const pb::SetAttrRequest& r) {
  SetAttrRequest sa;
  if (r.has_mode()) sa.mode = r.mode();
  if (r.has_uid()) sa.uid = r.uid();
  if (r.has_gid()) sa.gid = r.gid();
  if (r.has_size()) sa.size = r.size();
  if (r.has_atime_ns()) sa.atime_ns = r.atime_ns();
  if (r.has_mtime_ns()) sa.mtime_ns = r.mtime_ns();
  sa.atime_now = r.atime_now();
  sa.mtime_now = r.mtime_now();
  return sa;
}

void ToPb(const SetAttrRequest& sa, pb::SetAttrRequest* out) {
  if (sa.mode) out->set_mode(*sa.mode);
  if (sa.uid) out->set_uid(*sa.uid);
  if (sa.gid) out->set_gid(*sa.gid);
  if (sa.size) out->set_size(*sa.size);
  if (sa.atime_ns) out->set_atime_ns(*sa.atime_ns);
  if (sa.mtime_ns) out->set_mtime_ns(*sa.mtime_ns);
  out->set_atime_now(sa.atime_now);
  out->set_mtime_now(sa.mtime_now);
}

StatusOr<Chunk> FromPb(const pb::Chunk& c) {
  if (!c.data().empty() && c.file_id().empty()) {
    Chunk out;
    out.offset = c.offset();
    out.size = c.size();
    out.blob_offset = c.blob_offset();
    out.data = c.data();
    return out;
  }
  auto fid = FileId::Parse(c.file_id());
  if (!fid.ok()) return fid.status().WithContext("chunk");
  Chunk out;
  out.file_id = *fid;
  out.offset = c.offset();
  out.size = c.size();
  out.blob_offset = c.blob_offset();
  return out;
}

namespace {

WccAttr WccFromPb(const pb::Wcc& w) {
  WccAttr out;
  if (w.has_before()) out.before = FromPb(w.before());
  if (w.has_after()) out.after = FromPb(w.after());
  return out;
}

void WccToPb(const WccAttr& w, pb::Wcc* out) {
  if (w.before) ToPb(*w.before, out->mutable_before());
  if (w.after) ToPb(*w.after, out->mutable_after());
}

}  // namespace

ChangeInfo FromPb(const pb::ChangeInfo& c) {
  ChangeInfo out;
  out.dir = WccFromPb(c.dir());
  out.to_dir = WccFromPb(c.to_dir());
  out.inode = WccFromPb(c.inode());
  return out;
}

void ToPb(const ChangeInfo& c, pb::ChangeInfo* out) {
  WccToPb(c.dir, out->mutable_dir());
  WccToPb(c.to_dir, out->mutable_to_dir());
  WccToPb(c.inode, out->mutable_inode());
}

bool IsBatchReadOp(const pb::BatchOp& op) {
  return op.op_case() == pb::BatchOp::kLookup || op.op_case() == pb::BatchOp::kGetAttr;
}

}  // namespace needlefs
