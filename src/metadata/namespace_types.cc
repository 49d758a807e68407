// The namespace's value types that front ends use without the namespace
// itself (InodeAttr, RequestContext, the access rule): a library of their
// own, so the client library does not link the KV engines.
#include "metadata/namespace_types.h"

#include <sys/stat.h>

namespace needlefs {

uint32_t InodeAttr::StMode() const {
  uint32_t t = 0;
  switch (type) {
    case FileType::kRegular:
      t = S_IFREG;
      break;
    case FileType::kDirectory:
      t = S_IFDIR;
      break;
    case FileType::kSymlink:
      t = S_IFLNK;
      break;
    case FileType::kFifo:
      t = S_IFIFO;
      break;
    case FileType::kSocket:
      t = S_IFSOCK;
      break;
    case FileType::kCharDevice:
      t = S_IFCHR;
      break;
    case FileType::kBlockDevice:
      t = S_IFBLK;
      break;
  }
  return t | (mode & 07777);
}

bool RequestContext::InGroup(uint32_t g) const {
  if (g == gid) return true;
  for (uint32_t x : groups) {
    if (x == g) return true;
  }
  return false;
}

bool MayAccess(const RequestContext& ctx, const InodeAttr& attr, int mask) {
  if (ctx.uid == 0) {
    // Root may do anything but execute a file that nobody may execute.
    return !(mask & 1) || attr.type == FileType::kDirectory || (attr.mode & 0111);
  }
  uint32_t bits;
  if (ctx.uid == attr.uid) {
    bits = (attr.mode >> 6) & 7;
  } else if (ctx.InGroup(attr.gid)) {
    bits = (attr.mode >> 3) & 7;
  } else {
    bits = attr.mode & 7;
  }
  return (bits & static_cast<uint32_t>(mask)) == static_cast<uint32_t>(mask);
}

}  // namespace needlefs
