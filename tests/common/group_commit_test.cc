#include "common/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace needlefs {
namespace {

TEST(GroupCommitterTest, ConcurrentWritersShareSyncsAndWaitForThem) {
  std::atomic<uint64_t> issued{0};
  std::atomic<uint64_t> durable{0};  // highest seq covered by a finished sync
  GroupCommitter* gc_ptr = nullptr;
  GroupCommitter gc([&] {
    uint64_t target = issued.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow fsync
    durable = std::max(durable.load(), target);
    return Status::OK();
  });
  gc_ptr = &gc;
  std::mutex append_mu;
  std::atomic<int> early{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        uint64_t seq;
        {
          std::lock_guard<std::mutex> l(append_mu);
          seq = ++issued;
          gc_ptr->Issued(seq);
        }
        ASSERT_TRUE(gc_ptr->WaitDurable(seq).ok());
        if (durable.load() < seq) ++early;  // acknowledged before its sync
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(early.load(), 0);
  EXPECT_LT(gc.sync_count(), 800u / 4);  // 800 writes, far fewer syncs
  EXPECT_GT(gc.sync_count(), 0u);
}

TEST(GroupCommitterTest, FailedSyncIsStickyAndReported) {
  int calls = 0;
  GroupCommitter gc([&] {
    ++calls;
    return Status::IOError("fdatasync", EIO);
  });
  gc.Issued(1);
  EXPECT_FALSE(gc.WaitDurable(1).ok());
  gc.Issued(2);
  EXPECT_FALSE(gc.WaitDurable(2).ok());
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace needlefs
