#include "client/disk_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "test_util.h"

namespace needlefs {
namespace {

std::string Blob(size_t n, char c) { return std::string(n, c); }

size_t FilesIn(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

TEST(DiskCacheTest, PutThenGetAndKeptAcrossOpens) {
  TempDir dir;
  {
    auto c = DiskCache::Open(dir.path() + "/c", 1 << 20);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_FALSE((*c)->Get("3,01ab").has_value());
    (*c)->Put("3,01ab", "hello blob");
    EXPECT_TRUE((*c)->Contains("3,01ab"));
    EXPECT_EQ((*c)->Get("3,01ab"), "hello blob");
    EXPECT_EQ((*c)->bytes(), 4096u);  // one 4 KiB block
  }
  auto c = DiskCache::Open(dir.path() + "/c", 1 << 20);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->blobs(), 1u);
  EXPECT_EQ((*c)->Get("3,01ab"), "hello blob");
}

TEST(DiskCacheTest, EvictsTheLeastRecentlyUsedOverTheCap) {
  TempDir dir;
  auto c = DiskCache::Open(dir.path(), 4 * 4096);  // four blobs of a block each
  ASSERT_TRUE(c.ok());
  (*c)->Put("1,a", Blob(90, 'a'));
  (*c)->Put("1,b", Blob(90, 'b'));
  (*c)->Put("1,c", Blob(90, 'c'));
  (*c)->Put("1,d", Blob(90, 'd'));
  ASSERT_TRUE((*c)->Get("1,a").has_value());  // a is now the most recent
  (*c)->Put("1,e", Blob(90, 'e'));            // five blocks > four: b goes
  EXPECT_FALSE((*c)->Contains("1,b"));
  EXPECT_TRUE((*c)->Contains("1,a"));
  EXPECT_TRUE((*c)->Contains("1,e"));
  EXPECT_EQ((*c)->bytes(), 4u * 4096);
  EXPECT_EQ(FilesIn(dir.path()), (*c)->blobs());
  (*c)->Put("1,big", Blob(4093, 'x'));  // two blocks, over a quarter of the cap
  EXPECT_FALSE((*c)->Contains("1,big"));
  (*c)->Put("1,empty", "");
  EXPECT_FALSE((*c)->Contains("1,empty"));
  (*c)->Put("../evil", "x");  // not a file id: never a path outside the directory
  EXPECT_FALSE((*c)->Contains("../evil"));
}

TEST(DiskCacheTest, ADamagedOrTruncatedFileIsAMissAndRemoved) {
  TempDir dir;
  auto c = DiskCache::Open(dir.path(), 1 << 20);
  ASSERT_TRUE(c.ok());
  (*c)->Put("2,aa", "0123456789");
  (*c)->Put("2,bb", "abcdefghij");
  {
    std::fstream f(dir.path() + "/2,aa", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('X');
  }
  std::filesystem::resize_file(dir.path() + "/2,bb", 6);
  EXPECT_FALSE((*c)->Get("2,aa").has_value());
  EXPECT_FALSE((*c)->Get("2,bb").has_value());
  EXPECT_FALSE((*c)->Contains("2,aa"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/2,aa"));
  EXPECT_EQ((*c)->bytes(), 0u);
}

TEST(DiskCacheTest, OpenRemovesLeftoversAndEvictsOldestFirst) {
  TempDir dir;
  {
    auto c = DiskCache::Open(dir.path(), 1 << 20);
    ASSERT_TRUE(c.ok());
    (*c)->Put("5,old", Blob(200, 'o'));
    (*c)->Put("5,new", Blob(200, 'n'));
  }
  // Make the use order unambiguous whatever the clock's resolution.
  struct timespec times[2] = {{1'000'000, 0}, {1'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir.path() + "/5,old").c_str(), times, 0), 0);
  // A dead process's temporary file goes; a live one's (another mount
  // writing) stays.
  const std::string dead = dir.path() + "/.tmp-999999999-1";
  const std::string live = dir.path() + "/.tmp-" + std::to_string(::getpid()) + "-7";
  { std::ofstream(dead) << "torn"; }
  { std::ofstream(live) << "being written"; }
  auto c = DiskCache::Open(dir.path(), 4096);  // room for one blob
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_FALSE((*c)->Contains("5,old"));
  EXPECT_EQ((*c)->Get("5,new"), Blob(200, 'n'));
  EXPECT_FALSE(DiskCache::Open(dir.path(), 0).ok());
}

TEST(DiskCacheTest, ConcurrentPutsAndGetsStayConsistent) {
  TempDir dir;
  auto c = DiskCache::Open(dir.path(), 64 << 10);
  ASSERT_TRUE(c.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string fid = "7," + std::to_string(i % 50);
        const std::string want = Blob(1000 + i % 50, static_cast<char>('a' + i % 50 % 26));
        (*c)->Put(fid, want);
        auto got = (*c)->Get(fid);
        // Whoever stored it, a hit holds the same bytes (same id, same blob).
        if (got) {
          EXPECT_EQ(*got, want) << fid << " thread " << t;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE((*c)->bytes(), 64u << 10);  // 16 blobs of one block
  EXPECT_EQ(FilesIn(dir.path()), (*c)->blobs());
}

}  // namespace
}  // namespace needlefs
