#include "objstore/volume.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/crc32c.h"
#include "objstore/store.h"
#include "test_util.h"

namespace needlefs {
namespace {

Needle MakeNeedle(uint64_t key, uint32_t cookie, std::string data) {
  Needle n;
  n.key = NeedleKey(key);
  n.cookie = Cookie(cookie);
  n.data = std::move(data);
  return n;
}

class VolumeTest : public ::testing::TestWithParam<IndexMode> {
 protected:
  VolumeOptions Options() {
    VolumeOptions o;
    o.dir = dir_.path();
    o.id = VolumeId(3);
    o.index_mode = GetParam();
    o.durability = Durability::kNone;
    return o;
  }
  std::unique_ptr<Volume> OpenVolume(bool create = true) {
    auto v = Volume::Open(Options(), create);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(v).value() : nullptr;
  }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(IndexModes, VolumeTest,
                         ::testing::Values(IndexMode::kMemory, IndexMode::kRocksDb),
                         [](const auto& info) {
                           return info.param == IndexMode::kMemory ? "Memory" : "RocksDb";
                         });

TEST_P(VolumeTest, WriteReadDelete) {
  auto v = OpenVolume();
  Needle n = MakeNeedle(1, 0xabc, "payload");
  n.name = "x.bin";
  auto w = v->Write(n);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->size, 7u);
  auto r = v->Read(NeedleKey(1), Cookie(0xabc));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data, "payload");
  EXPECT_EQ(r->name, "x.bin");
  EXPECT_TRUE(v->Read(NeedleKey(1), Cookie(0xabd)).status().IsNotFound());
  EXPECT_TRUE(v->Read(NeedleKey(2), Cookie(0xabc)).status().IsNotFound());
  EXPECT_TRUE(v->Delete(NeedleKey(1), Cookie(0x1)).status().IsNotFound());  // wrong cookie
  auto d = v->Delete(NeedleKey(1), Cookie(0xabc));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 7u);
  EXPECT_TRUE(v->Read(NeedleKey(1), Cookie(0xabc)).status().IsNotFound());
  EXPECT_TRUE(v->Delete(NeedleKey(1), Cookie(0xabc)).status().IsNotFound());
  VolumeStats st = v->Stats();
  EXPECT_EQ(st.needle_count, 0u);
  EXPECT_GT(st.garbage_bytes, 0u);
}

/// Flips the byte at the first occurrence of `what` in volume `dir`'s data file.
void FlipByteOf(const std::string& dir, const std::string& what) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".dat") continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t at = all.find(what);
    ASSERT_NE(at, std::string::npos);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(all[at] ^ 0x5a));
    return;
  }
  FAIL() << "no data file in " << dir;
}

TEST_P(VolumeTest, ReadRangeReadsPartOfTheDataAndChecksTheRecord) {
  auto v = OpenVolume();
  std::string data(100'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  Needle n = MakeNeedle(7, 0x77, data);
  n.name = "big-name.bin";
  ASSERT_TRUE(v->Write(n).ok());
  auto range = [&](uint64_t offset, uint64_t length, uint64_t* size) {
    return v->ReadRange(
        NeedleKey(7), Cookie(0x77), [&](uint64_t) { return std::make_pair(offset, length); }, size);
  };
  uint64_t size = 0;
  auto r = range(5000, 4096, &size);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(size, 100'000u);
  EXPECT_EQ(r->data, data.substr(5000, 4096));
  EXPECT_EQ(r->name, "big-name.bin");
  EXPECT_EQ(r->data_crc, Crc32c(data));
  EXPECT_EQ(range(99'000, 4096, &size)->data, data.substr(99'000));  // clipped at the end
  EXPECT_EQ(range(200'000, 10, &size)->data, "");                    // past it
  EXPECT_TRUE(v->ReadRange(
                   NeedleKey(7), Cookie(0x78), [](uint64_t) { return std::make_pair(0, 1); }, &size)
                  .status()
                  .IsNotFound());

  // A gzipped needle comes back without data (its stored bytes are compressed).
  Needle z = MakeNeedle(8, 0x88, "not really gzip");
  z.flags |= kFlagGzip;
  ASSERT_TRUE(v->Write(z).ok());
  auto rz = v->ReadRange(
      NeedleKey(8), Cookie(0x88), [](uint64_t) { return std::make_pair(0, 4); }, &size);
  ASSERT_TRUE(rz.ok());
  EXPECT_TRUE(rz->gzipped());
  EXPECT_EQ(rz->data, "");

  // Damaged data: a range read cannot tell (the data CRC covers all of it),
  // the whole read can. A damaged field outside the data fails both.
  FlipByteOf(dir_.path(), data.substr(50'000, 64));
  EXPECT_TRUE(range(0, 100, &size).ok());
  EXPECT_TRUE(v->Read(NeedleKey(7), Cookie(0x77)).status().IsCorruption());
  FlipByteOf(dir_.path(), "big-name.bin");
  EXPECT_TRUE(range(0, 100, &size).status().IsCorruption());
}

/// A record the index points at but the data file no longer holds whole (a
/// truncated file): corruption, so the server repairs it from a replica,
/// never a short read that an HTTP client could take for "past the end".
TEST_P(VolumeTest, ATruncatedRecordReadsAsCorruption) {
  auto v = OpenVolume();
  ASSERT_TRUE(v->Write(MakeNeedle(9, 0x99, std::string(10'000, 'q'))).ok());
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    if (e.path().extension() == ".dat") {
      std::filesystem::resize_file(e.path(), std::filesystem::file_size(e.path()) - 5000);
    }
  }
  EXPECT_TRUE(v->Read(NeedleKey(9), Cookie(0x99)).status().IsCorruption());
  uint64_t size = 0;
  EXPECT_TRUE(
      v->ReadRange(
           NeedleKey(9), Cookie(0x99), [](uint64_t) { return std::make_pair(0, 100); }, &size)
          .status()
          .IsCorruption());
}

TEST_P(VolumeTest, OverwriteNeedsTheSameCookieAndNewestWins) {
  auto v = OpenVolume();
  ASSERT_TRUE(v->Write(MakeNeedle(5, 1, "one")).ok());
  EXPECT_TRUE(v->Write(MakeNeedle(5, 2, "evil")).status().IsNotFound());
  ASSERT_TRUE(v->Write(MakeNeedle(5, 1, "two")).ok());
  EXPECT_EQ(v->Read(NeedleKey(5), Cookie(1))->data, "two");
  EXPECT_EQ(v->Stats().needle_count, 1u);
}

TEST_P(VolumeTest, ReopenKeepsEverything) {
  {
    auto v = OpenVolume();
    for (uint64_t k = 1; k <= 500; ++k) {
      ASSERT_TRUE(v->Write(MakeNeedle(k, 7, std::string(k, 'a' + k % 26))).ok());
    }
    for (uint64_t k = 1; k <= 500; k += 3) ASSERT_TRUE(v->Delete(NeedleKey(k), Cookie(7)).ok());
  }
  auto v = OpenVolume(false);
  for (uint64_t k = 1; k <= 500; ++k) {
    auto r = v->Read(NeedleKey(k), Cookie(7));
    if (k % 3 == 1) {
      EXPECT_TRUE(r.status().IsNotFound()) << k;
    } else {
      ASSERT_TRUE(r.ok()) << k << " " << r.status().ToString();
      EXPECT_EQ(r->data, std::string(k, 'a' + k % 26));
    }
  }
}

TEST_P(VolumeTest, OpenMissingWithoutCreateIsNotFound) {
  EXPECT_TRUE(Volume::Open(Options(), false).status().IsNotFound());
}

TEST_P(VolumeTest, FullVolumeTurnsReadOnlyAndStoresNothing) {
  VolumeOptions o = Options();
  o.size_limit_bytes = 4096;
  auto v = Volume::Open(o, true);
  ASSERT_TRUE(v.ok());
  int written = 0;
  Status last;
  for (uint64_t k = 1; k < 100; ++k) {
    auto w = (*v)->Write(MakeNeedle(k, 1, std::string(500, 'x')));
    if (!w.ok()) {
      last = w.status();
      break;
    }
    ++written;
  }
  EXPECT_EQ(last.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*v)->read_only());
  EXPECT_LE((*v)->Stats().data_bytes, 4096u);
  EXPECT_GT(written, 3);
  EXPECT_FALSE((*v)->SetReadOnly(false).ok());  // full stays read-only
  for (int k = 1; k <= written; ++k) EXPECT_TRUE((*v)->Read(NeedleKey(k), Cookie(1)).ok());
}

TEST_P(VolumeTest, ReadOnlyByCommandPersists) {
  {
    auto v = OpenVolume();
    ASSERT_TRUE(v->Write(MakeNeedle(1, 1, "a")).ok());
    ASSERT_TRUE(v->SetReadOnly(true).ok());
    EXPECT_EQ(v->Write(MakeNeedle(2, 1, "b")).status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(v->Delete(NeedleKey(1), Cookie(1)).status().code(), StatusCode::kFailedPrecondition);
  }
  auto v = OpenVolume(false);
  EXPECT_TRUE(v->read_only());
  EXPECT_TRUE(v->Read(NeedleKey(1), Cookie(1)).ok());
  ASSERT_TRUE(v->SetReadOnly(false).ok());
  EXPECT_TRUE(v->Write(MakeNeedle(2, 1, "b")).ok());
}

TEST_P(VolumeTest, TtlExpiresNeedles) {
  auto v = OpenVolume();
  Needle n = MakeNeedle(1, 1, "old");
  n.ttl = *Ttl::Parse("1m");
  n.last_modified_s = 1000;  // long ago
  ASSERT_TRUE(v->Write(n).ok());
  EXPECT_TRUE(v->Read(NeedleKey(1), Cookie(1)).status().IsNotFound());
  Needle fresh = MakeNeedle(2, 1, "new");
  fresh.ttl = *Ttl::Parse("1m");
  ASSERT_TRUE(v->Write(fresh).ok());
  EXPECT_TRUE(v->Read(NeedleKey(2), Cookie(1)).ok());
}

TEST_P(VolumeTest, ConcurrentWritersAndReaders) {
  VolumeOptions o = Options();
  o.durability = Durability::kGroup;
  auto v = Volume::Open(o, true);
  ASSERT_TRUE(v.ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        uint64_t key = static_cast<uint64_t>(t) * 1000 + i + 1;
        std::string data = std::to_string(key) + std::string(i, 'z');
        if (!(*v)->Write(MakeNeedle(key, 9, data)).ok()) ++failures;
        auto r = (*v)->Read(NeedleKey(key), Cookie(9));
        if (!r.ok() || r->data != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ((*v)->Stats().needle_count, 1600u);
  // 1600 durable writes shared far fewer fdatasyncs.
  EXPECT_LT((*v)->sync_count(), 1600u);
}

TEST(StoreTest, AllocateListDeleteAndReload) {
  TempDir dir;
  StoreOptions so;
  so.dir = dir.path();
  so.max_volumes = 2;
  so.durability = Durability::kNone;
  {
    auto store = Store::Open(so);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->AllocateVolume(VolumeId(1), "", {}, 0).ok());
    ASSERT_TRUE((*store)->AllocateVolume(VolumeId(2), "pics", {}, 0).ok());
    EXPECT_TRUE((*store)->AllocateVolume(VolumeId(2), "pics", {}, 0).ok());  // idempotent
    EXPECT_EQ((*store)->AllocateVolume(VolumeId(2), "", {}, 0).code(), StatusCode::kAlreadyExists);
    EXPECT_EQ((*store)->AllocateVolume(VolumeId(3), "", {}, 0).code(),
              StatusCode::kResourceExhausted);
    ASSERT_TRUE((*store)->GetVolume(VolumeId(2))->Write(MakeNeedle(1, 1, "x")).ok());
    EXPECT_EQ((*store)->FreeSlots(), 0);
  }
  auto store = Store::Open(so);
  ASSERT_TRUE(store.ok());
  auto v2 = (*store)->GetVolume(VolumeId(2));
  ASSERT_NE(v2, nullptr);
  EXPECT_EQ(v2->collection(), "pics");
  EXPECT_EQ(v2->Read(NeedleKey(1), Cookie(1))->data, "x");
  ASSERT_TRUE((*store)->DeleteVolume(VolumeId(2)).ok());
  EXPECT_EQ((*store)->GetVolume(VolumeId(2)), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/pics_2.dat"));
  EXPECT_TRUE((*store)->DeleteVolume(VolumeId(2)).IsNotFound());
}

}  // namespace
}  // namespace needlefs
