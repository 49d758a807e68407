#include "common/file_id.h"

#include <cstdio>

namespace needlefs {
namespace {

bool ParseHex(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

std::string FileId::ToString() const {
  char buf[20];
  int n = std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(key.value));
  std::string k(buf, static_cast<size_t>(n));
  if (k.size() % 2) k.insert(k.begin(), '0');
  char cookie_hex[9];
  std::snprintf(cookie_hex, sizeof(cookie_hex), "%08x", cookie.value);
  return std::to_string(volume.value) + "," + k + cookie_hex;
}

Status FileId::ParseKeyCookie(std::string_view s, NeedleKey* key, Cookie* cookie) {
  if (s.size() <= 8 || s.size() > 24) {
    return Status::InvalidArgument("file id key+cookie must be 9..24 hex digits");
  }
  uint64_t k, c;
  if (!ParseHex(s.substr(0, s.size() - 8), &k) || !ParseHex(s.substr(s.size() - 8), &c)) {
    return Status::InvalidArgument("file id is not hex: " + std::string(s));
  }
  *key = NeedleKey(k);
  *cookie = Cookie(static_cast<uint32_t>(c));
  return Status::OK();
}

StatusOr<FileId> FileId::Parse(std::string_view s) {
  size_t sep = s.find_first_of(",/");
  if (sep == std::string_view::npos || sep == 0) {
    return Status::InvalidArgument("malformed file id (want <volume>,<key><cookie>): " +
                                   std::string(s));
  }
  uint64_t vid = 0;
  for (char c : s.substr(0, sep)) {
    if (c < '0' || c > '9' || vid > 0xFFFFFFFFull / 10) {
      return Status::InvalidArgument("malformed volume id in file id: " + std::string(s));
    }
    vid = vid * 10 + static_cast<uint64_t>(c - '0');
  }
  if (vid > 0xFFFFFFFFull) return Status::InvalidArgument("volume id too large");
  std::string_view rest = s.substr(sep + 1);
  size_t dot = rest.find('.');
  if (dot != std::string_view::npos) rest = rest.substr(0, dot);
  FileId id;
  id.volume = VolumeId(static_cast<uint32_t>(vid));
  NEEDLEFS_RETURN_IF_ERROR(ParseKeyCookie(rest, &id.key, &id.cookie));
  return id;
}

}  // namespace needlefs
