// File ids as SeaweedFS writes them: "<volume id>,<key hex><cookie 8 hex>",
// e.g. "3,01637037d6" = volume 3, key 0x01, cookie 0x637037d6. The key is
// written in hex without leading zeros, padded to an even number of digits
// as SeaweedFS does; any length of 1..16 digits parses.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "common/types.h"

namespace needlefs {

struct FileId {
  VolumeId volume;
  NeedleKey key;
  Cookie cookie;

  /// "3,01637037d6". Keys are written with an even number of hex digits.
  std::string ToString() const;
  /// Parses "3,01637037d6" (also accepts "3/01637037d6"); an extension after
  /// a '.' is ignored ("3,01637037d6.jpg"). Errors: kInvalidArgument.
  static StatusOr<FileId> Parse(std::string_view s);
  /// Parses only the "<key hex><cookie 8 hex>" part.
  static Status ParseKeyCookie(std::string_view s, NeedleKey* key, Cookie* cookie);

  friend bool operator==(const FileId&, const FileId&) = default;
  /// By volume, then key, then cookie (for sets and maps of ids).
  friend auto operator<=>(const FileId&, const FileId&) = default;
};

}  // namespace needlefs
