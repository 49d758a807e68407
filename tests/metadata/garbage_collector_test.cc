#include "metadata/garbage_collector.h"

#include <gtest/gtest.h>

#include <set>

namespace needlefs {
namespace {

class GarbageCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewMemoryKvStore();
    ns_ = std::move(Namespace::Open(store_.get())).value();
    auto root = RequestContext::Root();
    for (int i = 0; i < 5; ++i) {
      auto f = ns_->Create(root, kRootInode, "f" + std::to_string(i), 0644, true);
      ASSERT_TRUE(
          ns_->AddChunks(f->ino, {{"1,0" + std::to_string(i) + "00000001", 0, 9, 0}}, 9).ok());
      ASSERT_TRUE(ns_->Unlink(root, kRootInode, "f" + std::to_string(i)).ok());
    }
  }
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<Namespace> ns_;
};

TEST_F(GarbageCollectorTest, DeletesEveryQueuedBlobThenEmptiesTheQueue) {
  std::set<std::string> deleted;
  GarbageCollector gc(ns_.get(), [&](const std::string& fid) {
    deleted.insert(fid);
    return Status::OK();
  });
  auto n = gc.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(deleted.size(), 5u);
  EXPECT_TRUE(ns_->PeekGarbage(10)->empty());
}

TEST_F(GarbageCollectorTest, FailedDeleteKeepsTheRestQueued) {
  int calls = 0;
  GarbageCollector gc(ns_.get(), [&](const std::string&) {
    return ++calls == 3 ? Status::Unavailable("volume server down") : Status::OK();
  });
  auto n = gc.RunOnce();
  EXPECT_EQ(n.status().code(), StatusCode::kUnavailable);
  // The two deleted before the failure left the queue; the failed one and
  // the rest are still there and go in the next pass.
  EXPECT_EQ(ns_->PeekGarbage(10)->size(), 3u);
  n = gc.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  EXPECT_TRUE(ns_->PeekGarbage(10)->empty());
}

}  // namespace
}  // namespace needlefs
