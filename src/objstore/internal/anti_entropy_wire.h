// The packed digest entries of the VolumeDigest gRPC stream
// (proto/volume_server.proto), shared by its server and client sides.
// 28 bytes per entry, little-endian: key (8), offset in 8-byte units (4),
// body size (4; 0xFFFFFFFF = tombstone), data CRC32C (4), append_at_ns (8).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "objstore/volume.h"

namespace needlefs {

inline constexpr size_t kDigestEntryWireSize = 28;

/// Packs `n` entries into `*out` (replacing its contents).
void EncodeDigestEntries(const DigestEntry* entries, size_t n, std::string* out);

/// Appends the entries packed in `in` to `*out`. Errors: kCorruption (a
/// partial entry, or keys not ascending across the whole of `*out`).
Status DecodeDigestEntries(std::string_view in, std::vector<DigestEntry>* out);

}  // namespace needlefs
