// Volume read path: index lookup, one pread of the whole record, cookie and
// CRC checks.
#include <prometheus/counter.h>

#include <chrono>

#include "common/logging.h"
#include "common/metrics.h"
#include "objstore/internal/volume_files.h"
#include "objstore/volume.h"

namespace needlefs {

StatusOr<Needle> Volume::Read(NeedleKey key, Cookie cookie) const {
  std::shared_ptr<VolumeFiles> f;
  std::optional<NeedleLocation> loc;
  {
    std::shared_lock l(mu_);
    f = files_;
    if (!f) return Status::NotFound("volume deleted");
    loc = f->map->Get(key);
  }
  if (!loc) return Status::NotFound("needle not found");
  std::string rec(NeedleRecordSize(loc->size), '\0');
  NEEDLEFS_RETURN_IF_ERROR(f->data.ReadAt(loc->offset_bytes(), rec.data(), rec.size()));
  NeedleHeader h = DecodeNeedleHeader(rec.data());
  auto n = h.key == key ? DecodeNeedle(rec)
                        : StatusOr<Needle>(Status::Corruption("index points at needle " +
                                                              std::to_string(h.key.value)));
  if (!n.ok()) {
    static auto& crc_errors = Metrics::Global().Counter(
        "needlefs_volume_crc_errors_total", "Needle reads that failed a checksum or format check");
    crc_errors.Increment();
    spdlog::error("volume.read_corrupt id={} key={:x} offset={} error=\"{}\"", options_.id.value,
                  key.value, loc->offset_bytes(), n.status().message());
    return n.status().WithContext("volume " + std::to_string(options_.id.value) + " needle " +
                                  std::to_string(key.value));
  }
  if (n->cookie != cookie) return Status::NotFound("needle not found (cookie mismatch)");
  if (n->deleted()) return Status::NotFound("needle deleted");
  uint16_t ttl = n->ttl ? n->ttl : super_block_.ttl;
  if (ttl != 0) {
    uint64_t born = n->last_modified_s ? n->last_modified_s : n->append_at_ns / 1'000'000'000;
    uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
    if (born + Ttl::Seconds(ttl) < now) return Status::NotFound("needle expired (ttl)");
  }
  return std::move(n).value();
}

}  // namespace needlefs
