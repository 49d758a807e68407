// One typed suite that every NeedleMap engine must pass.
#include "objstore/needle_map.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "test_util.h"

namespace needlefs {
namespace {

struct MemoryEngine {
  static std::unique_ptr<NeedleMap> Make(const std::string&) { return NewMemoryNeedleMap(); }
};
struct RocksDbEngine {
  static std::unique_ptr<NeedleMap> Make(const std::string& dir) {
    auto m = OpenRocksDbNeedleMap(dir + "/idx.ldb", 0);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return std::move(m).value();
  }
};

template <typename Engine>
class NeedleMapTest : public ::testing::Test {
 protected:
  TempDir dir_;
};
using Engines = ::testing::Types<MemoryEngine, RocksDbEngine>;
TYPED_TEST_SUITE(NeedleMapTest, Engines);

TYPED_TEST(NeedleMapTest, PutGetDelete) {
  auto m = TypeParam::Make(this->dir_.path());
  EXPECT_FALSE(m->Get(NeedleKey(1)));
  ASSERT_TRUE(m->Put(NeedleKey(1), {2, 100}, 1).ok());
  ASSERT_TRUE(m->Put(NeedleKey(5), {20, 7}, 2).ok());
  EXPECT_EQ(m->Get(NeedleKey(1))->size, 100u);
  EXPECT_EQ(m->Count(), 2u);
  ASSERT_TRUE(m->Put(NeedleKey(1), {40, 9}, 3).ok());  // overwrite
  EXPECT_EQ(m->Get(NeedleKey(1))->offset_units, 40u);
  EXPECT_EQ(m->Count(), 2u);
  ASSERT_TRUE(m->Delete(NeedleKey(1), 4).ok());
  EXPECT_FALSE(m->Get(NeedleKey(1)));
  EXPECT_EQ(m->Count(), 1u);
  ASSERT_TRUE(m->Delete(NeedleKey(77), 5).ok());       // absent: not an error
  ASSERT_TRUE(m->Put(NeedleKey(1), {50, 1}, 6).ok());  // back after delete
  EXPECT_EQ(m->Get(NeedleKey(1))->offset_units, 50u);
}

TYPED_TEST(NeedleMapTest, MatchesReferenceUnderRandomOps) {
  auto m = TypeParam::Make(this->dir_.path());
  std::map<uint64_t, uint32_t> ref;
  std::mt19937_64 rng(42);
  uint64_t applied = 0;
  uint64_t next_key = 1;
  for (int i = 0; i < 20000; ++i) {
    int op = static_cast<int>(rng() % 10);
    uint64_t key;
    if (op < 6) {
      key = next_key++;  // mostly increasing keys, as assigned
    } else {
      key = rng() % (next_key + 10) + 1;  // out of order or existing
    }
    if (op == 9) {
      ASSERT_TRUE(m->Delete(NeedleKey(key), ++applied).ok());
      ref.erase(key);
    } else {
      uint32_t off = static_cast<uint32_t>(rng());
      ASSERT_TRUE(m->Put(NeedleKey(key), {off, 1}, ++applied).ok());
      ref[key] = off;
    }
  }
  EXPECT_EQ(m->Count(), ref.size());
  for (const auto& [k, off] : ref) {
    auto loc = m->Get(NeedleKey(k));
    ASSERT_TRUE(loc) << k;
    EXPECT_EQ(loc->offset_units, off);
  }
  // ForEach visits exactly the live keys, in key order.
  auto it = ref.begin();
  ASSERT_TRUE(m->ForEach([&](NeedleKey k, NeedleLocation loc) {
                 EXPECT_NE(it, ref.end());
                 EXPECT_EQ(k.value, it->first);
                 EXPECT_EQ(loc.offset_units, it->second);
                 ++it;
                 return true;
               }).ok());
  EXPECT_EQ(it, ref.end());
}

TEST(MemoryNeedleMapTest, SixteenBytesPerNeedle) {
  auto m = NewMemoryNeedleMap();
  const uint64_t n = 1'000'000;
  for (uint64_t k = 1; k <= n; ++k)
    ASSERT_TRUE(m->Put(NeedleKey(k), {static_cast<uint32_t>(k), 1}, k).ok());
  double per = static_cast<double>(m->MemoryBytes()) / static_cast<double>(n);
  EXPECT_LE(per, 16.5) << per << " bytes per needle";
}

TEST(RocksDbNeedleMapTest, PersistsAppliedCountAcrossReopen) {
  TempDir dir;
  {
    auto m = OpenRocksDbNeedleMap(dir.path() + "/m", 3);
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE((*m)->Put(NeedleKey(1), {2, 3}, 1).ok());
    ASSERT_TRUE((*m)->Put(NeedleKey(2), {4, 5}, 2).ok());
    ASSERT_TRUE((*m)->Flush().ok());
  }
  auto m = OpenRocksDbNeedleMap(dir.path() + "/m", 3);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->AppliedEntries(), 2u);
  EXPECT_EQ((*m)->Count(), 2u);
  // Another compaction revision: the map starts over.
  m = Status::Aborted("closed");  // one open per path per process
  m = OpenRocksDbNeedleMap(dir.path() + "/m", 4);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->AppliedEntries(), 0u);
  EXPECT_FALSE((*m)->Get(NeedleKey(1)));
}

}  // namespace
}  // namespace needlefs
