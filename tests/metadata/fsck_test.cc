// fsck finds what breaks the namespace's invariants and repairs it. The
// damage is made by writing KV keys directly, as a bug or a bad disk would.
#include "metadata/fsck.h"

#include <gtest/gtest.h>

#include "metadata/internal/keys.h"
#include "metadata/namespace.h"
#include "namespace_test_util.h"

namespace needlefs {
namespace {

class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewMemoryKvStore();
    auto ns = Namespace::Open(store_.get());
    ASSERT_TRUE(ns.ok());
    ns_ = std::move(ns).value();
    auto root = RequestContext::Root();
    dir_ = ns_->Mkdir(root, kRootInode, "dir", 0755)->ino;
    file_ = ns_->Create(root, dir_, "f", 0644, true)->ino;
    ASSERT_TRUE(ns_->Link(root, file_, kRootInode, "hard").ok());
    ASSERT_TRUE(ns_->AddChunks(file_, {{Fid(3, 1), 0, 100, 0}}, 100).ok());
    ASSERT_TRUE(ns_->SetXattr(root, file_, "user.k", "v", 0).ok());
  }
  void Put(const std::string& k, const std::string& v) {
    ASSERT_TRUE(RunTransaction(*store_, [&](KvTransaction& t) { return t.Put(k, v); }).ok());
  }
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<Namespace> ns_;
  InodeId dir_, file_;
};

TEST_F(FsckTest, HealthyTreeIsClean) {
  auto r = Fsck(*store_, false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clean()) << r->problems[0];
  EXPECT_EQ(r->inodes, 3u);
  EXPECT_EQ(r->entries, 3u);
  EXPECT_EQ(r->chunks, 1u);
}

TEST_F(FsckTest, FindsAndRepairsDamage) {
  // A dangling entry, a wrong nlink, an unreachable inode, and a garbage
  // entry naming a blob the file still uses.
  meta_keys::DentryValue ghost{InodeId(999999), FileType::kRegular, 77};
  Put(meta_keys::Dentry(dir_, "ghost"), ghost.Encode());
  Put(meta_keys::Cookie(dir_, 77), "ghost");
  {
    auto t = store_->Begin();
    auto rec = meta_keys::InodeRecord::Decode(**t->Get(meta_keys::Inode(file_)));
    rec->attr.nlink = 7;
    Put(meta_keys::Inode(file_), rec->Encode());
  }
  meta_keys::InodeRecord lost;
  lost.attr.type = FileType::kRegular;
  lost.attr.mode = 0600;
  lost.attr.nlink = 1;
  Put(meta_keys::Inode(InodeId(5000)), lost.Encode());
  Put(meta_keys::Garbage(1), Fid(3, 1).ToString());

  auto r = Fsck(*store_, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->problems.size(), 4u);
  for (const auto& p : r->problems) std::printf("fsck: %s\n", p.c_str());

  r = Fsck(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->repaired, 0u);
  r = Fsck(*store_, false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clean()) << r->problems[0];

  auto root = RequestContext::Root();
  EXPECT_EQ(ns_->GetAttr(file_)->nlink, 2u);
  EXPECT_EQ(ns_->Lookup(root, dir_, "ghost").status().posix_errno(), ENOENT);
  auto lf = ns_->Lookup(root, kRootInode, "lost+found");
  ASSERT_TRUE(lf.ok());
  EXPECT_EQ(ns_->Lookup(root, lf->ino, "#5000")->ino, InodeId(5000));
  EXPECT_TRUE(ns_->PeekGarbage(10)->empty());  // the live blob is safe
  EXPECT_EQ(ns_->ReadChunks(file_, 0, 100)->size(), 1u);
}

TEST_F(FsckTest, ReportsAChunkWhoseFileIdDoesNotParseAndDropsABadGarbageEntry) {
  // The chunk record's fixed part, then text that is no file id.
  std::string chunk = meta_keys::EncodeChunk(Chunk{Fid(3, 2), 0, 10, 0}).substr(0, 24) + "bogus";
  EXPECT_TRUE(meta_keys::DecodeChunk(chunk).status().IsCorruption());
  Put(meta_keys::ChunkKey(file_, 99), chunk);
  Put(meta_keys::Garbage(1), "not a file id");
  auto r = Fsck(*store_, false);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 2u);
  for (const auto& p : r->problems) std::printf("fsck: %s\n", p.c_str());
  // Reads skip the record they cannot decode.
  EXPECT_EQ(ns_->ReadChunks(file_, 0, 100)->size(), 1u);

  r = Fsck(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->repaired, 1u);
  EXPECT_TRUE(ns_->PeekGarbage(10)->empty());
  // The chunk stays reported: nothing says which blob it meant.
  r = Fsck(*store_, false);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 1u);
  EXPECT_NE(r->problems[0].find("undecodable chunk"), std::string::npos) << r->problems[0];
}

}  // namespace
}  // namespace needlefs
