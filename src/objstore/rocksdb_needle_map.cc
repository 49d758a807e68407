// RocksDB-backed needle map for volumes too large for memory. Keys:
//   'n' + key (8 bytes big-endian, so iteration is in key order) ->
//       offset u32 LE + size u32 LE
//   'm' "applied"  -> u64 LE: index log entries reflected in the map
//   'm' "count"    -> u64 LE: live entries
//   'm' "revision" -> u16 LE: the volume's compaction revision
// Writes skip RocksDB's WAL: the volume's index log is the source of truth
// and every write carries the "applied" counter in the same batch, so after
// a crash the map is consistent at some older point and replay continues.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "common/endian.h"
#include "objstore/needle_map.h"

namespace needlefs {
namespace {

std::string EntryKey(uint64_t key) {
  std::string k(9, '\0');
  k[0] = 'n';
  for (int i = 0; i < 8; ++i) k[1 + i] = static_cast<char>(key >> (56 - 8 * i));
  return k;
}

uint64_t KeyFromEntry(const rocksdb::Slice& k) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(k.data()[1 + i]);
  return v;
}

std::string U64(uint64_t v) {
  std::string s(8, '\0');
  EncodeFixed64(s.data(), v);
  return s;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::Internal(what + ": " + s.ToString());
}

class RocksDbNeedleMap final : public NeedleMap {
 public:
  RocksDbNeedleMap(std::unique_ptr<rocksdb::DB> db, uint64_t applied, uint64_t count)
      : db_(std::move(db)), applied_(applied), count_(count) {
    write_options_.disableWAL = true;
  }
  ~RocksDbNeedleMap() override { Flush().IgnoreError(); }

  std::optional<NeedleLocation> Get(NeedleKey key) const override {
    std::string v;
    if (!db_->Get(rocksdb::ReadOptions(), EntryKey(key.value), &v).ok() || v.size() != 8) {
      return std::nullopt;
    }
    return NeedleLocation{DecodeFixed32(v.data()), DecodeFixed32(v.data() + 4)};
  }

  Status Put(NeedleKey key, NeedleLocation loc, uint64_t applied) override {
    std::string v(8, '\0');
    EncodeFixed32(v.data(), loc.offset_units);
    EncodeFixed32(v.data() + 4, loc.size);
    uint64_t count = count_ + (Get(key) ? 0 : 1);
    rocksdb::WriteBatch batch;
    batch.Put(EntryKey(key.value), v);
    batch.Put("mapplied", U64(applied));
    batch.Put("mcount", U64(count));
    NEEDLEFS_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch), "rocksdb index put"));
    count_ = count;
    applied_ = applied;
    return Status::OK();
  }

  Status Delete(NeedleKey key, uint64_t applied) override {
    uint64_t count = count_ - (Get(key) ? 1 : 0);
    rocksdb::WriteBatch batch;
    batch.Delete(EntryKey(key.value));
    batch.Put("mapplied", U64(applied));
    batch.Put("mcount", U64(count));
    NEEDLEFS_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch), "rocksdb index delete"));
    count_ = count;
    applied_ = applied;
    return Status::OK();
  }

  Status ForEach(const std::function<bool(NeedleKey, NeedleLocation)>& fn) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("n"); it->Valid() && it->key().starts_with("n"); it->Next()) {
      rocksdb::Slice v = it->value();
      if (v.size() != 8 || it->key().size() != 9)
        return Status::Corruption("bad rocksdb index entry");
      if (!fn(NeedleKey(KeyFromEntry(it->key())),
              NeedleLocation{DecodeFixed32(v.data()), DecodeFixed32(v.data() + 4)})) {
        break;
      }
    }
    return FromRocks(it->status(), "rocksdb index scan");
  }

  uint64_t Count() const override { return count_; }
  uint64_t AppliedEntries() const override { return applied_; }
  uint64_t MemoryBytes() const override {
    uint64_t mem = 0;
    db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
    return mem;
  }
  Status Flush() override {
    return FromRocks(db_->Flush(rocksdb::FlushOptions()), "rocksdb flush");
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
  uint64_t applied_;
  uint64_t count_;
};

}  // namespace

StatusOr<std::unique_ptr<NeedleMap>> OpenRocksDbNeedleMap(const std::string& path,
                                                          uint16_t revision) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = 8 << 20;
  options.max_open_files = 64;
  options.IncreaseParallelism(1);
  rocksdb::DB* raw = nullptr;
  NEEDLEFS_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, path, &raw), "open " + path));
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string rev, applied, count;
  bool fresh = !db->Get(rocksdb::ReadOptions(), "mrevision", &rev).ok() || rev.size() != 2 ||
               DecodeFixed16(rev.data()) != revision;
  if (!fresh && (!db->Get(rocksdb::ReadOptions(), "mapplied", &applied).ok() ||
                 !db->Get(rocksdb::ReadOptions(), "mcount", &count).ok() || applied.size() != 8 ||
                 count.size() != 8)) {
    fresh = true;
  }
  if (fresh) {
    // Built for another compaction revision (or never finished): start over.
    db.reset();
    NEEDLEFS_RETURN_IF_ERROR(FromRocks(rocksdb::DestroyDB(path, options), "destroy " + path));
    NEEDLEFS_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, path, &raw), "open " + path));
    db.reset(raw);
    std::string r(2, '\0');
    EncodeFixed16(r.data(), revision);
    rocksdb::WriteBatch batch;
    batch.Put("mrevision", r);
    batch.Put("mapplied", U64(0));
    batch.Put("mcount", U64(0));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    NEEDLEFS_RETURN_IF_ERROR(FromRocks(db->Write(wo, &batch), "init " + path));
    return std::unique_ptr<NeedleMap>(new RocksDbNeedleMap(std::move(db), 0, 0));
  }
  return std::unique_ptr<NeedleMap>(new RocksDbNeedleMap(
      std::move(db), DecodeFixed64(applied.data()), DecodeFixed64(count.data())));
}

}  // namespace needlefs
