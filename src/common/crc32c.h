// CRC32C (Castagnoli, iSCSI polynomial 0x1EDC6F41), computed by ISA-L.
// Used for needle data checksums and record checks. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace needlefs {

/// Returns the CRC32C of `len` bytes at `data`, continuing from `crc` (the
/// value returned for the preceding bytes; 0 to start). Crc32c("123456789")
/// is 0xE3069283.
uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);
inline uint32_t Crc32c(std::string_view s, uint32_t crc = 0) {
  return Crc32c(s.data(), s.size(), crc);
}

}  // namespace needlefs
