// In-memory needle map. Layout (docs/formats.md#in-memory-index):
//  - sorted, non-overlapping segments of up to kSegmentEntries 16-byte
//    entries {key u64, offset u32, size u32}; keys arriving in increasing
//    order (the common case: assigned keys grow) append to the last segment;
//  - an ordered overflow map for keys that arrive out of order, merged into
//    the segments once it exceeds max(1024, count/64) entries;
//  - deletes mark the slot (size = kDeletedSlot) and are dropped at the next
//    merge.
// Steady-state cost: 16 bytes per needle plus under one byte of overhead.
#include <algorithm>
#include <map>
#include <vector>

#include "objstore/needle_map.h"

namespace needlefs {
namespace {

constexpr size_t kSegmentEntries = 4096;
constexpr uint32_t kDeletedSlot = 0xFFFFFFFFu;

struct Entry {
  uint64_t key;
  uint32_t offset;
  uint32_t size;
};
static_assert(sizeof(Entry) == 16);

class MemoryNeedleMap final : public NeedleMap {
 public:
  std::optional<NeedleLocation> Get(NeedleKey key) const override {
    if (const Entry* e = FindInSegments(key.value)) {
      if (e->size == kDeletedSlot) return std::nullopt;
      return NeedleLocation{e->offset, e->size};
    }
    auto it = overflow_.find(key.value);
    if (it == overflow_.end()) return std::nullopt;
    return it->second;
  }

  Status Put(NeedleKey key, NeedleLocation loc, uint64_t) override {
    if (Entry* e = FindInSegments(key.value)) {
      if (e->size == kDeletedSlot) {
        --deleted_slots_;
        ++count_;
      }
      e->offset = loc.offset_units;
      e->size = loc.size;
      return Status::OK();
    }
    if (segments_.empty() || key.value > segments_.back().back().key) {
      if (segments_.empty() || segments_.back().size() >= kSegmentEntries) {
        segments_.emplace_back();
      }
      segments_.back().push_back({key.value, loc.offset_units, loc.size});
      ++count_;
      return Status::OK();
    }
    auto [it, inserted] = overflow_.insert_or_assign(key.value, loc);
    if (inserted) ++count_;
    if (overflow_.size() > std::max<uint64_t>(1024, count_ / 64)) Merge();
    return Status::OK();
  }

  Status Delete(NeedleKey key, uint64_t) override {
    if (Entry* e = FindInSegments(key.value)) {
      if (e->size != kDeletedSlot) {
        e->size = kDeletedSlot;
        ++deleted_slots_;
        --count_;
      }
    } else if (overflow_.erase(key.value)) {
      --count_;
    }
    if (deleted_slots_ > 1024 && deleted_slots_ > count_) Merge();
    return Status::OK();
  }

  Status ForEach(const std::function<bool(NeedleKey, NeedleLocation)>& fn) const override {
    auto ov = overflow_.begin();
    for (const auto& seg : segments_) {
      for (const Entry& e : seg) {
        for (; ov != overflow_.end() && ov->first < e.key; ++ov) {
          if (!fn(NeedleKey(ov->first), ov->second)) return Status::OK();
        }
        if (e.size != kDeletedSlot && !fn(NeedleKey(e.key), NeedleLocation{e.offset, e.size})) {
          return Status::OK();
        }
      }
    }
    for (; ov != overflow_.end(); ++ov) {
      if (!fn(NeedleKey(ov->first), ov->second)) return Status::OK();
    }
    return Status::OK();
  }

  uint64_t Count() const override { return count_; }
  uint64_t AppliedEntries() const override { return 0; }
  uint64_t MemoryBytes() const override {
    uint64_t bytes = segments_.capacity() * sizeof(std::vector<Entry>);
    for (const auto& seg : segments_) bytes += seg.capacity() * sizeof(Entry);
    // A std::map node: three pointers, color, key and value, about 64 bytes.
    return bytes + overflow_.size() * 64;
  }
  Status Flush() override { return Status::OK(); }

 private:
  Entry* FindInSegments(uint64_t key) const {
    // First segment whose first key is > key, then step back one.
    auto seg =
        std::upper_bound(segments_.begin(), segments_.end(), key,
                         [](uint64_t k, const std::vector<Entry>& s) { return k < s.front().key; });
    if (seg == segments_.begin()) return nullptr;
    --seg;
    auto e = std::lower_bound(seg->begin(), seg->end(), key,
                              [](const Entry& a, uint64_t k) { return a.key < k; });
    if (e == seg->end() || e->key != key) return nullptr;
    return const_cast<Entry*>(&*e);
  }

  /// Rebuilds the segments from segments + overflow, dropping deleted slots.
  void Merge() {
    std::vector<std::vector<Entry>> out;
    auto emit = [&out](const Entry& e) {
      if (out.empty() || out.back().size() >= kSegmentEntries) {
        out.emplace_back();
        out.back().reserve(kSegmentEntries);
      }
      out.back().push_back(e);
    };
    auto ov = overflow_.begin();
    for (auto& seg : segments_) {
      for (const Entry& e : seg) {
        for (; ov != overflow_.end() && ov->first < e.key; ++ov) {
          emit({ov->first, ov->second.offset_units, ov->second.size});
        }
        if (e.size != kDeletedSlot) emit(e);
      }
      std::vector<Entry>().swap(seg);  // free as we go to bound the peak
    }
    for (; ov != overflow_.end(); ++ov) emit({ov->first, ov->second.offset_units, ov->second.size});
    if (!out.empty()) out.back().shrink_to_fit();
    segments_ = std::move(out);
    overflow_.clear();
    deleted_slots_ = 0;
  }

  std::vector<std::vector<Entry>> segments_;
  std::map<uint64_t, NeedleLocation> overflow_;
  uint64_t count_ = 0;
  uint64_t deleted_slots_ = 0;
};

}  // namespace

std::unique_ptr<NeedleMap> NewMemoryNeedleMap() { return std::make_unique<MemoryNeedleMap>(); }

StatusOr<IndexMode> ParseIndexMode(const std::string& s) {
  if (s == "memory") return IndexMode::kMemory;
  if (s == "rocksdb" || s == "leveldb") return IndexMode::kRocksDb;
  return Status::InvalidArgument("unknown index mode '" + s + "' (memory, rocksdb)");
}

}  // namespace needlefs
