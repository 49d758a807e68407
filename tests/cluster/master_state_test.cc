#include "cluster/master_state.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace needlefs {
namespace {

class MasterStateTest : public ::testing::Test {
 protected:
  std::string path_ =
      ::testing::TempDir() + "/master_state_test." + std::to_string(::getpid()) + ".json";
  void TearDown() override { std::filesystem::remove(path_); }
};

TEST_F(MasterStateTest, KeysStayUniqueAcrossRestarts) {
  uint64_t last = 0;
  {
    auto st = MasterState::Open(NewFileStateStorage(path_), 100);
    ASSERT_TRUE(st.ok());
    for (int i = 0; i < 250; ++i) {
      auto k = (*st)->NextFileKeys(1);
      ASSERT_TRUE(k.ok());
      EXPECT_GT(*k, last);
      last = *k;
    }
    auto block = (*st)->NextFileKeys(1000);  // a batch larger than key_batch
    ASSERT_TRUE(block.ok());
    EXPECT_GT(*block, last);
    last = *block + 999;
  }
  // A crash loses the in-memory position: the next key is above all given.
  auto st = MasterState::Open(NewFileStateStorage(path_), 100);
  ASSERT_TRUE(st.ok());
  auto k = (*st)->NextFileKeys(1);
  ASSERT_TRUE(k.ok());
  EXPECT_GT(*k, last);
}

TEST_F(MasterStateTest, VolumeIdsGrowPastWhatTheTopologySaw) {
  {
    auto st = MasterState::Open(NewFileStateStorage(path_));
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(*(*st)->NextVolumeId(VolumeId(0)), VolumeId(1));
    EXPECT_EQ(*(*st)->NextVolumeId(VolumeId(10)), VolumeId(11));
    EXPECT_EQ(*(*st)->NextVolumeId(VolumeId(3)), VolumeId(12));
  }
  auto st = MasterState::Open(NewFileStateStorage(path_));
  EXPECT_EQ((*st)->max_volume_id(), VolumeId(12));
  EXPECT_EQ(*(*st)->NextVolumeId(VolumeId(0)), VolumeId(13));
}

TEST_F(MasterStateTest, KeysGrowPastWhatTheVolumeServersHold) {
  {
    auto st = MasterState::Open(NewFileStateStorage(path_), 100);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(*(*st)->NextFileKeys(1, 5000), 5001u)
        << "a lost state: keys start above the servers'";
    EXPECT_EQ(*(*st)->NextFileKeys(1, 10), 5002u) << "a smaller report changes nothing";
    EXPECT_EQ(*(*st)->NextFileKeys(3, 0), 5003u);
    // A client's PUT of key ffff...: no wrap to 0, no jump.
    EXPECT_EQ(*(*st)->NextFileKeys(1, ~uint64_t{0}), 5006u);
    EXPECT_EQ(*(*st)->NextFileKeys(1, kMaxTrustedFileKey), 5007u);
  }
  auto st = MasterState::Open(NewFileStateStorage(path_), 100);
  EXPECT_GT(*(*st)->NextFileKeys(1), 5007u) << "the raised position was saved before use";
}

TEST_F(MasterStateTest, TheClusterIdIsMadeOnceAndKept) {
  uint64_t id;
  {
    auto st = MasterState::Open(NewFileStateStorage(path_));
    ASSERT_TRUE(st.ok());
    id = (*st)->cluster_id();
    EXPECT_NE(id, 0u);
  }
  auto st = MasterState::Open(NewFileStateStorage(path_));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)->cluster_id(), id);
  std::filesystem::remove(path_);
  auto other = MasterState::Open(NewFileStateStorage(path_));
  EXPECT_NE((*other)->cluster_id(), id) << "a new cluster gets a new id";
}

TEST_F(MasterStateTest, CorruptStateIsRefused) {
  std::ofstream(path_) << "{not json";
  EXPECT_TRUE(MasterState::Open(NewFileStateStorage(path_)).status().IsCorruption());
}

class FailingStorage : public StateStorage {
 public:
  StatusOr<std::string> Load() override { return std::string(); }
  Status Save(const std::string&) override { return Status::IOError("save", EIO); }
};

TEST_F(MasterStateTest, NothingIsHandedOutWhenTheStateCannotBeSaved) {
  auto st = MasterState::Open(std::make_unique<FailingStorage>());
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE((*st)->NextFileKeys(1).ok());
  EXPECT_FALSE((*st)->NextVolumeId(VolumeId(0)).ok());
  EXPECT_EQ((*st)->max_volume_id(), VolumeId(0));
}

}  // namespace
}  // namespace needlefs
