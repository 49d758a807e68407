// Start-up recovery and corruption detection, driven by damaging the files
// on disk the way crashes and bad disks do.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/file.h"
#include "objstore/index_file.h"
#include "objstore/superblock.h"
#include "objstore/volume.h"
#include "test_util.h"

namespace needlefs {
namespace {

namespace fs = std::filesystem;

class RecoveryTest : public ::testing::TestWithParam<IndexMode> {
 protected:
  VolumeOptions Options() {
    VolumeOptions o;
    o.dir = dir_.path();
    o.id = VolumeId(1);
    o.index_mode = GetParam();
    o.durability = Durability::kNone;
    return o;
  }
  std::string Dat() { return dir_.path() + "/1.dat"; }
  std::string Idx() { return dir_.path() + "/1.idx"; }

  /// Writes needles 1..n (data "needle-<k>" repeated k times) and closes.
  void WriteNeedles(int n) {
    auto v = Volume::Open(Options(), true);
    ASSERT_TRUE(v.ok());
    for (int k = 1; k <= n; ++k) {
      Needle nd;
      nd.key = NeedleKey(k);
      nd.cookie = Cookie(0x55);
      nd.data = Data(k);
      ASSERT_TRUE((*v)->Write(nd).ok());
    }
  }
  static std::string Data(int k) {
    std::string s;
    for (int i = 0; i < k; ++i) s += "needle-" + std::to_string(k);
    return s;
  }
  std::unique_ptr<Volume> Reopen() {
    auto v = Volume::Open(Options(), false);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(v).value() : nullptr;
  }
  void ExpectAllReadable(Volume* v, int n) {
    for (int k = 1; k <= n; ++k) {
      auto r = v->Read(NeedleKey(k), Cookie(0x55));
      ASSERT_TRUE(r.ok()) << "needle " << k << ": " << r.status().ToString();
      EXPECT_EQ(r->data, Data(k));
    }
  }
  void FlipByte(const std::string& path, uint64_t offset) {
    auto f = File::Open(path, O_RDWR);
    ASSERT_TRUE(f.ok());
    char c;
    ASSERT_TRUE(f->ReadAt(offset, &c, 1).ok());
    c ^= 0x01;
    ASSERT_TRUE(f->WriteAt(offset, &c, 1).ok());
  }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(IndexModes, RecoveryTest,
                         ::testing::Values(IndexMode::kMemory, IndexMode::kRocksDb),
                         [](const auto& info) {
                           return info.param == IndexMode::kMemory ? "Memory" : "RocksDb";
                         });

TEST_P(RecoveryTest, FlippedDataByteFailsTheReadCleanly) {
  WriteNeedles(3);
  // First needle's data starts after the superblock, header and data size.
  FlipByte(Dat(), kSuperBlockSize + 16 + 4 + 2);
  auto v = Reopen();
  auto r = v->Read(NeedleKey(1), Cookie(0x55));
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_EQ(r.status().message().find("payload"), std::string::npos);
  // The neighbours are untouched.
  EXPECT_EQ(v->Read(NeedleKey(2), Cookie(0x55))->data, Data(2));
  EXPECT_EQ(v->Read(NeedleKey(3), Cookie(0x55))->data, Data(3));
}

TEST_P(RecoveryTest, TornTailIsTruncatedOnOpen) {
  WriteNeedles(10);
  uint64_t good_size = fs::file_size(Dat());
  // A write that was never acknowledged: half a record at the end.
  Needle extra;
  extra.key = NeedleKey(11);
  extra.cookie = Cookie(0x55);
  extra.data = std::string(1000, 'q');
  auto rec = EncodeNeedle(extra);
  ASSERT_TRUE(rec.ok());
  {
    auto f = File::Open(Dat(), O_RDWR);
    ASSERT_TRUE(f->WriteAt(good_size, rec->data(), rec->size() / 2).ok());
  }
  auto v = Reopen();
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(fs::file_size(Dat()), good_size);
  ExpectAllReadable(v.get(), 10);
  EXPECT_TRUE(v->Read(NeedleKey(11), Cookie(0x55)).status().IsNotFound());
  // The volume keeps working after the cut.
  Needle again;
  again.key = NeedleKey(12);
  again.cookie = Cookie(0x55);
  again.data = "after";
  ASSERT_TRUE(v->Write(again).ok());
  v.reset();
  v = Reopen();
  EXPECT_EQ(v->Read(NeedleKey(12), Cookie(0x55))->data, "after");
}

TEST_P(RecoveryTest, IndexEntriesPastTheDataAreDropped) {
  WriteNeedles(10);
  // Cut the data file in the middle of the last needle; its index entry
  // now points past the end.
  uint64_t size = fs::file_size(Dat());
  fs::resize_file(Dat(), size - 20);
  auto v = Reopen();
  EXPECT_FALSE(v->read_only());
  ExpectAllReadable(v.get(), 9);
  EXPECT_TRUE(v->Read(NeedleKey(10), Cookie(0x55)).status().IsNotFound());
  EXPECT_EQ(fs::file_size(Idx()), 9 * kIndexEntrySize);
  EXPECT_LT(fs::file_size(Dat()), size - 20);  // the partial record is gone
}

TEST_P(RecoveryTest, MissingIndexIsRebuiltFromData) {
  WriteNeedles(20);
  {
    auto v = Reopen();
    ASSERT_TRUE(v->Delete(NeedleKey(5), Cookie(0x55)).ok());
  }
  fs::remove(Idx());
  fs::remove_all(dir_.path() + "/1.ldb");
  auto v = Reopen();
  EXPECT_FALSE(v->read_only());
  for (int k = 1; k <= 20; ++k) {
    auto r = v->Read(NeedleKey(k), Cookie(0x55));
    if (k == 5) {
      EXPECT_TRUE(r.status().IsNotFound());
    } else {
      ASSERT_TRUE(r.ok()) << k;
      EXPECT_EQ(r->data, Data(k));
    }
  }
  EXPECT_EQ(fs::file_size(Idx()), 21 * kIndexEntrySize);
}

TEST_P(RecoveryTest, ShortAndTornIndexIsCompletedFromData) {
  WriteNeedles(20);
  // Lose the last 7 index entries and leave half an entry: the needles were
  // written (and acknowledged) before their index entries.
  fs::resize_file(Idx(), 13 * kIndexEntrySize + 5);
  auto v = Reopen();
  EXPECT_FALSE(v->read_only());
  ExpectAllReadable(v.get(), 20);
  EXPECT_EQ(fs::file_size(Idx()), 20 * kIndexEntrySize);
}

TEST_P(RecoveryTest, DamageFollowedByValidNeedlesLeavesVolumeReadOnly) {
  WriteNeedles(10);
  uint64_t size = fs::file_size(Dat());
  fs::remove(Idx());
  fs::remove_all(dir_.path() + "/1.ldb");
  // Damage the body size of needle 3 (not a torn tail: valid needles follow).
  uint64_t off = kSuperBlockSize;
  for (int k = 1; k < 3; ++k) {
    Needle n;
    n.key = NeedleKey(k);
    n.data = Data(k);
    off += EncodeNeedle(n)->size();
  }
  FlipByte(Dat(), off + 13);
  auto v = Reopen();
  EXPECT_TRUE(v->read_only());
  EXPECT_NE(v->Stats().read_only_reason.find("damaged record"), std::string::npos);
  EXPECT_EQ(fs::file_size(Dat()), size);  // nothing was cut
  ExpectAllReadable(v.get(), 2);
}

TEST_P(RecoveryTest, CorruptSuperBlockRefusesToOpen) {
  WriteNeedles(1);
  FlipByte(Dat(), 5);
  EXPECT_TRUE(Volume::Open(Options(), false).status().IsCorruption());
}

}  // namespace
}  // namespace needlefs
