// Anti-entropy between two replicas of a volume held by two stores. The peer
// is the other store's real Volume read in process (the gRPC transport is
// covered by the master integration tests).
#include "objstore/anti_entropy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "objstore/internal/anti_entropy_wire.h"
#include "objstore/store.h"
#include "test_util.h"

namespace needlefs {
namespace {

constexpr VolumeId kVid{3};

/// The other replica, read in process; `before_read` runs inside ReadRecords
/// (to race a write or a compaction against the round), `corrupt_key` has
/// its record's last data byte flipped on the way.
class LocalPeer : public ReplicaPeer {
 public:
  explicit LocalPeer(Volume* v) : v_(v) {}
  const std::string& name() const override { return name_; }
  Status Digest(VolumeId, VolumeDigest* out) override { return v_->Digest(out); }
  Status ReadRecords(VolumeId, int revision, const std::vector<DigestEntry>& which,
                     std::vector<std::string>* out) override {
    if (before_read) before_read();
    out->clear();
    for (const auto& e : which) {
      std::string rec;
      NEEDLEFS_RETURN_IF_ERROR(v_->ReadRecordAt(e.key, e.offset_units, revision, &rec));
      if (corrupt_key && e.key.value == corrupt_key) rec[20] ^= 0x40;
      out->push_back(std::move(rec));
    }
    return Status::OK();
  }
  /// The peer pulls from `back` (the replica asking).
  Status RequestPull(VolumeId) override {
    ++pull_requests;
    if (!back) return Status::Unavailable("peer down");
    LocalPeer asker(back);
    return PullFromReplica(v_, &asker).status();
  }
  std::function<void()> before_read;
  uint64_t corrupt_key = 0;
  Volume* back = nullptr;
  int pull_requests = 0;

 private:
  Volume* v_;
  std::string name_ = "local-peer";
};

class AntiEntropyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      StoreOptions o;
      o.dir = dirs_[i].path();
      o.durability = Durability::kNone;
      stores_[i] = std::move(Store::Open(o)).value();
      ASSERT_TRUE(stores_[i]->AllocateVolume(kVid, "", *ReplicaPlacement::Parse("001"), 0).ok());
    }
    a_ = stores_[0]->GetVolume(kVid);
    b_ = stores_[1]->GetVolume(kVid);
  }
  static Needle Make(uint64_t key, const std::string& data) {
    Needle n;
    n.key = NeedleKey(key);
    n.cookie = Cookie(0x77);
    n.data = data;
    return n;
  }
  static void Put(Volume* v, uint64_t key, const std::string& data) {
    ASSERT_TRUE(v->Write(Make(key, data)).ok());
  }
  static std::string Get(Volume* v, uint64_t key) {
    auto n = v->Read(NeedleKey(key), Cookie(0x77));
    return n.ok() ? n->data : "<" + n.status().ToString() + ">";
  }
  /// Both directions, as two servers' rounds do.
  void SyncBoth() {
    LocalPeer pa(a_.get()), pb(b_.get());
    auto r1 = PullFromReplica(a_.get(), &pb);
    ASSERT_TRUE(r1.ok()) << r1.status().ToString();
    auto r2 = PullFromReplica(b_.get(), &pa);
    ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  }
  TempDir dirs_[2];
  std::unique_ptr<Store> stores_[2];
  std::shared_ptr<Volume> a_, b_;
};

TEST_F(AntiEntropyTest, MissingNeedlesArePulledBothWays) {
  for (int k = 1; k <= 100; ++k) {
    Put(a_.get(), k, "same-" + std::to_string(k));
    Put(b_.get(), k, "same-" + std::to_string(k));
  }
  Put(a_.get(), 200, "only on a");
  Put(b_.get(), 300, std::string(100'000, 'b'));
  LocalPeer pb(b_.get());
  auto r = PullFromReplica(a_.get(), &pb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->compared, 101u);
  EXPECT_EQ(r->needles, 1u) << "only the needle a lacks; equal content is left alone";
  EXPECT_EQ(r->tombstones, 0u);
  EXPECT_GT(r->bytes, 100'000u);
  SyncBoth();
  for (auto* v : {a_.get(), b_.get()}) {
    EXPECT_EQ(Get(v, 200), "only on a");
    EXPECT_EQ(Get(v, 300), std::string(100'000, 'b'));
    EXPECT_EQ(Get(v, 42), "same-42");
    EXPECT_EQ(v->Stats().needle_count, 102u);
  }
  // In sync now: another round pulls nothing.
  LocalPeer pa(a_.get());
  auto again = PullFromReplica(b_.get(), &pa);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->pulled(), 0u);
}

TEST_F(AntiEntropyTest, TheNewestRecordWinsForOverwritesAndDeletes) {
  for (int k = 1; k <= 3; ++k) {
    Put(a_.get(), k, "v1");
    Put(b_.get(), k, "v1");
  }
  Put(b_.get(), 1, "v2 on b");                               // an overwrite a missed
  ASSERT_TRUE(a_->Delete(NeedleKey(2), Cookie(0x77)).ok());  // a delete b missed
  Put(a_.get(), 3, "v2 on a");
  Put(b_.get(), 3, "v3 on b, later");  // both changed it: the later wins on both
  SyncBoth();
  for (auto* v : {a_.get(), b_.get()}) {
    EXPECT_EQ(Get(v, 1), "v2 on b");
    EXPECT_EQ(v->Read(NeedleKey(2), Cookie(0x77)).status().code(), StatusCode::kNotFound);
    EXPECT_EQ(Get(v, 3), "v3 on b, later");
  }
  // A tombstone for a key a replica never had is not copied.
  ASSERT_TRUE(b_->Write(Make(9, "x")).ok());
  ASSERT_TRUE(b_->Delete(NeedleKey(9), Cookie(0x77)).ok());
  const uint64_t before = a_->log_entries();
  LocalPeer pb(b_.get());
  ASSERT_TRUE(PullFromReplica(a_.get(), &pb).ok());
  EXPECT_EQ(a_->log_entries(), before);
}

TEST_F(AntiEntropyTest, AKeyWrittenDuringTheRoundIsNotUndone) {
  Put(b_.get(), 1, "old on b");
  Put(b_.get(), 2, "old on b");
  LocalPeer pb(b_.get());
  // A client writes key 1 here after the digests were compared: the older
  // record from b must not land on top of it.
  pb.before_read = [this] { Put(a_.get(), 1, "newest, on a"); };
  auto r = PullFromReplica(a_.get(), &pb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->changed_meanwhile, 1u);
  EXPECT_EQ(r->needles, 1u);
  EXPECT_EQ(Get(a_.get(), 1), "newest, on a");
  EXPECT_EQ(Get(a_.get(), 2), "old on b");
}

TEST_F(AntiEntropyTest, ACancelledRoundStopsBetweenBatchesKeepingWhatItPulled) {
  // Over 512 records: more than one batch.
  for (int k = 1; k <= 600; ++k) Put(b_.get(), k, "r" + std::to_string(k));
  LocalPeer pb(b_.get());
  std::atomic<bool> cancel{false};
  pb.before_read = [&] { cancel = true; };  // cancelled while the first batch is read
  auto r = PullFromReplica(a_.get(), &pb, &cancel);
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().ToString();
  EXPECT_EQ(a_->Stats().needle_count, 512u) << "the first batch is stored, the rest waits";
}

TEST_F(AntiEntropyTest, ACorruptRecordIsSkippedAndCounted) {
  for (int k = 1; k <= 5; ++k) Put(b_.get(), k, "data-" + std::to_string(k));
  LocalPeer pb(b_.get());
  pb.corrupt_key = 3;
  auto r = PullFromReplica(a_.get(), &pb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->errors, 1u);
  EXPECT_EQ(r->needles, 4u);
  EXPECT_EQ(a_->Read(NeedleKey(3), Cookie(0x77)).status().code(), StatusCode::kNotFound)
      << "nothing corrupt is stored";
  EXPECT_EQ(Get(a_.get(), 4), "data-4");
}

TEST_F(AntiEntropyTest, ACompactionDuringTheRoundAbortsItCleanly) {
  for (int k = 1; k <= 20; ++k) Put(b_.get(), k, "data");
  ASSERT_TRUE(b_->Delete(NeedleKey(1), Cookie(0x77)).ok());
  LocalPeer pb(b_.get());
  pb.before_read = [this] { ASSERT_TRUE(b_->Compact().ok()); };
  auto r = PullFromReplica(a_.get(), &pb);
  EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status().ToString();
  EXPECT_EQ(a_->Stats().needle_count, 0u);
  pb.before_read = nullptr;  // the next round works on the new files
  r = PullFromReplica(a_.get(), &pb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->needles, 19u);
}

TEST_F(AntiEntropyTest, SyncVolumePullsFromEveryReplicaTheFinderNames) {
  Put(b_.get(), 5, "from b");
  AntiEntropyOptions o;
  o.interval_ms = 0;
  AntiEntropy ae(
      stores_[0].get(),
      [this](VolumeId id) -> StatusOr<std::vector<std::unique_ptr<ReplicaPeer>>> {
        EXPECT_EQ(id, kVid);
        std::vector<std::unique_ptr<ReplicaPeer>> peers;
        peers.push_back(std::make_unique<LocalPeer>(b_.get()));
        return peers;
      },
      o);
  auto r = ae.SyncVolume(VolumeId(0));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->volumes, 1u);
  EXPECT_EQ(r->needles, 1u);
  EXPECT_EQ(Get(a_.get(), 5), "from b");
  EXPECT_EQ(ae.SyncVolume(VolumeId(99)).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(a_->SetReadOnly(true).ok());
  EXPECT_EQ(ae.SyncVolume(kVid).status().code(), StatusCode::kFailedPrecondition);
}

// A replicated write that failed on a replica reports the volume: the
// server asks the other replica to pull within about a second, and retries
// while that replica is away.
TEST_F(AntiEntropyTest, AVolumeReportedForRepairIsPulledByTheOtherReplica) {
  Put(a_.get(), 5, "reached a only");
  bool reachable = false;
  std::mutex mu;
  AntiEntropyOptions o;
  o.interval_ms = 0;  // no periodic rounds: only the report explains a repair
  AntiEntropy ae(
      stores_[0].get(),
      [&](VolumeId) -> StatusOr<std::vector<std::unique_ptr<ReplicaPeer>>> {
        std::lock_guard<std::mutex> l(mu);
        auto peer = std::make_unique<LocalPeer>(b_.get());
        if (reachable) peer->back = a_.get();
        std::vector<std::unique_ptr<ReplicaPeer>> peers;
        peers.push_back(std::move(peer));
        return peers;
      },
      o);
  ae.Start();
  ae.ReportForRepair(kVid);
  ASSERT_EQ(ae.NeedingRepair().size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(ae.NeedingRepair().size(), 1u) << "the replica is away: still reported";
  {
    std::lock_guard<std::mutex> l(mu);
    reachable = true;
  }
  for (int i = 0; i < 60 && !ae.NeedingRepair().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(ae.NeedingRepair().empty());
  EXPECT_EQ(Get(b_.get(), 5), "reached a only");
  ae.Stop();
}

// Records from a replica (AppendRecords) are checked like any input: a
// "tombstone" carrying data would desynchronize index and data file.
TEST_F(AntiEntropyTest, AppendRecordsRefusesAForgedTombstoneAndKeepsTheVolumeSound) {
  Needle n = Make(8, "payload");
  n.flags = kFlagDeleted;
  n.append_at_ns = 1;
  auto forged = EncodeNeedle(n);
  ASSERT_TRUE(forged.ok());
  Put(b_.get(), 1, "fine");
  std::string good;
  ASSERT_TRUE(
      b_->ReadRecordAt(NeedleKey(1), 2, 0, &good).ok());  // first record after the superblock
  EXPECT_TRUE(a_->AppendRecords({good, *forged}).IsCorruption());
  EXPECT_EQ(Get(a_.get(), 1), "fine") << "the records before the bad one are stored";
  EXPECT_EQ(a_->log_entries(), 1u);
  VolumeDigest d;
  EXPECT_TRUE(a_->Digest(&d).ok());
}

TEST(DigestWireTest, EntriesRoundTripAndDisorderIsRefused) {
  std::vector<DigestEntry> in(3);
  for (int i = 0; i < 3; ++i) {
    in[i].key = NeedleKey(10 + i);
    in[i].offset_units = 100u * i;
    in[i].size = i == 1 ? 0xFFFFFFFFu : 4096;
    in[i].data_crc = 0xabcdef00u + i;
    in[i].append_at_ns = 1'700'000'000'000'000'000ull + i;
  }
  std::string wire;
  EncodeDigestEntries(in.data(), in.size(), &wire);
  ASSERT_EQ(wire.size(), 3 * kDigestEntryWireSize);
  std::vector<DigestEntry> out;
  ASSERT_TRUE(DecodeDigestEntries(wire, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[1].tombstone());
  EXPECT_EQ(out[2].append_at_ns, in[2].append_at_ns);
  EXPECT_EQ(out[2].data_crc, in[2].data_crc);
  EXPECT_EQ(out[0].offset_units, 0u);
  EXPECT_TRUE(DecodeDigestEntries(wire, &out).IsCorruption()) << "keys again: not ascending";
  out.clear();
  EXPECT_TRUE(DecodeDigestEntries(wire.substr(0, 30), &out).IsCorruption());
}

}  // namespace
}  // namespace needlefs
