#include "metadata/garbage_collector.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "metadata/internal/keys.h"
#include "namespace_test_util.h"

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
          ns_->AddChunks(f->ino, {{Fid(1, static_cast<uint64_t>(i) + 1), 0, 9, 0}}, 9).ok());
      ASSERT_TRUE(ns_->Unlink(root, kRootInode, "f" + std::to_string(i)).ok());
    }
  }
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<Namespace> ns_;
};

TEST_F(GarbageCollectorTest, DeletesEveryQueuedBlobThenEmptiesTheQueue) {
  std::set<FileId> deleted;
  GarbageCollector gc(ns_.get(), [&](const FileId& fid) {
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
  GarbageCollector gc(ns_.get(), [&](const FileId&) {
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

TEST_F(GarbageCollectorTest, AnEntryThatIsNotAFileIdIsDropped) {
  // Queued after the five blobs, as a bug or a bad disk would leave it: no
  // retry could delete a blob by that name, so it must not block the queue.
  ASSERT_TRUE(RunTransaction(*store_, [](KvTransaction& t) {
                return t.Put(meta_keys::Garbage(uint64_t{1} << 40), "not a file id");
              }).ok());
  std::vector<FileId> deleted;
  GarbageCollector gc(ns_.get(), [&](const FileId& fid) {
    deleted.push_back(fid);
    return Status::OK();
  });
  auto n = gc.RunOnce();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 6u);
  EXPECT_EQ(deleted.size(), 5u);
  EXPECT_TRUE(ns_->PeekGarbage(10)->empty());
}

}  // namespace
}  // namespace needlefs
