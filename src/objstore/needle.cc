#include "objstore/needle.h"

#include <cstring>

#include "common/crc32c.h"
#include "common/endian.h"

namespace needlefs {

StatusOr<std::string> EncodeNeedle(Needle& n) {
  if (n.name.size() > 255) return Status::InvalidArgument("needle name longer than 255 bytes");
  if (n.mime.size() > 255) return Status::InvalidArgument("needle mime longer than 255 bytes");
  if (n.data.size() > kMaxNeedleDataSize) return Status::InvalidArgument("needle data too large");

  uint8_t flags = n.flags & (kFlagDeleted | kFlagGzip);
  if (!n.name.empty()) flags |= kFlagHasName;
  if (!n.mime.empty()) flags |= kFlagHasMime;
  if (n.last_modified_s != 0) flags |= kFlagHasLastModified;
  if (n.ttl != 0) flags |= kFlagHasTtl;
  n.flags = flags;

  uint64_t body = 4 + n.data.size() + 1;
  if (flags & kFlagHasName) body += 1 + n.name.size();
  if (flags & kFlagHasMime) body += 1 + n.mime.size();
  if (flags & kFlagHasLastModified) body += 8;
  if (flags & kFlagHasTtl) body += 2;
  const uint32_t body_size = static_cast<uint32_t>(body);

  std::string out(NeedleRecordSize(body_size), '\0');
  char* p = out.data();
  EncodeFixed32(p, n.cookie.value);
  EncodeFixed64(p + 4, n.key.value);
  EncodeFixed32(p + 12, body_size);
  char* b = p + kNeedleHeaderSize;
  EncodeFixed32(b, static_cast<uint32_t>(n.data.size()));
  std::memcpy(b + 4, n.data.data(), n.data.size());
  char* m = b + 4 + n.data.size();  // metadata after the data
  char* q = m;
  *q++ = static_cast<char>(flags);
  if (flags & kFlagHasName) {
    *q++ = static_cast<char>(n.name.size());
    std::memcpy(q, n.name.data(), n.name.size());
    q += n.name.size();
  }
  if (flags & kFlagHasMime) {
    *q++ = static_cast<char>(n.mime.size());
    std::memcpy(q, n.mime.data(), n.mime.size());
    q += n.mime.size();
  }
  if (flags & kFlagHasLastModified) {
    EncodeFixed64(q, n.last_modified_s);
    q += 8;
  }
  if (flags & kFlagHasTtl) {
    EncodeFixed16(q, n.ttl);
    q += 2;
  }
  n.data_crc = Crc32c(n.data);
  EncodeFixed32(q, n.data_crc);
  EncodeFixed64(q + 4, n.append_at_ns);

  uint32_t rc = Crc32c(p, kNeedleHeadSize);             // header + data_size
  rc = Crc32c(m, static_cast<size_t>(q - m) + 12, rc);  // metadata, data_crc, append_at_ns
  EncodeFixed32(q + 12, rc);
  return out;
}

NeedleHeader DecodeNeedleHeader(const char* p) {
  NeedleHeader h;
  h.cookie = Cookie(DecodeFixed32(p));
  h.key = NeedleKey(DecodeFixed64(p + 4));
  h.body_size = DecodeFixed32(p + 12);
  return h;
}

namespace {

/// Parses the fields after the data, [m, body_end) (flags, name, mime,
/// last_modified, ttl), then the trailer at body_end (data_crc,
/// append_at_ns, record_crc) into `n`; checks record_crc, which starts as
/// `head_crc` (the CRC32C of the header and data_size). Errors: kCorruption.
Status DecodeFieldsAndTrailer(const char* m, const char* body_end, uint32_t head_crc, Needle* n,
                              uint32_t* stored_data_crc) {
  const char* q = m;
  n->flags = static_cast<uint8_t>(*q++);
  auto need = [&](size_t k) { return static_cast<size_t>(body_end - q) >= k; };
  if (n->flags & kFlagHasName) {
    if (!need(1)) return Status::Corruption("needle name truncated");
    size_t len = static_cast<uint8_t>(*q++);
    if (!need(len)) return Status::Corruption("needle name truncated");
    n->name.assign(q, len);
    q += len;
  }
  if (n->flags & kFlagHasMime) {
    if (!need(1)) return Status::Corruption("needle mime truncated");
    size_t len = static_cast<uint8_t>(*q++);
    if (!need(len)) return Status::Corruption("needle mime truncated");
    n->mime.assign(q, len);
    q += len;
  }
  if (n->flags & kFlagHasLastModified) {
    if (!need(8)) return Status::Corruption("needle last-modified truncated");
    n->last_modified_s = DecodeFixed64(q);
    q += 8;
  }
  if (n->flags & kFlagHasTtl) {
    if (!need(2)) return Status::Corruption("needle ttl truncated");
    n->ttl = DecodeFixed16(q);
    q += 2;
  }
  if (q != body_end) return Status::Corruption("needle body size does not match its fields");
  *stored_data_crc = DecodeFixed32(q);
  n->append_at_ns = DecodeFixed64(q + 4);
  uint32_t stored_record_crc = DecodeFixed32(q + 12);
  uint32_t rc = Crc32c(m, static_cast<size_t>(q - m) + 12, head_crc);
  if (rc != stored_record_crc) return Status::Corruption("needle record checksum mismatch");
  return Status::OK();
}

}  // namespace

StatusOr<Needle> DecodeNeedle(std::string_view rec) {
  if (rec.size() < kNeedleHeaderSize + 5 + kNeedleTrailerSize) {
    return Status::Corruption("needle record too short");
  }
  const char* p = rec.data();
  NeedleHeader h = DecodeNeedleHeader(p);
  if (kNeedleHeaderSize + uint64_t{h.body_size} + kNeedleTrailerSize > rec.size()) {
    return Status::Corruption("needle body size " + std::to_string(h.body_size) +
                              " exceeds the record");
  }
  const char* b = p + kNeedleHeaderSize;
  uint32_t data_size = DecodeFixed32(b);
  if (uint64_t{data_size} + 5 > h.body_size) return Status::Corruption("needle data size bad");
  Needle n;
  n.cookie = h.cookie;
  n.key = h.key;
  uint32_t stored_data_crc = 0;
  NEEDLEFS_RETURN_IF_ERROR(DecodeFieldsAndTrailer(
      b + 4 + data_size, b + h.body_size, Crc32c(p, kNeedleHeadSize), &n, &stored_data_crc));
  n.data.assign(b + 4, data_size);
  n.data_crc = Crc32c(n.data);
  if (n.data_crc != stored_data_crc) return Status::Corruption("needle data checksum mismatch");
  return n;
}

StatusOr<Needle> DecodeNeedleWithoutData(std::string_view head, std::string_view tail) {
  if (head.size() < kNeedleHeadSize) return Status::Corruption("needle head too short");
  NeedleHeader h = DecodeNeedleHeader(head.data());
  const uint32_t data_size = DecodeFixed32(head.data() + kNeedleHeaderSize);
  if (uint64_t{data_size} + 5 > h.body_size) return Status::Corruption("needle data size bad");
  const uint64_t fields = h.body_size - 4 - uint64_t{data_size};
  if (tail.size() < fields + kNeedleTrailerSize) return Status::Corruption("needle tail too short");
  Needle n;
  n.cookie = h.cookie;
  n.key = h.key;
  NEEDLEFS_RETURN_IF_ERROR(DecodeFieldsAndTrailer(
      tail.data(), tail.data() + fields, Crc32c(head.data(), kNeedleHeadSize), &n, &n.data_crc));
  return n;
}

namespace {
constexpr char kTtlUnits[] = {'m', 'h', 'd', 'w', 'M', 'y'};
constexpr uint64_t kTtlUnitSeconds[] = {60, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400};
}  // namespace

StatusOr<uint16_t> Ttl::Parse(std::string_view s) {
  if (s.empty()) return uint16_t{0};
  char unit = s.back();
  std::string_view digits = s.substr(0, s.size() - 1);
  if (digits.empty() || digits.size() > 3)
    return Status::InvalidArgument("bad ttl: " + std::string(s));
  unsigned count = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return Status::InvalidArgument("bad ttl: " + std::string(s));
    count = count * 10 + static_cast<unsigned>(c - '0');
  }
  if (count == 0 || count > 255) return Status::InvalidArgument("ttl count must be 1..255");
  for (size_t i = 0; i < sizeof(kTtlUnits); ++i) {
    if (kTtlUnits[i] == unit) return static_cast<uint16_t>((count << 8) | (i + 1));
  }
  return Status::InvalidArgument("bad ttl unit in " + std::string(s) + " (m,h,d,w,M,y)");
}

std::string Ttl::ToString(uint16_t ttl) {
  unsigned unit = ttl & 0xFF;
  if (ttl == 0 || unit == 0 || unit > sizeof(kTtlUnits)) return "";
  return std::to_string(ttl >> 8) + kTtlUnits[unit - 1];
}

uint64_t Ttl::Seconds(uint16_t ttl) {
  unsigned unit = ttl & 0xFF;
  if (ttl == 0 || unit == 0 || unit > sizeof(kTtlUnits)) return 0;
  return static_cast<uint64_t>(ttl >> 8) * kTtlUnitSeconds[unit - 1];
}

}  // namespace needlefs
