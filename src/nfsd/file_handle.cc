#include "nfsd/file_handle.h"

namespace needlefs::nfsd {
namespace {

constexpr uint8_t kVersion = 1;

void PutBE64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

uint64_t GetBE64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

std::string FileHandle::Encode() const {
  std::string out(kFileHandleBytes, '\0');
  out[0] = static_cast<char>(kVersion);
  out[1] = static_cast<char>(export_id);
  PutBE64(out.data() + 4, ino.value);
  PutBE64(out.data() + 12, generation.value);
  return out;
}

std::optional<FileHandle> FileHandle::Decode(std::string_view b) {
  if (b.size() != kFileHandleBytes || static_cast<uint8_t>(b[0]) != kVersion || b[2] != 0 ||
      b[3] != 0) {
    return std::nullopt;
  }
  FileHandle h;
  h.export_id = static_cast<uint8_t>(b[1]);
  h.ino = InodeId(GetBE64(b.data() + 4));
  h.generation = Generation(GetBE64(b.data() + 12));
  if (h.ino.value == 0) return std::nullopt;
  return h;
}

}  // namespace needlefs::nfsd
