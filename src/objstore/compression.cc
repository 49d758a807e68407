#include "objstore/compression.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace needlefs {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Extension(std::string_view name) {
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size()) return "";
  return Lower(name.substr(dot + 1));
}

constexpr std::array<std::pair<const char*, const char*>, 24> kMimeByExt = {{
    {"txt", "text/plain"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"js", "application/javascript"},
    {"json", "application/json"},
    {"xml", "application/xml"},
    {"csv", "text/csv"},
    {"md", "text/markdown"},
    {"svg", "image/svg+xml"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"png", "image/png"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"pdf", "application/pdf"},
    {"gz", "application/gzip"},
    {"zip", "application/zip"},
    {"mp4", "video/mp4"},
    {"mp3", "audio/mpeg"},
    {"h", "text/x-c"},
    {"c", "text/x-c"},
    {"cc", "text/x-c++"},
    {"log", "text/plain"},
}};

}  // namespace

std::string MimeFromName(std::string_view name) {
  std::string ext = Extension(name);
  for (const auto& [e, m] : kMimeByExt) {
    if (ext == e) return m;
  }
  return "";
}

bool IsCompressible(std::string_view mime_in, std::string_view name) {
  std::string mime = Lower(mime_in.substr(0, mime_in.find(';')));
  if (mime.empty() || mime == "application/octet-stream") mime = MimeFromName(name);
  if (mime.rfind("text/", 0) == 0) return true;
  for (const char* m : {"application/json", "application/javascript", "application/xml",
                        "image/svg+xml", "application/x-javascript", "application/xhtml+xml"}) {
    if (mime == m) return true;
  }
  return mime.size() > 5 && (mime.ends_with("+json") || mime.ends_with("+xml"));
}

StatusOr<std::string> GzipCompress(std::string_view data) {
  z_stream zs{};
  // windowBits 15 + 16 = gzip wrapper; level 1 favours speed.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Status::Internal("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Status::Internal("deflate failed");
  return out;
}

StatusOr<std::string> GzipDecompress(std::string_view data, size_t max_bytes) {
  z_stream zs{};
  // windowBits 15 + 32 = detect gzip or zlib.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return Status::Internal("inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[65536];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return Status::Corruption("gzip data is invalid");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&zs);
      return Status::ResourceExhausted("decompressed data too large");
    }
  } while (rc != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return Status::Corruption("gzip data is truncated");
  return out;
}

}  // namespace needlefs
