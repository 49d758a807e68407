// DirCache (src/client/dir_cache.h) against a real `needlefs meta`: lookups
// answered from listings must agree with meta, follow this client's own
// changes, drop what others change, expire, and check search permission.
#include "client/dir_cache.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "integration/meta_fixture.h"

namespace needlefs::integration {
namespace {

using namespace std::chrono_literals;

class DirCacheTest : public MetaFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MetaFixture::SetUp());
    auto d = client_->Mkdir(root_, kRootInode, "d", 0755);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    dir_ = d->ino;
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(client_->Create(root_, dir_, "f" + std::to_string(i), 0644, true).ok());
    }
  }

  /// A second client, standing for another mount.
  std::unique_ptr<MetaClient> Other() {
    auto c = MetaClient::Create(addr_, 10'000);
    EXPECT_TRUE(c.ok());
    return std::move(c).value();
  }

  static int Errno(const StatusOr<InodeAttr>& r) { return r.status().posix_errno(); }

  InodeId dir_;
};

TEST_F(DirCacheTest, ListsAfterTwoMissesAndAnswersLikeMeta) {
  DirCache cache(client_.get());
  for (int i = 0; i < 20; ++i) {
    const std::string name = "f" + std::to_string(i);
    auto c = cache.Lookup(root_, dir_, name);
    auto m = client_->Lookup(root_, dir_, name);
    ASSERT_TRUE(c.ok() && m.ok()) << name;
    EXPECT_EQ(c->ino, m->ino);
    EXPECT_EQ(c->mode, m->mode);
    EXPECT_EQ(c->mtime_ns, m->mtime_ns);
  }
  EXPECT_EQ(cache.entries(), 20u) << "the directory was listed";
  EXPECT_EQ(Errno(cache.Lookup(root_, dir_, "absent")), ENOENT);
  // "." and ".." are meta's.
  auto dot = cache.Lookup(root_, dir_, "..");
  ASSERT_TRUE(dot.ok());
  EXPECT_EQ(dot->ino, kRootInode);
}

TEST_F(DirCacheTest, FollowsThisClientsOwnChanges) {
  DirCache cache(client_.get());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f1").ok());
  ASSERT_EQ(cache.entries(), 20u);
  auto n = client_->Create(root_, dir_, "new", 0600, true);
  ASSERT_TRUE(n.ok());
  cache.Added(dir_, "new", *n);
  auto c = cache.Lookup(root_, dir_, "new");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ino, n->ino);
  ASSERT_TRUE(client_->Unlink(root_, dir_, "f3").ok());
  cache.Removed(dir_, "f3");
  EXPECT_EQ(Errno(cache.Lookup(root_, dir_, "f3")), ENOENT);
  ASSERT_TRUE(client_->Rename(root_, dir_, "f4", dir_, "g4").ok());
  cache.Renamed(dir_, "f4", dir_, "g4", false);
  EXPECT_EQ(Errno(cache.Lookup(root_, dir_, "f4")), ENOENT);
  auto g4 = cache.Lookup(root_, dir_, "g4");
  ASSERT_TRUE(g4.ok());
  EXPECT_EQ(g4->ino, client_->Lookup(root_, dir_, "g4")->ino);
  // A directory this client made is known empty at once.
  auto sub = client_->Mkdir(root_, dir_, "sub", 0755);
  ASSERT_TRUE(sub.ok());
  cache.Added(dir_, "sub", *sub);
  EXPECT_EQ(Errno(cache.Lookup(root_, sub->ino, "x")), ENOENT);
}

// A removed directory's listing leaves the LRU with it: eviction used to
// spin forever on its leftover id once the cache was over its cap.
TEST_F(DirCacheTest, RemovedDirectoryThenEvictionDoesNotHang) {
  DirCacheOptions o;
  o.max_entries = 25;
  DirCache cache(client_.get(), o);
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f1").ok());
  auto sub = client_->Mkdir(root_, dir_, "sub", 0755);
  ASSERT_TRUE(sub.ok());
  cache.Added(dir_, "sub", *sub);                     // lists "sub" as empty
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f2").ok());  // "sub" is now least recent
  ASSERT_TRUE(client_->Rmdir(root_, dir_, "sub").ok());
  cache.Removed(dir_, "sub");
  for (int i = 0; i < 10; ++i) {  // past the cap: the listing of dir_ is evicted
    const std::string name = "n" + std::to_string(i);
    auto n = client_->Create(root_, dir_, name, 0644, true);
    ASSERT_TRUE(n.ok());
    cache.Added(dir_, name, *n);
  }
  EXPECT_LE(cache.entries(), 25u);
  EXPECT_TRUE(cache.Lookup(root_, dir_, "n9").ok());
}

// rename(2) between two names of one inode changes nothing.
TEST_F(DirCacheTest, RenameBetweenHardLinksKeepsBothNames) {
  DirCache cache(client_.get());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f1").ok());
  auto f0 = client_->Lookup(root_, dir_, "f0");
  ASSERT_TRUE(f0.ok());
  auto l = client_->Link(root_, f0->ino, dir_, "hard");
  ASSERT_TRUE(l.ok());
  cache.Added(dir_, "hard", *l);
  ASSERT_TRUE(client_->Rename(root_, dir_, "f0", dir_, "hard").ok());
  cache.Renamed(dir_, "f0", dir_, "hard", false);
  EXPECT_TRUE(client_->Lookup(root_, dir_, "f0").ok()) << "meta keeps both names";
  EXPECT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  EXPECT_TRUE(cache.Lookup(root_, dir_, "hard").ok());
}

TEST_F(DirCacheTest, OthersChangesShowAfterInvalidationOrExpiry) {
  DirCacheOptions o;
  o.ttl_ns = 300'000'000;  // 300 ms
  DirCache cache(client_.get(), o);
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f1").ok());
  auto other = Other();
  ASSERT_TRUE(other->Create(root_, dir_, "theirs", 0644, true).ok());
  // The change stream tells: the listing goes, and meta answers.
  cache.InvalidateDir(dir_);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_TRUE(cache.Lookup(root_, dir_, "theirs").ok());
  // Not listed again at once after a foreign change (a busy shared
  // directory would be relisted on every lookup).
  EXPECT_TRUE(cache.Lookup(root_, dir_, "f2").ok());
  EXPECT_EQ(cache.entries(), 0u);
  // Without a notice, a listing lives no longer than the TTL.
  std::this_thread::sleep_for(350ms);
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f5").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f6").ok());
  ASSERT_EQ(cache.entries(), 21u);  // with "theirs"
  ASSERT_TRUE(other->Unlink(root_, dir_, "f7").ok());
  EXPECT_TRUE(cache.Lookup(root_, dir_, "f7").ok()) << "stale within the TTL, as the kernel's";
  std::this_thread::sleep_for(350ms);
  EXPECT_EQ(Errno(cache.Lookup(root_, dir_, "f7")), ENOENT);
  // Changed attributes are fetched again.
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f8").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f9").ok());
  SetAttrRequest chmod;
  chmod.mode = 0600;
  auto f8 = other->SetAttr(root_, client_->Lookup(root_, dir_, "f8")->ino, chmod);
  ASSERT_TRUE(f8.ok());
  cache.InvalidateInode(f8->ino);
  EXPECT_EQ(cache.Lookup(root_, dir_, "f8")->mode, 0600u);
  cache.Clear();
  EXPECT_EQ(cache.entries(), 0u);
}

TEST_F(DirCacheTest, ChecksSearchPermissionForEachCaller) {
  SetAttrRequest chmod;
  chmod.mode = 0700;
  ASSERT_TRUE(client_->SetAttr(root_, dir_, chmod).ok());
  DirCache cache(client_.get());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f1").ok());
  ASSERT_EQ(cache.entries(), 20u);
  RequestContext user;
  user.uid = 1000;
  user.gid = 1000;
  EXPECT_EQ(Errno(cache.Lookup(user, dir_, "f0")), EACCES);
  EXPECT_EQ(Errno(cache.Lookup(user, dir_, "absent")), EACCES);
}

TEST_F(DirCacheTest, LargeDirectoriesAreNotListed) {
  DirCacheOptions o;
  o.max_dir_entries = 10;
  DirCache cache(client_.get(), o);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(cache.Lookup(root_, dir_, "f" + std::to_string(i)).ok());
  }
  EXPECT_EQ(Errno(cache.Lookup(root_, dir_, "absent")), ENOENT);
  EXPECT_EQ(cache.entries(), 0u);
}

TEST_F(DirCacheTest, MemoryCapEvictsWholeListings) {
  DirCacheOptions o;
  o.max_entries = 30;
  DirCache cache(client_.get(), o);
  auto d2 = client_->Mkdir(root_, kRootInode, "d2", 0755);
  ASSERT_TRUE(d2.ok());
  for (int i = 0; i < 15; ++i) {
    ASSERT_TRUE(client_->Create(root_, d2->ino, "e" + std::to_string(i), 0644, true).ok());
  }
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f0").ok());
  ASSERT_TRUE(cache.Lookup(root_, dir_, "f1").ok());
  ASSERT_EQ(cache.entries(), 20u);
  ASSERT_TRUE(cache.Lookup(root_, d2->ino, "e0").ok());
  ASSERT_TRUE(cache.Lookup(root_, d2->ino, "e1").ok());
  EXPECT_EQ(cache.entries(), 15u) << "the older listing was evicted";
  EXPECT_TRUE(cache.Lookup(root_, dir_, "f19").ok());
}

}  // namespace
}  // namespace needlefs::integration
