// Volume read path: index lookup, the record read in three parts (head,
// fields and trailer, data) with its cookie and CRC checks; range reads of
// part of the data.
#include <prometheus/counter.h>

#include <chrono>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "objstore/internal/volume_files.h"
#include "objstore/volume.h"

namespace needlefs {

namespace {

/// Counts and logs a needle that failed its checks; returns the error.
Status ReportCorrupt(VolumeId volume, NeedleKey key, uint64_t offset, const Status& s) {
  static auto& crc_errors = Metrics::Global().Counter(
      "needlefs_volume_crc_errors_total", "Needle reads that failed a checksum or format check");
  crc_errors.Increment();
  spdlog::error("volume.read_corrupt id={} key={:x} offset={} error=\"{}\"", volume.value,
                key.value, offset, s.message());
  return s.WithContext("volume " + std::to_string(volume.value) + " needle " +
                       std::to_string(key.value));
}

}  // namespace

/// Cookie, tombstone and TTL checks of a decoded needle: kNotFound when the
/// reader may not see it.
Status Volume::CheckReadable(const Needle& n, Cookie cookie) const {
  if (n.cookie != cookie) return Status::NotFound("needle not found (cookie mismatch)");
  if (n.deleted()) return Status::NotFound("needle deleted");
  uint16_t ttl = n.ttl ? n.ttl : super_block_.ttl;
  if (ttl != 0) {
    uint64_t born = n.last_modified_s ? n.last_modified_s : n.append_at_ns / 1'000'000'000;
    uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
    if (born + Ttl::Seconds(ttl) < now) return Status::NotFound("needle expired (ttl)");
  }
  return Status::OK();
}

Status Volume::Checked(const Status& read, NeedleKey key, uint64_t offset) const {
  if (read.code() != StatusCode::kOutOfRange) return read;
  // The index points past the end of the data file: the record is damaged
  // (kCorruption gets read repair and a 500, not the 416 of a bad range).
  return ReportCorrupt(options_.id, key, offset, Status::Corruption(read.message()));
}

StatusOr<std::pair<std::shared_ptr<VolumeFiles>, NeedleLocation>> Volume::Locate(
    NeedleKey key) const {
  std::shared_ptr<VolumeFiles> f;
  std::optional<NeedleLocation> loc;
  {
    std::shared_lock l(mu_);
    f = files_;
    if (!f) return Status::NotFound("volume deleted");
    loc = f->map->Get(key);
  }
  if (!loc) return Status::NotFound("needle not found");
  return std::make_pair(std::move(f), *loc);
}

StatusOr<Volume::RecordWithoutData> Volume::ReadWithoutData(NeedleKey key) const {
  NEEDLEFS_ASSIGN_OR_RETURN(auto found, Locate(key));
  auto& [f, loc] = found;
  const uint64_t at = loc.offset_bytes();
  char head[kNeedleHeadSize];
  NEEDLEFS_RETURN_IF_ERROR(Checked(f->data->ReadAt(at, head, sizeof(head)), key, at));
  const NeedleHeader h = DecodeNeedleHeader(head);
  const uint32_t size = DecodeFixed32(head + kNeedleHeaderSize);
  if (h.key != key) {
    return ReportCorrupt(
        options_.id, key, at,
        Status::Corruption("index points at needle " + std::to_string(h.key.value)));
  }
  if (h.body_size != loc.size || uint64_t{size} + 5 > h.body_size) {
    return ReportCorrupt(options_.id, key, at, Status::Corruption("needle sizes disagree"));
  }
  std::string tail(h.body_size - 4 - size + kNeedleTrailerSize, '\0');
  NEEDLEFS_RETURN_IF_ERROR(
      Checked(f->data->ReadAt(at + kNeedleHeadSize + size, tail.data(), tail.size()), key, at));
  auto n = DecodeNeedleWithoutData(std::string_view(head, sizeof(head)), tail);
  if (!n.ok()) return ReportCorrupt(options_.id, key, at, n.status());
  return RecordWithoutData{std::move(f), at, size, std::move(n).value()};
}

StatusOr<Needle> Volume::Read(NeedleKey key, Cookie cookie) const {
  // The head, fields and trailer, then the data straight into the needle's
  // buffer: no copy of the data out of a record buffer (a blob is up to a
  // 4 MiB chunk, and every read of it went through here).
  NEEDLEFS_ASSIGN_OR_RETURN(RecordWithoutData r, ReadWithoutData(key));
  Needle& n = r.needle;
  const uint64_t at = r.record_offset;
  n.data.resize(r.data_size);
  NEEDLEFS_RETURN_IF_ERROR(
      Checked(r.files->data->ReadAt(at + kNeedleHeadSize, n.data.data(), r.data_size), key, at));
  if (Crc32c(n.data) != n.data_crc) {
    return ReportCorrupt(options_.id, key, at, Status::Corruption("needle data checksum mismatch"));
  }
  NEEDLEFS_RETURN_IF_ERROR(CheckReadable(n, cookie));
  return std::move(n);
}

StatusOr<Needle> Volume::ReadRange(NeedleKey key, Cookie cookie, const RangePicker& pick,
                                   uint64_t* data_size) const {
  NEEDLEFS_ASSIGN_OR_RETURN(RecordWithoutData r, ReadWithoutData(key));
  Needle& n = r.needle;
  const uint64_t at = r.record_offset;
  const uint32_t size = r.data_size;
  NEEDLEFS_RETURN_IF_ERROR(CheckReadable(n, cookie));
  *data_size = size;
  if (n.gzipped()) return std::move(n);
  auto [offset, length] = pick(size);
  if (offset >= size) return std::move(n);
  length = std::min<uint64_t>(length, size - offset);
  n.data.resize(length);
  NEEDLEFS_RETURN_IF_ERROR(Checked(
      r.files->data->ReadAt(at + kNeedleHeadSize + offset, n.data.data(), length), key, at));
  return std::move(n);
}

}  // namespace needlefs
