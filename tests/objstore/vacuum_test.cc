// Compaction (vacuum) while reads and writes go on.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "objstore/volume.h"
#include "test_util.h"

namespace needlefs {
namespace {

namespace fs = std::filesystem;

class VacuumTest : public ::testing::TestWithParam<IndexMode> {
 protected:
  VolumeOptions Options() {
    VolumeOptions o;
    o.dir = dir_.path();
    o.id = VolumeId(2);
    o.index_mode = GetParam();
    o.durability = Durability::kNone;
    return o;
  }
  static Needle Make(uint64_t key, const std::string& data) {
    Needle n;
    n.key = NeedleKey(key);
    n.cookie = Cookie(0x77);
    n.data = data;
    return n;
  }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(IndexModes, VacuumTest,
                         ::testing::Values(IndexMode::kMemory, IndexMode::kRocksDb),
                         [](const auto& info) {
                           return info.param == IndexMode::kMemory ? "Memory" : "RocksDb";
                         });

TEST_P(VacuumTest, ReclaimsSpaceAndKeepsLiveNeedles) {
  auto v = Volume::Open(Options(), true);
  ASSERT_TRUE(v.ok());
  for (uint64_t k = 1; k <= 400; ++k)
    ASSERT_TRUE((*v)->Write(Make(k, std::string(4000, 'a' + k % 26))).ok());
  for (uint64_t k = 1; k <= 400; ++k) {
    if (k % 4 != 0) {
      ASSERT_TRUE((*v)->Delete(NeedleKey(k), Cookie(0x77)).ok());
    }
  }
  uint64_t before = fs::file_size(dir_.path() + "/2.dat");
  EXPECT_GT((*v)->Stats().garbage_ratio(), 0.7);
  uint64_t last_done = 0, last_total = 0;
  ASSERT_TRUE((*v)->Compact([&](uint64_t d, uint64_t t) {
                    last_done = d;
                    last_total = t;
                  })
                  .ok());
  EXPECT_EQ(last_done, 100u);
  EXPECT_EQ(last_total, 100u);
  uint64_t after = fs::file_size(dir_.path() + "/2.dat");
  EXPECT_LT(after, before / 3);
  VolumeStats st = (*v)->Stats();
  EXPECT_EQ(st.compaction_revision, 1);
  EXPECT_EQ(st.needle_count, 100u);
  EXPECT_EQ(st.garbage_bytes, 0u);
  for (uint64_t k = 1; k <= 400; ++k) {
    auto r = (*v)->Read(NeedleKey(k), Cookie(0x77));
    if (k % 4 == 0) {
      ASSERT_TRUE(r.ok()) << k;
      EXPECT_EQ(r->data, std::string(4000, 'a' + k % 26));
    } else {
      EXPECT_TRUE(r.status().IsNotFound());
    }
  }
  EXPECT_FALSE(fs::exists(dir_.path() + "/2.cpd"));
  // And everything survives a reopen.
  v->reset();
  auto again = Volume::Open(Options(), false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Stats().needle_count, 100u);
  EXPECT_EQ((*again)->Read(NeedleKey(4), Cookie(0x77))->data, std::string(4000, 'a' + 4));
}

TEST_P(VacuumTest, ConcurrentReadersAndWritersLoseNothing) {
  auto vo = Volume::Open(Options(), true);
  ASSERT_TRUE(vo.ok());
  Volume* v = vo->get();
  std::mutex mu;
  std::map<uint64_t, std::string> expect;  // key -> data, "" = deleted
  for (uint64_t k = 1; k <= 2000; ++k) {
    std::string d = "initial-" + std::to_string(k) + std::string(k % 500, 'x');
    ASSERT_TRUE(v->Write(Make(k, d)).ok());
    expect[k] = d;
  }
  for (uint64_t k = 1; k <= 2000; k += 2) {
    ASSERT_TRUE(v->Delete(NeedleKey(k), Cookie(0x77)).ok());
    expect[k] = "";
  }

  std::atomic<bool> stop{false};
  std::atomic<int> read_errors{0}, write_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {  // writers: new keys, overwrites, deletes
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; !stop; ++i) {
        uint64_t key = 10000 + static_cast<uint64_t>(t) * 1000000 + i;
        std::string d = "during-" + std::to_string(key);
        if (!v->Write(Make(key, d)).ok()) ++write_errors;
        uint64_t old = (i * 7 + static_cast<uint64_t>(t)) % 2000 + 1;
        std::lock_guard<std::mutex> l(mu);
        if (i % 3 == 0 && !expect[old].empty()) {
          if (!v->Delete(NeedleKey(old), Cookie(0x77)).ok()) ++write_errors;
          expect[old] = "";
        } else {
          std::string nd = "over-" + std::to_string(i) + "-" + std::to_string(old);
          if (!v->Write(Make(old, nd)).ok()) ++write_errors;
          expect[old] = nd;
        }
        expect[key] = d;
      }
    });
  }
  threads.emplace_back([&] {  // reader of keys nobody touches concurrently
    while (!stop) {
      for (uint64_t k = 2; k <= 2000 && !stop; k += 50) {
        auto r = v->Read(NeedleKey(k), Cookie(0x77));
        if (!r.ok() && !r.status().IsNotFound()) ++read_errors;
      }
    }
  });
  for (int round = 0; round < 3; ++round) ASSERT_TRUE(v->Compact().ok());
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(write_errors.load(), 0);
  EXPECT_EQ(read_errors.load(), 0);

  auto check = [&](Volume* vol) {
    for (const auto& [k, d] : expect) {
      auto r = vol->Read(NeedleKey(k), Cookie(0x77));
      if (d.empty()) {
        EXPECT_TRUE(r.status().IsNotFound()) << "deleted key " << k << " came back";
      } else {
        ASSERT_TRUE(r.ok()) << "key " << k << ": " << r.status().ToString();
        EXPECT_EQ(r->data, d) << k;
      }
    }
  };
  check(v);
  EXPECT_EQ(v->Stats().compaction_revision, 3);
  vo->reset();
  auto again = Volume::Open(Options(), false);
  ASSERT_TRUE(again.ok());
  check(again->get());
}

TEST_P(VacuumTest, CrashBetweenSwapStepsRecovers) {
  // Simulate a crash after the commit point (new .dat in place) but before
  // the new index was renamed: .idx missing, .cpx left over.
  {
    auto v = Volume::Open(Options(), true);
    ASSERT_TRUE(v.ok());
    for (uint64_t k = 1; k <= 50; ++k)
      ASSERT_TRUE((*v)->Write(Make(k, "v" + std::to_string(k))).ok());
    ASSERT_TRUE((*v)->Delete(NeedleKey(3), Cookie(0x77)).ok());
    ASSERT_TRUE((*v)->Compact().ok());
  }
  fs::rename(dir_.path() + "/2.idx", dir_.path() + "/2.cpx");
  auto v = Volume::Open(Options(), false);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(fs::exists(dir_.path() + "/2.cpx"));
  for (uint64_t k = 1; k <= 50; ++k) {
    auto r = (*v)->Read(NeedleKey(k), Cookie(0x77));
    if (k == 3) {
      EXPECT_TRUE(r.status().IsNotFound());
    } else {
      ASSERT_TRUE(r.ok()) << k;
      EXPECT_EQ(r->data, "v" + std::to_string(k));
    }
  }
}

}  // namespace
}  // namespace needlefs
