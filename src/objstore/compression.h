// Transparent compression of compressible blobs (text, JSON, XML, JS, ...):
// the volume server stores them gzip-compressed and serves them with
// Content-Encoding: gzip to clients that accept it.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs {

/// Whether content of this MIME type or file name is worth compressing.
bool IsCompressible(std::string_view mime, std::string_view name);
/// gzip (RFC 1952) of `data` at a fast level.
StatusOr<std::string> GzipCompress(std::string_view data);
/// Inflates gzip or zlib data. Errors: kCorruption for bad input,
/// kResourceExhausted when the output would exceed `max_bytes`.
StatusOr<std::string> GzipDecompress(std::string_view data, size_t max_bytes);
/// MIME type guessed from a file name's extension, or "".
std::string MimeFromName(std::string_view name);

}  // namespace needlefs
