#include "nfsd/file_handle.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

namespace needlefs::nfsd {
namespace {

constexpr uint8_t kVersion = 2;
constexpr size_t kSignedBytes = 20;
constexpr size_t kMacBytes = kFileHandleBytes - kSignedBytes;

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

/// The first kMacBytes of HMAC-SHA256(key, signed) into `out`.
void Mac(const std::string& key, const char* signed_bytes, char* out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signed_bytes), kSignedBytes, md, &len);
  std::memcpy(out, md, kMacBytes);
}

}  // namespace

std::string FileHandleCodec::Encode(const FileHandle& h) const {
  std::string out(kFileHandleBytes, '\0');
  out[0] = static_cast<char>(kVersion);
  out[1] = static_cast<char>(h.export_id);
  PutBE64(out.data() + 4, h.ino.value);
  PutBE64(out.data() + 12, h.generation.value);
  Mac(key_, out.data(), out.data() + kSignedBytes);
  return out;
}

std::optional<FileHandle> FileHandleCodec::Decode(std::string_view b) const {
  if (b.size() != kFileHandleBytes || static_cast<uint8_t>(b[0]) != kVersion || b[2] != 0 ||
      b[3] != 0) {
    return std::nullopt;
  }
  char mac[kMacBytes];
  Mac(key_, b.data(), mac);
  if (CRYPTO_memcmp(mac, b.data() + kSignedBytes, kMacBytes) != 0) return std::nullopt;
  FileHandle h;
  h.export_id = static_cast<uint8_t>(b[1]);
  h.ino = InodeId(GetBE64(b.data() + 4));
  h.generation = Generation(GetBE64(b.data() + 12));
  if (h.ino.value == 0) return std::nullopt;
  return h;
}

}  // namespace needlefs::nfsd
