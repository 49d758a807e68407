// Copying a volume between stores: ReadTail on the source, VolumeCopier on
// the target (the gRPC transport between them is exercised by the master
// integration tests).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "objstore/store.h"
#include "objstore/volume_copier.h"
#include "test_util.h"

namespace needlefs {
namespace {

class VolumeCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.dir = src_dir_.path();
    o.durability = Durability::kNone;
    src_ = std::move(Store::Open(o)).value();
    o.dir = dst_dir_.path();
    o.max_volumes = 2;
    dst_ = std::move(Store::Open(o)).value();
    auto rp = ReplicaPlacement::Parse("001");
    ASSERT_TRUE(src_->AllocateVolume(kVid, "", *rp, 0).ok());
  }
  static Needle Make(uint64_t key, const std::string& data) {
    Needle n;
    n.key = NeedleKey(key);
    n.cookie = Cookie(0x42);
    n.data = data;
    return n;
  }
  /// Reads the source in small batches so copies take several rounds.
  TailFetcher Fetcher(int* calls = nullptr) {
    return [this, calls](uint64_t from, int revision, TailBatch* out) {
      if (calls) ++*calls;
      auto v = src_->GetVolume(kVid);
      if (!v) return Status::NotFound("no volume");
      return v->ReadTail(from, revision, 4096, out);
    };
  }
  static constexpr VolumeId kVid{7};
  TempDir src_dir_, dst_dir_;
  std::unique_ptr<Store> src_, dst_;
};

TEST_F(VolumeCopyTest, TwoStepCopyHasEveryNeedleDeleteAndOverwrite) {
  auto v = src_->GetVolume(kVid);
  for (int i = 1; i <= 600; ++i) ASSERT_TRUE(v->Write(Make(i, "v1-" + std::to_string(i))).ok());
  ASSERT_TRUE(v->Delete(NeedleKey(5), Cookie(0x42)).ok());
  ASSERT_TRUE(v->Write(Make(6, "overwritten")).ok());

  VolumeCopier copier(dst_.get());
  int calls = 0;
  auto bulk = copier.Copy(kVid, "", Fetcher(&calls), /*final=*/false);
  ASSERT_TRUE(bulk.ok()) << bulk.status().ToString();
  EXPECT_FALSE(bulk->imported);
  EXPECT_EQ(dst_->GetVolume(kVid), nullptr) << "not served before the final step";
  EXPECT_GT(calls, 3) << "4 KiB batches: several rounds";
  // Writes made between the two steps reach the copy in the final one.
  ASSERT_TRUE(v->Write(Make(601, "late")).ok());
  ASSERT_TRUE(v->Delete(NeedleKey(7), Cookie(0x42)).ok());
  auto fin = copier.Copy(kVid, "", Fetcher(), /*final=*/true);
  ASSERT_TRUE(fin.ok()) << fin.status().ToString();
  EXPECT_TRUE(fin->imported);
  EXPECT_EQ(fin->behind, 0u);
  EXPECT_EQ(fin->entries, v->log_entries());

  auto c = dst_->GetVolume(kVid);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->replica_placement().ToString(), "001");
  EXPECT_EQ(c->Stats().needle_count, v->Stats().needle_count);
  EXPECT_EQ(c->Stats().data_bytes, v->Stats().data_bytes) << "the same records at the same offsets";
  for (int i = 1; i <= 601; ++i) {
    auto a = v->Read(NeedleKey(i), Cookie(0x42));
    auto b = c->Read(NeedleKey(i), Cookie(0x42));
    ASSERT_EQ(a.ok(), b.ok()) << i;
    if (a.ok()) {
      EXPECT_EQ(a->data, b->data) << i;
      EXPECT_EQ(a->append_at_ns, b->append_at_ns) << "the record is copied as it is";
    }
  }
  EXPECT_EQ(c->Read(NeedleKey(5), Cookie(0x42)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(c->Read(NeedleKey(6), Cookie(0x42))->data, "overwritten");
  // The copy takes writes and survives a reopen of its store.
  ASSERT_TRUE(c->Write(Make(500, "on the copy")).ok());
  c.reset();
  dst_.reset();
  StoreOptions o;
  o.dir = dst_dir_.path();
  dst_ = std::move(Store::Open(o)).value();
  ASSERT_NE(dst_->GetVolume(kVid), nullptr);
  EXPECT_EQ(dst_->GetVolume(kVid)->Read(NeedleKey(500), Cookie(0x42))->data, "on the copy");
  // A second copy of a volume the store serves is refused (a new copier: the
  // first one borrowed the store that was just closed).
  VolumeCopier again(dst_.get());
  EXPECT_EQ(again.Copy(kVid, "", Fetcher(), true).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(VolumeCopyTest, WritesDuringTheCopyAndACompactionOfTheSource) {
  auto v = src_->GetVolume(kVid);
  for (int i = 1; i <= 300; ++i) ASSERT_TRUE(v->Write(Make(i, std::string(500, 'a'))).ok());
  for (int i = 1; i <= 100; ++i) ASSERT_TRUE(v->Delete(NeedleKey(i), Cookie(0x42)).ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 1000; !stop && i < 3000; ++i) {
      ASSERT_TRUE(v->Write(Make(i, "w" + std::to_string(i))).ok());
    }
  });
  VolumeCopier copier(dst_.get());
  bool compacted = false;
  int calls = 0;
  // The source is compacted in the middle: the copy starts over on its own.
  TailFetcher fetch = [&](uint64_t from, int revision, TailBatch* out) {
    if (++calls == 3 && !compacted) {
      compacted = true;
      EXPECT_TRUE(v->Compact().ok());
    }
    return v->ReadTail(from, revision, 4096, out);
  };
  auto bulk = copier.Copy(kVid, "", fetch, false);
  stop = true;
  writer.join();
  ASSERT_TRUE(bulk.ok()) << bulk.status().ToString();
  EXPECT_TRUE(compacted);
  auto fin = copier.Copy(kVid, "", fetch, true);
  ASSERT_TRUE(fin.ok()) << fin.status().ToString();
  auto c = dst_->GetVolume(kVid);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Stats().needle_count, v->Stats().needle_count);
  EXPECT_EQ(c->Stats().garbage_bytes, v->Stats().garbage_bytes);
  for (int i = 1; i < 3000; ++i) {
    EXPECT_EQ(v->Read(NeedleKey(i), Cookie(0x42)).ok(), c->Read(NeedleKey(i), Cookie(0x42)).ok())
        << i;
  }
}

TEST_F(VolumeCopyTest, BadInputLeavesNothingBehind) {
  auto v = src_->GetVolume(kVid);
  ASSERT_TRUE(v->Write(Make(1, "one")).ok());
  VolumeCopier copier(dst_.get());
  // A corrupted record is refused and the staging copy is dropped.
  TailFetcher corrupt = [&](uint64_t from, int revision, TailBatch* out) {
    Status s = v->ReadTail(from, revision, 4096, out);
    if (s.ok() && !out->records.empty()) out->records[0][20] ^= 0x5a;
    return s;
  };
  auto r = copier.Copy(kVid, "", corrupt, true);
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  EXPECT_EQ(dst_->GetVolume(kVid), nullptr);
  EXPECT_TRUE(std::filesystem::is_empty(dst_dir_.path() + "/.incoming"));
  // A source that fails is reported as it failed.
  TailFetcher down = [](uint64_t, int, TailBatch*) { return Status::Unavailable("source down"); };
  EXPECT_EQ(copier.Copy(kVid, "", down, true).status().code(), StatusCode::kUnavailable);
  // Entries past the end are an error of the caller.
  TailBatch b;
  EXPECT_EQ(v->ReadTail(99, -1, 4096, &b).code(), StatusCode::kOutOfRange);
  // No free slot on the target: refused before copying anything.
  auto rp = ReplicaPlacement::Parse("000");
  ASSERT_TRUE(dst_->AllocateVolume(VolumeId(1), "", *rp, 0).ok());
  ASSERT_TRUE(dst_->AllocateVolume(VolumeId(2), "", *rp, 0).ok());
  EXPECT_EQ(copier.Copy(kVid, "", Fetcher(), true).status().code(), StatusCode::kResourceExhausted);
  // Then the good copy works.
  ASSERT_TRUE(dst_->DeleteVolume(VolumeId(2)).ok());
  ASSERT_TRUE(copier.Copy(kVid, "", Fetcher(), true).ok());
  EXPECT_EQ(dst_->GetVolume(kVid)->Read(NeedleKey(1), Cookie(0x42))->data, "one");
}

}  // namespace
}  // namespace needlefs
