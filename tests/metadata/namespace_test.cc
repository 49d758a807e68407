// POSIX rules of the namespace (names, create, mkdir/rmdir, mknod, symlink,
// link/unlink, setattr, rename, sticky bit, permissions, readdir, xattrs,
// chunks, generations, timestamps, reopen), on every KV engine.
// Concurrency and readdir cookie stability: namespace_concurrency_test.cc.
#include "metadata/namespace.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "namespace_test_util.h"

namespace needlefs {
namespace {

using Names = std::vector<std::string>;

Names Sorted(Names v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// Linux answers EEXIST for creating "." or ".."; EINVAL is as good.
bool IsEinvalOrEexist(int err) { return err == EINVAL || err == EEXIST; }

class NamespaceTest : public NamespaceFixture {
 protected:
  /// A directory "u" (mode 0777) in the root where unprivileged users may create.
  InodeId SharedDir() {
    InodeAttr d = MakeDir(kRootInode, "u", 0777);
    return d.ino;
  }
  StatusOr<InodeAttr> Chmod(const RequestContext& ctx, InodeId ino, uint32_t mode) {
    SetAttrRequest req;
    req.mode = mode;
    return ns_->SetAttr(ctx, ino, req);
  }
  StatusOr<InodeAttr> Truncate(InodeId ino, uint64_t size) {
    SetAttrRequest req;
    req.size = size;
    return ns_->SetAttr(root_, ino, req);
  }
  /// The xattr's value, or a description of the error.
  std::string GetX(InodeId ino, const std::string& name) {
    auto v = ns_->GetXattr(root_, ino, name);
    return v.ok() ? *v : "<" + v.status().ToString() + ">";
  }
  /// The xattr names, sorted.
  std::vector<std::string> ListX(InodeId ino) {
    auto v = ns_->ListXattr(root_, ino);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    std::vector<std::string> names = v.ok() ? *v : std::vector<std::string>{};
    std::sort(names.begin(), names.end());
    return names;
  }
  std::vector<std::string> GarbageIds() {
    auto g = ns_->PeekGarbage(1000);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    std::vector<std::string> ids;
    if (g.ok()) {
      for (auto& [seq, id] : *g) ids.push_back(id);
    }
    return ids;
  }
};

INSTANTIATE_TEST_SUITE_P(Engines, NamespaceTest,
                         ::testing::Values(KvEngine::kMemory, KvEngine::kRocksDb), KvEngineName);

void ExpectChunk(const Chunk& c, const FileId& id, uint64_t offset, uint64_t size,
                 uint64_t blob_offset) {
  EXPECT_EQ(c.file_id, id);
  EXPECT_EQ(c.offset, offset) << id.ToString();
  EXPECT_EQ(c.size, size) << id.ToString();
  EXPECT_EQ(c.blob_offset, blob_offset) << id.ToString();
}

// ---------------------------------------------------------------------------
// Root and names

TEST_P(NamespaceTest, RootIsADirectoryWithInodeOneAndNlinkTwo) {
  InodeAttr root = Attr(kRootInode);
  EXPECT_EQ(root.ino, kRootInode);
  EXPECT_EQ(root.type, FileType::kDirectory);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_EQ(root.mode, 0755u);
  EXPECT_EQ(root.uid, 0u);
  EXPECT_EQ(root.gid, 0u);
  EXPECT_EQ(root.StMode(), static_cast<uint32_t>(S_IFDIR | 0755));
}

TEST_P(NamespaceTest, LookupOfMissingNameIsENOENT) {
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "nope")), ENOENT);
}

TEST_P(NamespaceTest, NameLongerThan255BytesIsENAMETOOLONG) {
  const std::string longest(kMaxNameBytes, 'a');
  const std::string too_long(kMaxNameBytes + 1, 'a');
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, too_long)), ENAMETOOLONG);
  EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, too_long, 0644, true)), ENAMETOOLONG);
  EXPECT_EQ(Errno(ns_->Mkdir(root_, kRootInode, too_long, 0755)), ENAMETOOLONG);
  EXPECT_EQ(Errno(ns_->Symlink(root_, kRootInode, too_long, "t")), ENAMETOOLONG);
  InodeAttr f = MakeFile(kRootInode, longest);
  EXPECT_EQ(Look(kRootInode, longest).ino, f.ino);
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, longest, kRootInode, too_long)), ENAMETOOLONG);
  EXPECT_EQ(Errno(ns_->Link(root_, f.ino, kRootInode, too_long)), ENAMETOOLONG);
}

TEST_P(NamespaceTest, NamesWithSlashOrEmptyAreEINVAL) {
  InodeAttr f = MakeFile(kRootInode, "f");
  for (const std::string bad : {"a/b", "", "/", "x/"}) {
    SCOPED_TRACE("name '" + bad + "'");
    EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, bad, 0644, true)), EINVAL);
    EXPECT_EQ(Errno(ns_->Mkdir(root_, kRootInode, bad, 0755)), EINVAL);
    EXPECT_EQ(Errno(ns_->Symlink(root_, kRootInode, bad, "t")), EINVAL);
    EXPECT_EQ(Errno(ns_->Mknod(root_, kRootInode, bad, FileType::kFifo, 0644, 0)), EINVAL);
    EXPECT_EQ(Errno(ns_->Link(root_, f.ino, kRootInode, bad)), EINVAL);
    EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, bad)), EINVAL);
  }
  EXPECT_EQ(Look(kRootInode, "f").ino, f.ino);
}

TEST_P(NamespaceTest, DotAndDotDotCannotBeCreatedOrRenamed) {
  InodeAttr f = MakeFile(kRootInode, "f");
  for (const std::string dot : {".", ".."}) {
    SCOPED_TRACE("name '" + dot + "'");
    EXPECT_PRED1(IsEinvalOrEexist, Errno(ns_->Create(root_, kRootInode, dot, 0644, true)));
    EXPECT_PRED1(IsEinvalOrEexist, Errno(ns_->Mkdir(root_, kRootInode, dot, 0755)));
    EXPECT_PRED1(IsEinvalOrEexist, Errno(ns_->Symlink(root_, kRootInode, dot, "t")));
    EXPECT_PRED1(IsEinvalOrEexist, Errno(ns_->Link(root_, f.ino, kRootInode, dot)));
    EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, dot)), EINVAL);
    EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, dot, kRootInode, "g")), EINVAL);
  }
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, ".")), EINVAL);
  EXPECT_EQ(Attr(kRootInode).nlink, 2u);
}

TEST_P(NamespaceTest, LookupInNonDirectoryIsENOTDIR) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->Lookup(root_, f.ino, "x")), ENOTDIR);
  EXPECT_EQ(Errno(ns_->Create(root_, f.ino, "x", 0644, true)), ENOTDIR);
  EXPECT_EQ(Errno(ns_->Mkdir(root_, f.ino, "x", 0755)), ENOTDIR);
}

// ---------------------------------------------------------------------------
// Create

TEST_P(NamespaceTest, CreateSetsModeOwnerNlinkSizeAndTimes) {
  InodeId u = SharedDir();
  const RequestContext user = User(1000, 1000);
  const int64_t before = WallNowNs();
  bool created = false;
  auto f = ns_->Create(user, u, "f", 0640, /*exclusive=*/true, &created);
  const int64_t after = WallNowNs();
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(created);
  EXPECT_EQ(f->type, FileType::kRegular);
  EXPECT_EQ(f->mode, 0640u);
  EXPECT_EQ(f->StMode(), static_cast<uint32_t>(S_IFREG | 0640));
  EXPECT_EQ(f->uid, 1000u);
  EXPECT_EQ(f->gid, 1000u);
  EXPECT_EQ(f->nlink, 1u);
  EXPECT_EQ(f->size, 0u);
  const int64_t slack = 1'000'000'000;  // the server may use a coarse clock
  for (int64_t t : {f->atime_ns, f->mtime_ns, f->ctime_ns}) {
    EXPECT_GE(t, before - slack);
    EXPECT_LE(t, after + slack);
  }
  InodeAttr again = Look(u, "f");
  EXPECT_EQ(again.ino, f->ino);
  EXPECT_EQ(again.generation, f->generation);
  EXPECT_EQ(again.mtime_ns, f->mtime_ns);
  EXPECT_EQ(again.ctime_ns, f->ctime_ns);
  EXPECT_EQ(again.atime_ns, f->atime_ns);
}

TEST_P(NamespaceTest, ExclusiveCreateOfExistingNameIsEEXIST) {
  MakeFile(kRootInode, "f");
  MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, "f", 0644, true)), EEXIST);
  EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, "d", 0644, true)), EEXIST);
  EXPECT_EQ(Errno(ns_->Mkdir(root_, kRootInode, "f", 0755)), EEXIST);
  EXPECT_EQ(Errno(ns_->Symlink(root_, kRootInode, "d", "t")), EEXIST);
  EXPECT_EQ(Errno(ns_->Mknod(root_, kRootInode, "f", FileType::kFifo, 0644, 0)), EEXIST);
}

TEST_P(NamespaceTest, NonExclusiveCreateReturnsExistingFileUnchanged) {
  bool created = false;
  auto first = ns_->Create(root_, kRootInode, "f", 0600, /*exclusive=*/false, &created);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(created);
  ASSERT_TRUE(ns_->AddChunks(first->ino, {{Fid(1, 1), 0, 10, 0}}, 10).ok());
  auto second = ns_->Create(root_, kRootInode, "f", 0777, /*exclusive=*/false, &created);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(created);
  EXPECT_EQ(second->ino, first->ino);
  EXPECT_EQ(second->mode, 0600u);
  EXPECT_EQ(second->size, 10u);
  EXPECT_EQ(second->nlink, 1u);
}

TEST_P(NamespaceTest, NonExclusiveCreateOverDirectoryIsEISDIR) {
  MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, "d", 0644, /*exclusive=*/false)), EISDIR);
}

TEST_P(NamespaceTest, CreateAdvancesParentMtimeAndCtime) {
  InodeAttr before = Attr(kRootInode);
  TickClock();
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr after = Attr(kRootInode);
  EXPECT_GT(after.mtime_ns, before.mtime_ns);
  EXPECT_GT(after.ctime_ns, before.ctime_ns);
  EXPECT_GT(f.mtime_ns, before.mtime_ns);
  EXPECT_GT(f.ctime_ns, before.ctime_ns);
  EXPECT_GT(f.atime_ns, before.atime_ns);
}

// ---------------------------------------------------------------------------
// Mkdir, rmdir, unlink

TEST_P(NamespaceTest, MkdirHasNlinkTwoAndRaisesParentNlink) {
  InodeAttr d = MakeDir(kRootInode, "d", 0750);
  EXPECT_EQ(d.type, FileType::kDirectory);
  EXPECT_EQ(d.nlink, 2u);
  EXPECT_EQ(d.mode, 0750u);
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
  MakeDir(d.ino, "e");
  EXPECT_EQ(Attr(d.ino).nlink, 3u);
  MakeFile(d.ino, "f");
  EXPECT_EQ(Attr(d.ino).nlink, 3u);  // files do not count
}

TEST_P(NamespaceTest, RmdirLowersParentNlinkAndRemovesInode) {
  InodeAttr d = MakeDir(kRootInode, "d");
  ASSERT_EQ(Attr(kRootInode).nlink, 3u);
  TickClock();
  ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "d").ok());
  InodeAttr root = Attr(kRootInode);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_GT(root.mtime_ns, d.mtime_ns);
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "d")), ENOENT);
  EXPECT_EQ(Errno(ns_->GetAttr(d.ino)), ENOENT);
}

TEST_P(NamespaceTest, RmdirOfNonEmptyDirectoryIsENOTEMPTY) {
  InodeAttr d = MakeDir(kRootInode, "d");
  MakeFile(d.ino, "f");
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "d")), ENOTEMPTY);
  InodeAttr e = MakeDir(kRootInode, "e");
  MakeDir(e.ino, "sub");
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "e")), ENOTEMPTY);
  EXPECT_EQ(Attr(kRootInode).nlink, 4u);
}

TEST_P(NamespaceTest, RmdirOfFileIsENOTDIR) {
  MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "f")), ENOTDIR);
  EXPECT_TRUE(ns_->Lookup(root_, kRootInode, "f").ok());
}

TEST_P(NamespaceTest, UnlinkOfDirectoryIsEISDIR) {
  MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->Unlink(root_, kRootInode, "d")), EISDIR);
  EXPECT_TRUE(ns_->Lookup(root_, kRootInode, "d").ok());
}

TEST_P(NamespaceTest, RmdirOrUnlinkOfMissingNameIsENOENT) {
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "nope")), ENOENT);
  EXPECT_EQ(Errno(ns_->Unlink(root_, kRootInode, "nope")), ENOENT);
}

TEST_P(NamespaceTest, RmdirSucceedsOnceHardLinkedFileInsideIsUnlinked) {
  InodeAttr d = MakeDir(kRootInode, "d");
  InodeAttr f = MakeFile(d.ino, "f");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 5, 0}}, 5).ok());
  ASSERT_TRUE(ns_->Link(root_, f.ino, kRootInode, "outside").ok());
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "d")), ENOTEMPTY);
  ASSERT_TRUE(ns_->Unlink(root_, d.ino, "f").ok());
  ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "d").ok());
  InodeAttr outside = Look(kRootInode, "outside");
  EXPECT_EQ(outside.ino, f.ino);
  EXPECT_EQ(outside.nlink, 1u);
  EXPECT_EQ(outside.size, 5u);
  auto chunks = ns_->ReadChunks(f.ino, 0, 5);
  ASSERT_TRUE(chunks.ok()) << chunks.status().ToString();
  ASSERT_EQ(chunks->size(), 1u);
  ExpectChunk((*chunks)[0], Fid(1, 1), 0, 5, 0);
  EXPECT_TRUE(GarbageIds().empty());
}

TEST_P(NamespaceTest, InlineChunksKeepTheirBytesThroughOverwriteTruncateAndUnlink) {
  // Off by default: an inline chunk is refused.
  Chunk hello{FileId{}, 0, 11, 0, "hello world"};
  {
    InodeAttr off = MakeFile(kRootInode, "off");
    EXPECT_EQ(Errno(ns_->AddChunks(off.ino, {hello}, 11).status()), EINVAL);
  }
  CloseAll();
  ns_options_.max_inline_bytes = 16;
  ASSERT_NO_FATAL_FAILURE(OpenAll());
  InodeAttr f = MakeFile(kRootInode, "small");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {hello}, 11).ok());
  auto chunks = ns_->ReadChunks(f.ino, 0, 11);
  ASSERT_TRUE(chunks.ok()) << chunks.status().ToString();
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].data, "hello world");
  EXPECT_EQ((*chunks)[0].file_id, FileId{});
  // A part of it: exactly those bytes.
  chunks = ns_->ReadChunks(f.ino, 6, 3);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].offset, 6u);
  EXPECT_EQ((*chunks)[0].data, "wor");
  // Over the limit, with a file id too, or bytes that do not match size.
  EXPECT_EQ(Errno(ns_->AddChunks(f.ino, {{FileId{}, 0, 17, 0, std::string(17, 'x')}}, 17).status()),
            EINVAL);
  EXPECT_EQ(Errno(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 2, 0, "ab"}}, 2).status()), EINVAL);
  EXPECT_EQ(Errno(ns_->AddChunks(f.ino, {{FileId{}, 0, 3, 0, "ab"}}, 3).status()), EINVAL);
  // A blob over the middle: the inline bytes around it stay, sliced.
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 7), 2, 3, 0}}, 11).ok());
  chunks = ns_->ReadChunks(f.ino, 0, 11);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 3u);
  EXPECT_EQ((*chunks)[0].data, "he");
  ExpectChunk((*chunks)[1], Fid(1, 7), 2, 3, 0);
  EXPECT_EQ((*chunks)[2].offset, 5u);
  EXPECT_EQ((*chunks)[2].data, " world");
  if (GetParam() == KvEngine::kRocksDb) {
    // Survives a reopen: the record format.
    CloseAll();
    ASSERT_NO_FATAL_FAILURE(OpenAll());
    chunks = ns_->ReadChunks(f.ino, 0, 11);
    ASSERT_TRUE(chunks.ok());
    ASSERT_EQ(chunks->size(), 3u);
    EXPECT_EQ((*chunks)[2].data, " world");
  }
  // Truncate clips the inline bytes; past them they go, with no garbage.
  SetAttrRequest cut;
  cut.size = 8;
  ASSERT_TRUE(ns_->SetAttr(root_, f.ino, cut).ok());
  chunks = ns_->ReadChunks(f.ino, 0, 8);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 3u);
  EXPECT_EQ((*chunks)[2].data, " wo");
  cut.size = 1;
  ASSERT_TRUE(ns_->SetAttr(root_, f.ino, cut).ok());
  chunks = ns_->ReadChunks(f.ino, 0, 1);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].data, "h");
  // Only the blob became garbage; unlinking the file adds none.
  EXPECT_EQ(GarbageIds(), std::vector<std::string>{Fid(1, 7).ToString()});
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "small").ok());
  EXPECT_EQ(GarbageIds(), std::vector<std::string>{Fid(1, 7).ToString()});
}

TEST_P(NamespaceTest, AddChunksAppliesAttributesInItsTransactionWithSetAttrsRules) {
  InodeAttr f = MakeFile(kRootInode, "f");
  SetAttrRequest attrs;
  attrs.mode = 0640;
  attrs.mtime_ns = 1'234'000'000'000'000'000;
  auto a = ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 10, 0}}, 10, false, &attrs, &root_);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->mode, 0640u);
  EXPECT_EQ(a->mtime_ns, 1'234'000'000'000'000'000);  // after the chunks' own mtime
  EXPECT_EQ(a->size, 10u);
  // A caller SetAttr would refuse: nothing of the call is committed.
  RequestContext other;
  other.uid = 4242;
  other.gid = 4242;
  EXPECT_EQ(
      Errno(ns_->AddChunks(f.ino, {{Fid(1, 2), 10, 5, 0}}, 15, false, &attrs, &other).status()),
      EPERM);
  InodeAttr now = Look(kRootInode, "f");
  EXPECT_EQ(now.size, 10u);
  auto chunks = ns_->ReadChunks(f.ino, 0, 15);
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->size(), 1u);
  // A size among the attributes is refused.
  SetAttrRequest sized;
  sized.size = 1;
  EXPECT_EQ(Errno(ns_->AddChunks(f.ino, {{Fid(1, 3), 0, 1, 0}}, 1, false, &sized, &root_).status()),
            EINVAL);
}

// ---------------------------------------------------------------------------
// Mknod, symlink

TEST_P(NamespaceTest, MknodCreatesFifoSocketAndDevices) {
  auto fifo = ns_->Mknod(root_, kRootInode, "fifo", FileType::kFifo, 0640, 0);
  ASSERT_TRUE(fifo.ok()) << fifo.status().ToString();
  EXPECT_EQ(fifo->type, FileType::kFifo);
  EXPECT_EQ(fifo->StMode(), static_cast<uint32_t>(S_IFIFO | 0640));
  auto sock = ns_->Mknod(root_, kRootInode, "sock", FileType::kSocket, 0600, 0);
  ASSERT_TRUE(sock.ok()) << sock.status().ToString();
  EXPECT_EQ(sock->StMode(), static_cast<uint32_t>(S_IFSOCK | 0600));
  const uint64_t rdev = (4u << 8) | 64u;  // makedev(4, 64)
  auto chr = ns_->Mknod(root_, kRootInode, "tty", FileType::kCharDevice, 0620, rdev);
  ASSERT_TRUE(chr.ok()) << chr.status().ToString();
  EXPECT_EQ(chr->StMode(), static_cast<uint32_t>(S_IFCHR | 0620));
  EXPECT_EQ(chr->rdev, rdev);
  auto blk = ns_->Mknod(root_, kRootInode, "sda", FileType::kBlockDevice, 0660, 0x801);
  ASSERT_TRUE(blk.ok()) << blk.status().ToString();
  EXPECT_EQ(blk->StMode(), static_cast<uint32_t>(S_IFBLK | 0660));
  InodeAttr looked = Look(kRootInode, "tty");
  EXPECT_EQ(looked.type, FileType::kCharDevice);
  EXPECT_EQ(looked.rdev, rdev);
  EXPECT_EQ(looked.nlink, 1u);
  EXPECT_EQ(Look(kRootInode, "sock").type, FileType::kSocket);
  EXPECT_EQ(Look(kRootInode, "fifo").type, FileType::kFifo);
}

TEST_P(NamespaceTest, MknodOfRegularDirectoryOrSymlinkTypeIsEINVAL) {
  EXPECT_EQ(Errno(ns_->Mknod(root_, kRootInode, "a", FileType::kRegular, 0644, 0)), EINVAL);
  EXPECT_EQ(Errno(ns_->Mknod(root_, kRootInode, "b", FileType::kDirectory, 0755, 0)), EINVAL);
  EXPECT_EQ(Errno(ns_->Mknod(root_, kRootInode, "c", FileType::kSymlink, 0777, 0)), EINVAL);
  EXPECT_EQ(Attr(kRootInode).nlink, 2u);
  EXPECT_TRUE(ListAll(kRootInode).empty());
}

TEST_P(NamespaceTest, SymlinkRoundTripsThroughReadlink) {
  const std::string target = "../some/where/else";
  auto s = ns_->Symlink(root_, kRootInode, "s", target);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->type, FileType::kSymlink);
  EXPECT_EQ(s->size, target.size());
  EXPECT_EQ(s->nlink, 1u);
  EXPECT_EQ(s->StMode() & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  EXPECT_EQ(Look(kRootInode, "s").ino, s->ino);
  auto r = ns_->Readlink(s->ino);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, target);
  const std::string longest(kMaxSymlinkBytes, 'x');
  auto l = ns_->Symlink(root_, kRootInode, "long", longest);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->size, kMaxSymlinkBytes);
  auto rl = ns_->Readlink(l->ino);
  ASSERT_TRUE(rl.ok());
  EXPECT_EQ(*rl, longest);
}

TEST_P(NamespaceTest, ReadlinkOfNonSymlinkIsEINVAL) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->Readlink(f.ino)), EINVAL);
  EXPECT_EQ(Errno(ns_->Readlink(kRootInode)), EINVAL);
}

TEST_P(NamespaceTest, SymlinkTargetLongerThanPathMaxIsENAMETOOLONG) {
  const std::string too_long(kMaxSymlinkBytes + 1, 'x');
  EXPECT_EQ(Errno(ns_->Symlink(root_, kRootInode, "s", too_long)), ENAMETOOLONG);
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "s")), ENOENT);
}

// ---------------------------------------------------------------------------
// Link, unlink

TEST_P(NamespaceTest, LinkRaisesNlinkAndAdvancesCtime) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr d = MakeDir(kRootInode, "d");
  TickClock();
  auto l = ns_->Link(root_, f.ino, d.ino, "g");
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->ino, f.ino);
  EXPECT_EQ(l->nlink, 2u);
  InodeAttr after = Attr(f.ino);
  EXPECT_EQ(after.nlink, 2u);
  EXPECT_GT(after.ctime_ns, f.ctime_ns);
  EXPECT_GT(Attr(d.ino).mtime_ns, d.mtime_ns);
  EXPECT_EQ(Look(d.ino, "g").ino, f.ino);
  EXPECT_EQ(Attr(d.ino).nlink, 2u);  // a file link does not count
}

TEST_P(NamespaceTest, LinkToDirectoryIsEPERM) {
  InodeAttr d = MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->Link(root_, d.ino, kRootInode, "d2")), EPERM);
  EXPECT_EQ(Attr(d.ino).nlink, 2u);
}

TEST_P(NamespaceTest, LinkOntoExistingNameIsEEXIST) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr g = MakeFile(kRootInode, "g");
  EXPECT_EQ(Errno(ns_->Link(root_, f.ino, kRootInode, "g")), EEXIST);
  EXPECT_EQ(Errno(ns_->Link(root_, f.ino, kRootInode, "f")), EEXIST);
  EXPECT_EQ(Attr(f.ino).nlink, 1u);
  EXPECT_EQ(Look(kRootInode, "g").ino, g.ino);
}

TEST_P(NamespaceTest, UnlinkOfOneNameLeavesTheOther) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->Link(root_, f.ino, kRootInode, "g").ok());
  TickClock();
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "f").ok());
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "f")), ENOENT);
  InodeAttr g = Look(kRootInode, "g");
  EXPECT_EQ(g.ino, f.ino);
  EXPECT_EQ(g.nlink, 1u);
  EXPECT_GT(g.ctime_ns, f.ctime_ns);
}

TEST_P(NamespaceTest, UnlinkOfLastNameRemovesInode) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->Link(root_, f.ino, kRootInode, "g").ok());
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "f").ok());
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "g").ok());
  EXPECT_EQ(Errno(ns_->GetAttr(f.ino)), ENOENT);
  EXPECT_EQ(Errno(ns_->GetAttrChecked(f.ino, f.generation)), ENOENT);
  EXPECT_TRUE(ListAll(kRootInode).empty());
}

// ---------------------------------------------------------------------------
// SetAttr

TEST_P(NamespaceTest, ChmodAndChownByRootChangeModeAndOwner) {
  InodeAttr f = MakeFile(kRootInode, "f", 0644);
  auto a = Chmod(root_, f.ino, 04711);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->mode, 04711u);
  SetAttrRequest chown;
  chown.uid = 1000;
  chown.gid = 2000;
  auto b = ns_->SetAttr(root_, f.ino, chown);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->uid, 1000u);
  EXPECT_EQ(b->gid, 2000u);
  EXPECT_EQ(b->mode & 0777, 0711u);
  EXPECT_EQ(b->mode & S_ISUID, 0u) << "chown clears set-user-ID";
  InodeAttr c = Attr(f.ino);
  EXPECT_EQ(c.uid, 1000u);
  EXPECT_EQ(c.gid, 2000u);
}

TEST_P(NamespaceTest, TruncateChangesSizeUpAndDown) {
  InodeAttr f = MakeFile(kRootInode, "f");
  auto up = Truncate(f.ino, 1000);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(up->size, 1000u);
  EXPECT_EQ(Attr(f.ino).size, 1000u);
  auto down = Truncate(f.ino, 10);
  ASSERT_TRUE(down.ok()) << down.status().ToString();
  EXPECT_EQ(down->size, 10u);
  EXPECT_EQ(Attr(f.ino).size, 10u);
  ASSERT_TRUE(Truncate(f.ino, 0).ok());
  EXPECT_EQ(Attr(f.ino).size, 0u);
}

TEST_P(NamespaceTest, SetTimesExplicitAndNow) {
  InodeAttr f = MakeFile(kRootInode, "f");
  SetAttrRequest req;
  req.atime_ns = 1'000'000'000;
  req.mtime_ns = 2'000'000'000;
  auto a = ns_->SetAttr(root_, f.ino, req);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->atime_ns, 1'000'000'000);
  EXPECT_EQ(a->mtime_ns, 2'000'000'000);
  EXPECT_GE(a->ctime_ns, f.ctime_ns);
  const int64_t before = WallNowNs();
  SetAttrRequest now;
  now.atime_now = true;
  now.mtime_now = true;
  auto b = ns_->SetAttr(root_, f.ino, now);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const int64_t slack = 1'000'000'000;
  EXPECT_GE(b->atime_ns, before - slack);
  EXPECT_GE(b->mtime_ns, before - slack);
  EXPECT_LE(b->atime_ns, WallNowNs() + slack);
  EXPECT_LE(b->mtime_ns, WallNowNs() + slack);
  EXPECT_EQ(Attr(f.ino).mtime_ns, b->mtime_ns);
}

TEST_P(NamespaceTest, EverySetAttrChangeAdvancesCtime) {
  InodeAttr f = MakeFile(kRootInode, "f");
  std::vector<std::pair<std::string, SetAttrRequest>> reqs(7);
  reqs[0].first = "mode";
  reqs[0].second.mode = 0600;
  reqs[1].first = "uid";
  reqs[1].second.uid = 7;
  reqs[2].first = "gid";
  reqs[2].second.gid = 8;
  reqs[3].first = "size";
  reqs[3].second.size = 4096;
  reqs[4].first = "atime";
  reqs[4].second.atime_ns = 5;
  reqs[5].first = "mtime";
  reqs[5].second.mtime_ns = 6;
  reqs[6].first = "now";
  reqs[6].second.atime_now = true;
  reqs[6].second.mtime_now = true;
  int64_t last = f.ctime_ns;
  for (const auto& [what, req] : reqs) {
    SCOPED_TRACE(what);
    TickClock();
    auto a = ns_->SetAttr(root_, f.ino, req);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_GT(a->ctime_ns, last);
    EXPECT_EQ(Attr(f.ino).ctime_ns, a->ctime_ns);
    last = a->ctime_ns;
  }
}

TEST_P(NamespaceTest, ChmodByNonOwnerIsEPERM) {
  InodeId u = SharedDir();
  InodeAttr f = MakeFile(u, "f", 0666, User(1001, 1001));
  EXPECT_EQ(Errno(Chmod(User(1000, 1000), f.ino, 0777)), EPERM);
  EXPECT_EQ(Attr(f.ino).mode, 0666u);
  auto own = Chmod(User(1001, 1001), f.ino, 0600);
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ(own->mode, 0600u);
  SetAttrRequest times;  // explicit times: owner only, even with write permission
  times.mtime_ns = 42;
  ASSERT_TRUE(Chmod(root_, f.ino, 0666).ok());
  EXPECT_EQ(Errno(ns_->SetAttr(User(1000, 1000), f.ino, times)), EPERM);
}

TEST_P(NamespaceTest, ChownToAnotherUidByNonRootIsEPERM) {
  InodeId u = SharedDir();
  InodeAttr f = MakeFile(u, "f", 0644, User(1000, 1000));
  SetAttrRequest req;
  req.uid = 1001;
  EXPECT_EQ(Errno(ns_->SetAttr(User(1000, 1000), f.ino, req)), EPERM);
  EXPECT_EQ(Errno(ns_->SetAttr(User(1001, 1001), f.ino, req)), EPERM);
  EXPECT_EQ(Attr(f.ino).uid, 1000u);
}

TEST_P(NamespaceTest, AWriterMayClearSetuidAndSetgidButNothingElse) {
  // The chmod the kernel makes before a non-owner's write (file_remove_privs).
  InodeId u = SharedDir();
  InodeAttr f = MakeFile(u, "f", 0666);
  ASSERT_TRUE(Chmod(root_, f.ino, 06777).ok());
  EXPECT_EQ(Errno(Chmod(User(1001, 1001), f.ino, 06775)), EPERM);  // not only clearing
  EXPECT_EQ(Errno(Chmod(User(1001, 1001), f.ino, 06777)), EPERM);  // clears nothing
  auto a = Chmod(User(1001, 1001), f.ino, 0777);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->mode, 0777u);
  InodeAttr g = MakeFile(u, "g", 0644);  // not writable by 1001
  ASSERT_TRUE(Chmod(root_, g.ino, 04755).ok());
  EXPECT_EQ(Errno(Chmod(User(1001, 1001), g.ino, 0755)), EPERM);
  InodeAttr d = MakeDir(u, "d", 0777);  // directories: never
  ASSERT_TRUE(Chmod(root_, d.ino, 02777).ok());
  EXPECT_EQ(Errno(Chmod(User(1001, 1001), d.ino, 0777)), EPERM);
}

TEST_P(NamespaceTest, ComposeMovesChunksWithoutGarbage) {
  // S3 CompleteMultipartUpload: parts become one file, no blob is freed.
  InodeAttr up = MakeDir(kRootInode, "up", 0777);
  InodeAttr p1 = MakeFile(up.ino, "1");
  InodeAttr p2 = MakeFile(up.ino, "2");
  ASSERT_TRUE(ns_->AddChunks(p1.ino, {{Fid(1, 1), 0, 10, 0}}, 10).ok());
  // Part 2: an overwritten chunk (b2old is hidden by b2 except its tail).
  ASSERT_TRUE(ns_->AddChunks(p2.ino, {{Fid(1, 3), 0, 6, 0}}, 6).ok());
  ASSERT_TRUE(ns_->AddChunks(p2.ino, {{Fid(1, 2), 0, 4, 100}}, 4).ok());
  InodeAttr t = MakeFile(kRootInode, "target");
  const size_t garbage_before = GarbageIds().size();
  ASSERT_EQ(garbage_before, 0u);
  ChangeInfo info;
  auto a = ns_->Compose(root_, t.ino, up.ino, {"1", "2"}, &info);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size, 16u);
  auto chunks = ns_->ReadChunks(t.ino, 0, 100);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 3u);
  EXPECT_EQ((*chunks)[0].file_id, Fid(1, 1));
  EXPECT_EQ((*chunks)[1].file_id, Fid(1, 2));
  EXPECT_EQ((*chunks)[1].offset, 10u);
  EXPECT_EQ((*chunks)[1].blob_offset, 100u);
  EXPECT_EQ((*chunks)[2].file_id, Fid(1, 3));
  EXPECT_EQ((*chunks)[2].offset, 14u);
  EXPECT_EQ((*chunks)[2].blob_offset, 4u);
  EXPECT_EQ(GarbageIds().size(), garbage_before);
  EXPECT_EQ(Errno(ns_->Lookup(root_, up.ino, "1")), ENOENT);
  EXPECT_EQ(Errno(ns_->GetAttr(p2.ino)), ENOENT);
  EXPECT_EQ(info.dir.before->size, 2u);
  EXPECT_EQ(info.dir.after->size, 0u);
  // Deleting the target frees every blob once.
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "target").ok());
  auto g = GarbageIds();
  std::sort(g.begin(), g.end());
  EXPECT_EQ(g, (std::vector<std::string>{Fid(1, 1).ToString(), Fid(1, 2).ToString(),
                                         Fid(1, 3).ToString()}));
}

TEST_P(NamespaceTest, ComposeRefusesBadParts) {
  InodeAttr up = MakeDir(kRootInode, "up", 0777);
  MakeFile(up.ino, "1");
  InodeAttr t = MakeFile(kRootInode, "target");
  EXPECT_EQ(Errno(ns_->Compose(root_, t.ino, up.ino, {})), EINVAL);
  EXPECT_EQ(Errno(ns_->Compose(root_, t.ino, up.ino, {"1", "1"})), EINVAL);
  EXPECT_EQ(Errno(ns_->Compose(root_, t.ino, up.ino, {"1", "nope"})), ENOENT);
  EXPECT_EQ(Errno(ns_->Lookup(root_, up.ino, "1")), 0) << "a failed compose removed a part";
  ASSERT_TRUE(ns_->Link(root_, ns_->Lookup(root_, up.ino, "1")->ino, kRootInode, "other").ok());
  EXPECT_EQ(Errno(ns_->Compose(root_, t.ino, up.ino, {"1"})), EMLINK);
  MakeFile(up.ino, "2");
  EXPECT_EQ(Errno(ns_->Compose(User(1001, 1001), t.ino, up.ino, {"2"})), EACCES);
}

TEST_P(NamespaceTest, ExclusiveCreateWithAVerifierReplays) {
  // RFC 1813 CREATE EXCLUSIVE: the verifier is kept in atime/mtime.
  bool created = false;
  const uint64_t verf = 0xfeedface12345678ull;
  auto a = ns_->Create(root_, kRootInode, "x", 0644, true, &created, nullptr, verf);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(created);
  EXPECT_EQ(a->atime_ns, static_cast<int64_t>(verf >> 32));
  EXPECT_EQ(a->mtime_ns, static_cast<int64_t>(verf & 0xffffffffu));
  auto again = ns_->Create(root_, kRootInode, "x", 0644, true, &created, nullptr, verf);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(created);
  EXPECT_EQ(again->ino, a->ino);
  EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, "x", 0644, true, &created, nullptr, verf + 1)),
            EEXIST);
  EXPECT_EQ(Errno(ns_->Create(root_, kRootInode, "x", 0644, true, &created)), EEXIST);
}

TEST_P(NamespaceTest, ChangeInfoHoldsTheParentBeforeAndAfter) {
  InodeAttr d = MakeDir(kRootInode, "d");
  ChangeInfo info;
  ASSERT_TRUE(ns_->Mkdir(root_, d.ino, "sub", 0755, &info).ok());
  ASSERT_TRUE(info.dir.before && info.dir.after);
  EXPECT_EQ(*info.dir.before, d);
  EXPECT_EQ(info.dir.after->nlink, d.nlink + 1);
  EXPECT_EQ(*info.dir.after, Attr(d.ino));
  ChangeInfo rm;
  ASSERT_TRUE(ns_->Rmdir(root_, d.ino, "sub", &rm).ok());
  EXPECT_EQ(*rm.dir.before, *info.dir.after);
  EXPECT_EQ(*rm.dir.after, Attr(d.ino));
  ChangeInfo set;
  ASSERT_TRUE(Chmod(root_, d.ino, 0700).ok());
  SetAttrRequest r;
  r.mode = 0711;
  ASSERT_TRUE(ns_->SetAttr(root_, d.ino, r, &set).ok());
  EXPECT_EQ(set.inode.before->mode, 0700u);
  EXPECT_EQ(set.inode.after->mode, 0711u);
}

TEST_P(NamespaceTest, NonOwnerChownToTheCurrentOwnerIsEPERM) {
  // As Linux: asking is refused even when nothing would change.
  InodeId u = SharedDir();
  InodeAttr f = MakeFile(u, "f", 0666, root_);
  SetAttrRequest same;
  same.uid = 0;
  same.gid = 0;
  EXPECT_EQ(Errno(ns_->SetAttr(User(1001, 1001), f.ino, same)), EPERM);
  SetAttrRequest same_gid;
  same_gid.gid = 0;
  EXPECT_EQ(Errno(ns_->SetAttr(User(1001, 1001), f.ino, same_gid)), EPERM);
  // The owner may name itself and its current group.
  InodeAttr g = MakeFile(u, "g", 0644, User(1001, 1001));
  SetAttrRequest self;
  self.uid = 1001;
  self.gid = 1001;
  EXPECT_TRUE(ns_->SetAttr(User(1001, 1001), g.ino, self).ok());
}

TEST_P(NamespaceTest, MovingADirectoryToAnotherParentNeedsWriteOnIt) {
  InodeId u = SharedDir();
  InodeAttr a = MakeDir(u, "a", 0777, User(1002, 1002));
  InodeAttr b = MakeDir(u, "b", 0777, User(1001, 1001));
  MakeDir(a.ino, "y", 0755, User(1002, 1002));  // not writable by 1001
  EXPECT_EQ(Errno(ns_->Rename(User(1001, 1001), a.ino, "y", b.ino, "y")), EACCES);
  // Within the same parent its ".." stays: allowed.
  EXPECT_TRUE(ns_->Rename(User(1001, 1001), a.ino, "y", a.ino, "z").ok());
  // Its owner may move it.
  EXPECT_TRUE(ns_->Rename(User(1002, 1002), a.ino, "z", b.ino, "y").ok());
}

TEST_P(NamespaceTest, OwnerMayChgrpOnlyToItsOwnGroups) {
  InodeId u = SharedDir();
  const RequestContext user = User(1000, 1000, {2000});
  InodeAttr f = MakeFile(u, "f", 0644, user);
  SetAttrRequest to_member;
  to_member.gid = 2000;
  auto a = ns_->SetAttr(user, f.ino, to_member);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->gid, 2000u);
  SetAttrRequest to_other;
  to_other.gid = 3000;
  EXPECT_EQ(Errno(ns_->SetAttr(user, f.ino, to_other)), EPERM);
  EXPECT_EQ(Attr(f.ino).gid, 2000u);
  SetAttrRequest by_stranger;
  by_stranger.gid = 1001;
  EXPECT_EQ(Errno(ns_->SetAttr(User(1001, 1001), f.ino, by_stranger)), EPERM);
}

TEST_P(NamespaceTest, TruncateOfDirectoryIsEISDIR) {
  InodeAttr d = MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(Truncate(d.ino, 0)), EISDIR);
}

TEST_P(NamespaceTest, TruncateWithoutWritePermissionIsEACCES) {
  InodeId u = SharedDir();
  InodeAttr f = MakeFile(u, "f", 0644, User(1000, 1000));
  SetAttrRequest req;
  req.size = 100;
  EXPECT_EQ(Errno(ns_->SetAttr(User(1001, 1001), f.ino, req)), EACCES);
  EXPECT_TRUE(ns_->SetAttr(User(1000, 1000), f.ino, req).ok());
}

// ---------------------------------------------------------------------------
// Rename

TEST_P(NamespaceTest, RenameFileWithinDirectory) {
  InodeAttr f = MakeFile(kRootInode, "f");
  TickClock();
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "f", kRootInode, "g").ok());
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "f")), ENOENT);
  InodeAttr g = Look(kRootInode, "g");
  EXPECT_EQ(g.ino, f.ino);
  EXPECT_EQ(g.nlink, 1u);
  InodeAttr root = Attr(kRootInode);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_GT(root.mtime_ns, f.mtime_ns);
  EXPECT_GT(root.ctime_ns, f.ctime_ns);
}

TEST_P(NamespaceTest, RenameFileOverExistingFileReplacesTarget) {
  InodeAttr a = MakeFile(kRootInode, "a");
  InodeAttr b = MakeFile(kRootInode, "b");
  ASSERT_TRUE(ns_->Link(root_, b.ino, kRootInode, "b2").ok());
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "a", kRootInode, "b").ok());
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "a")), ENOENT);
  EXPECT_EQ(Look(kRootInode, "b").ino, a.ino);
  EXPECT_EQ(Attr(a.ino).nlink, 1u);
  EXPECT_EQ(Attr(b.ino).nlink, 1u) << "the replaced name's inode lost one link";
  // Replacing the last name of an inode removes it, and queues its chunks.
  InodeAttr c = MakeFile(kRootInode, "c");
  ASSERT_TRUE(ns_->AddChunks(b.ino, {{Fid(1, 1), 0, 8, 0}}, 8).ok());
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "c", kRootInode, "b2").ok());
  EXPECT_EQ(Look(kRootInode, "b2").ino, c.ino);
  EXPECT_EQ(Errno(ns_->GetAttr(b.ino)), ENOENT);
  EXPECT_EQ(GarbageIds(), Names({Fid(1, 1).ToString()}));
  EXPECT_EQ(ListAll(kRootInode).size(), 2u);
}

TEST_P(NamespaceTest, RenameDirectoryOverEmptyDirectoryReplacesIt) {
  InodeAttr d = MakeDir(kRootInode, "d");
  MakeFile(d.ino, "inside");
  InodeAttr e = MakeDir(kRootInode, "e");
  ASSERT_EQ(Attr(kRootInode).nlink, 4u);
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "d", kRootInode, "e").ok());
  EXPECT_EQ(Look(kRootInode, "e").ino, d.ino);
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "d")), ENOENT);
  EXPECT_EQ(Errno(ns_->GetAttr(e.ino)), ENOENT);
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
  EXPECT_TRUE(ns_->Lookup(root_, d.ino, "inside").ok());
}

TEST_P(NamespaceTest, RenameDirectoryOverNonEmptyDirectoryIsENOTEMPTY) {
  InodeAttr d = MakeDir(kRootInode, "d");
  InodeAttr e = MakeDir(kRootInode, "e");
  MakeFile(e.ino, "x");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "d", kRootInode, "e")), ENOTEMPTY);
  EXPECT_EQ(Look(kRootInode, "d").ino, d.ino);
  EXPECT_EQ(Look(kRootInode, "e").ino, e.ino);
  EXPECT_EQ(Attr(kRootInode).nlink, 4u);
}

TEST_P(NamespaceTest, RenameFileOverDirectoryIsEISDIR) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr d = MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, "d")), EISDIR);
  EXPECT_EQ(Look(kRootInode, "f").ino, f.ino);
  EXPECT_EQ(Look(kRootInode, "d").ino, d.ino);
}

TEST_P(NamespaceTest, RenameDirectoryOverFileIsENOTDIR) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr d = MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "d", kRootInode, "f")), ENOTDIR);
  EXPECT_EQ(Look(kRootInode, "f").ino, f.ino);
  EXPECT_EQ(Look(kRootInode, "d").ino, d.ino);
}

TEST_P(NamespaceTest, RenameDirectoryIntoItsOwnSubtreeIsEINVAL) {
  InodeAttr a = MakeDir(kRootInode, "a");
  InodeAttr b = MakeDir(a.ino, "b");
  InodeAttr c = MakeDir(b.ino, "c");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "a", a.ino, "x")), EINVAL);
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "a", b.ino, "x")), EINVAL);
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "a", c.ino, "x")), EINVAL);
  EXPECT_EQ(Errno(ns_->Rename(root_, a.ino, "b", c.ino, "x")), EINVAL);
  EXPECT_EQ(Look(kRootInode, "a").ino, a.ino);
  EXPECT_EQ(Look(a.ino, "b").ino, b.ino);
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
  EXPECT_EQ(Attr(a.ino).nlink, 3u);
  EXPECT_EQ(Attr(c.ino).nlink, 2u);
}

TEST_P(NamespaceTest, RenameOntoAnotherLinkOfSameInodeIsNoOp) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->Link(root_, f.ino, kRootInode, "g").ok());
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "f", kRootInode, "g").ok());
  EXPECT_EQ(Look(kRootInode, "f").ino, f.ino);
  EXPECT_EQ(Look(kRootInode, "g").ino, f.ino);
  EXPECT_EQ(Attr(f.ino).nlink, 2u);
}

TEST_P(NamespaceTest, RenameOntoItselfIsNoOp) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr d = MakeDir(kRootInode, "d");
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "f", kRootInode, "f").ok());
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "d", kRootInode, "d").ok());
  EXPECT_EQ(Look(kRootInode, "f").ino, f.ino);
  EXPECT_EQ(Look(kRootInode, "d").ino, d.ino);
  EXPECT_EQ(Attr(f.ino).nlink, 1u);
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
}

TEST_P(NamespaceTest, RenameNoReplaceFailsOnlyWhenTargetExists) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr g = MakeFile(kRootInode, "g");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, "g", kRenameNoReplace)), EEXIST);
  EXPECT_EQ(Look(kRootInode, "g").ino, g.ino);
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "f", kRootInode, "h", kRenameNoReplace).ok());
  EXPECT_EQ(Look(kRootInode, "h").ino, f.ino);
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "f")), ENOENT);
}

TEST_P(NamespaceTest, RenameExchangeSwapsTwoFiles) {
  InodeAttr f = MakeFile(kRootInode, "f");
  InodeAttr d = MakeDir(kRootInode, "d");
  InodeAttr g = MakeFile(d.ino, "g");
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "f", d.ino, "g", kRenameExchange).ok());
  EXPECT_EQ(Look(kRootInode, "f").ino, g.ino);
  EXPECT_EQ(Look(d.ino, "g").ino, f.ino);
  EXPECT_EQ(Attr(f.ino).nlink, 1u);
  EXPECT_EQ(Attr(g.ino).nlink, 1u);
}

TEST_P(NamespaceTest, RenameExchangeOfFileAndDirectorySwapsTypesAndParentNlinks) {
  InodeAttr a = MakeDir(kRootInode, "a");
  InodeAttr b = MakeDir(kRootInode, "b");
  InodeAttr f = MakeFile(a.ino, "f");
  InodeAttr d = MakeDir(b.ino, "d");
  MakeFile(d.ino, "inside");
  ASSERT_EQ(Attr(a.ino).nlink, 2u);
  ASSERT_EQ(Attr(b.ino).nlink, 3u);
  ASSERT_TRUE(ns_->Rename(root_, a.ino, "f", b.ino, "d", kRenameExchange).ok());
  InodeAttr af = Look(a.ino, "f");
  EXPECT_EQ(af.ino, d.ino);
  EXPECT_EQ(af.type, FileType::kDirectory);
  InodeAttr bd = Look(b.ino, "d");
  EXPECT_EQ(bd.ino, f.ino);
  EXPECT_EQ(bd.type, FileType::kRegular);
  EXPECT_EQ(Attr(a.ino).nlink, 3u);
  EXPECT_EQ(Attr(b.ino).nlink, 2u);
  EXPECT_EQ(Attr(kRootInode).nlink, 4u);
  EXPECT_TRUE(ns_->Lookup(root_, d.ino, "inside").ok());
  // The directory now lives in a: b can be emptied and removed.
  ASSERT_TRUE(ns_->Unlink(root_, b.ino, "d").ok());
  EXPECT_TRUE(ns_->Rmdir(root_, kRootInode, "b").ok());
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "a")), ENOTEMPTY);
}

TEST_P(NamespaceTest, RenameExchangeWithMissingTargetIsENOENT) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, "nope", kRenameExchange)),
            ENOENT);
  EXPECT_EQ(Look(kRootInode, "f").ino, f.ino);
  EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "nope")), ENOENT);
}

TEST_P(NamespaceTest, RenameWithBothFlagsIsEINVAL) {
  MakeFile(kRootInode, "f");
  MakeFile(kRootInode, "g");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, "g",
                              kRenameNoReplace | kRenameExchange)),
            EINVAL);
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", kRootInode, "h",
                              kRenameNoReplace | kRenameExchange)),
            EINVAL);
}

TEST_P(NamespaceTest, MovingDirectoryUpdatesBothParentsNlinkAndTimes) {
  InodeAttr a = MakeDir(kRootInode, "a");
  InodeAttr b = MakeDir(kRootInode, "b");
  InodeAttr d = MakeDir(a.ino, "d");
  InodeAttr a0 = Attr(a.ino);
  InodeAttr b0 = Attr(b.ino);
  ASSERT_EQ(a0.nlink, 3u);
  ASSERT_EQ(b0.nlink, 2u);
  TickClock();
  ASSERT_TRUE(ns_->Rename(root_, a.ino, "d", b.ino, "d2").ok());
  InodeAttr a1 = Attr(a.ino);
  InodeAttr b1 = Attr(b.ino);
  EXPECT_EQ(a1.nlink, 2u);
  EXPECT_EQ(b1.nlink, 3u);
  EXPECT_GT(a1.mtime_ns, a0.mtime_ns);
  EXPECT_GT(a1.ctime_ns, a0.ctime_ns);
  EXPECT_GT(b1.mtime_ns, b0.mtime_ns);
  EXPECT_GT(b1.ctime_ns, b0.ctime_ns);
  EXPECT_EQ(Look(b.ino, "d2").ino, d.ino);
  EXPECT_EQ(Attr(d.ino).nlink, 2u);
  EXPECT_EQ(Attr(kRootInode).nlink, 4u);
}

TEST_P(NamespaceTest, RenameOfMissingSourceIsENOENT) {
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "nope", kRootInode, "x")), ENOENT);
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", InodeId(987654321), "x")), ENOENT);
  EXPECT_EQ(Errno(ns_->Rename(root_, kRootInode, "f", f.ino, "x")), ENOTDIR);
}

TEST_P(NamespaceTest, OldParentCanBeRemovedAfterItsDirectoryMovedAway) {
  InodeAttr a = MakeDir(kRootInode, "a");
  InodeAttr b = MakeDir(kRootInode, "b");
  InodeAttr d = MakeDir(a.ino, "d");
  MakeFile(d.ino, "f");
  ASSERT_TRUE(ns_->Rename(root_, a.ino, "d", b.ino, "d").ok());
  EXPECT_TRUE(ListAll(a.ino).empty());
  ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "a").ok());
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
  EXPECT_EQ(Errno(ns_->Rmdir(root_, kRootInode, "b")), ENOTEMPTY);
  EXPECT_EQ(Look(b.ino, "d").ino, d.ino);
  EXPECT_TRUE(ns_->Lookup(root_, d.ino, "f").ok());
  // The moved directory is fully usable under its new parent.
  MakeDir(d.ino, "sub");
  EXPECT_EQ(Attr(d.ino).nlink, 3u);
}

// ---------------------------------------------------------------------------
// Sticky directories and permissions

TEST_P(NamespaceTest, StickyDirectoryLetsOnlyOwnerOrRootRemoveEntries) {
  InodeAttr tmp = MakeDir(kRootInode, "tmp", 0777);
  auto sticky = Chmod(root_, tmp.ino, 01777);
  ASSERT_TRUE(sticky.ok()) << sticky.status().ToString();
  ASSERT_EQ(sticky->mode, 01777u);
  const RequestContext owner = User(1000, 1000);
  const RequestContext other = User(1001, 1001);
  MakeFile(tmp.ino, "f", 0666, owner);
  EXPECT_EQ(Errno(ns_->Unlink(other, tmp.ino, "f")), EPERM);
  EXPECT_EQ(Errno(ns_->Rename(other, tmp.ino, "f", tmp.ino, "g")), EPERM);
  MakeFile(tmp.ino, "mine", 0666, other);
  EXPECT_EQ(Errno(ns_->Rename(other, tmp.ino, "mine", tmp.ino, "f")), EPERM)
      << "replacing another user's file in a sticky directory";
  ASSERT_TRUE(ns_->Rename(owner, tmp.ino, "f", tmp.ino, "g").ok());
  ASSERT_TRUE(ns_->Unlink(owner, tmp.ino, "g").ok());
  MakeFile(tmp.ino, "h", 0666, owner);
  EXPECT_TRUE(ns_->Unlink(root_, tmp.ino, "h").ok());
  MakeDir(tmp.ino, "dir", 0777, owner);
  EXPECT_EQ(Errno(ns_->Rmdir(other, tmp.ino, "dir")), EPERM);
  EXPECT_TRUE(ns_->Rmdir(owner, tmp.ino, "dir").ok());
}

TEST_P(NamespaceTest, AccessChecksOwnerGroupAndOtherBits) {
  InodeId u = SharedDir();
  InodeAttr f = MakeFile(u, "f", 0640, User(1000, 1000));
  const RequestContext owner = User(1000, 1000);
  const RequestContext group_member = User(1001, 1000);
  const RequestContext supplementary = User(1003, 5, {1000});
  const RequestContext other = User(1002, 1002);
  EXPECT_TRUE(ns_->Access(owner, f.ino, R_OK | W_OK).ok());
  EXPECT_EQ(Errno(ns_->Access(owner, f.ino, X_OK)), EACCES);
  EXPECT_TRUE(ns_->Access(group_member, f.ino, R_OK).ok());
  EXPECT_EQ(Errno(ns_->Access(group_member, f.ino, W_OK)), EACCES);
  EXPECT_TRUE(ns_->Access(supplementary, f.ino, R_OK).ok());
  EXPECT_EQ(Errno(ns_->Access(supplementary, f.ino, R_OK | W_OK)), EACCES);
  EXPECT_EQ(Errno(ns_->Access(other, f.ino, R_OK)), EACCES);
  EXPECT_TRUE(ns_->Access(other, f.ino, 0).ok());  // F_OK
  EXPECT_TRUE(ns_->Access(root_, f.ino, R_OK | W_OK).ok());
  EXPECT_EQ(Errno(ns_->Access(root_, f.ino, X_OK)), EACCES) << "no x bit at all";
  ASSERT_TRUE(Chmod(owner, f.ino, 0401).ok());  // owner bits win over "other"
  EXPECT_EQ(Errno(ns_->Access(owner, f.ino, X_OK)), EACCES);
  EXPECT_TRUE(ns_->Access(other, f.ino, X_OK).ok());
  EXPECT_TRUE(ns_->Access(root_, f.ino, X_OK).ok());
  EXPECT_EQ(Errno(ns_->Access(owner, InodeId(987654321), R_OK)), ENOENT);
}

TEST_P(NamespaceTest, CreateWithoutWritePermissionOnDirectoryIsEACCES) {
  InodeAttr d = MakeDir(kRootInode, "d", 0755);
  const RequestContext user = User(1000, 1000);
  EXPECT_EQ(Errno(ns_->Create(user, d.ino, "f", 0644, true)), EACCES);
  EXPECT_EQ(Errno(ns_->Mkdir(user, d.ino, "e", 0755)), EACCES);
  EXPECT_EQ(Errno(ns_->Symlink(user, d.ino, "s", "t")), EACCES);
  MakeFile(d.ino, "g");
  EXPECT_EQ(Errno(ns_->Unlink(user, d.ino, "g")), EACCES);
  EXPECT_EQ(Errno(ns_->Rename(user, d.ino, "g", d.ino, "h")), EACCES);
  EXPECT_EQ(ListAll(d.ino).size(), 1u);
}

TEST_P(NamespaceTest, LookupWithoutSearchPermissionIsEACCES) {
  InodeAttr d = MakeDir(kRootInode, "d", 0777);
  MakeFile(d.ino, "f");
  ASSERT_TRUE(Chmod(root_, d.ino, 0666).ok());
  const RequestContext user = User(1000, 1000);
  EXPECT_EQ(Errno(ns_->Lookup(user, d.ino, "f")), EACCES);
  EXPECT_EQ(Errno(ns_->Create(user, d.ino, "g", 0644, true)), EACCES);
  EXPECT_TRUE(ns_->Lookup(root_, d.ino, "f").ok());
  ASSERT_TRUE(Chmod(root_, d.ino, 0111).ok());
  EXPECT_TRUE(ns_->Lookup(user, d.ino, "f").ok());
  EXPECT_EQ(Errno(ns_->ReadDir(user, d.ino, 0, 10, false)), EACCES) << "needs read permission";
}

// ---------------------------------------------------------------------------
// ReadDir (cookie stability under changes: namespace_concurrency_test.cc)

TEST_P(NamespaceTest, ReadDirListsEntriesInCookieOrderWithoutDotEntries) {
  std::map<std::string, InodeAttr> made;
  for (int i = 0; i < 10; ++i) {
    std::string name = "e" + std::to_string(i);
    made[name] = i % 3 == 0 ? MakeDir(kRootInode, name) : MakeFile(kRootInode, name);
  }
  auto r = ns_->ReadDir(root_, kRootInode, 0, 1000, false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->eof);
  ASSERT_EQ(r->entries.size(), 10u);
  uint64_t prev = 0;
  std::set<std::string> names;
  for (const DirEntry& e : r->entries) {
    EXPECT_NE(e.name, ".");
    EXPECT_NE(e.name, "..");
    EXPECT_GE(e.cookie, kFirstEntryCookie);
    EXPECT_GT(e.cookie, prev);
    prev = e.cookie;
    names.insert(e.name);
    ASSERT_EQ(made.count(e.name), 1u) << e.name;
    EXPECT_EQ(e.ino, made[e.name].ino) << e.name;
    EXPECT_EQ(e.type, made[e.name].type) << e.name;
  }
  EXPECT_EQ(names.size(), 10u);
  auto empty = ns_->ReadDir(root_, made["e0"].ino, 0, 10, false);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->entries.empty());
  EXPECT_TRUE(empty->eof);
}

TEST_P(NamespaceTest, ReadDirPaginatesEveryEntryExactlyOnce) {
  for (int i = 0; i < 100; ++i) MakeFile(kRootInode, "f" + std::to_string(i));
  std::map<std::string, int> seen;
  uint64_t cookie = 0;
  bool eof = false;
  int pages = 0;
  while (!eof && pages < 100) {
    auto r = ns_->ReadDir(root_, kRootInode, cookie, 7, false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ++pages;
    EXPECT_LE(r->entries.size(), 7u);
    eof = r->eof;
    if (!eof) {
      ASSERT_FALSE(r->entries.empty()) << "empty page without eof";
    }
    for (const DirEntry& e : r->entries) {
      EXPECT_GT(e.cookie, cookie);
      cookie = e.cookie;
      ++seen[e.name];
    }
  }
  EXPECT_TRUE(eof);
  EXPECT_GE(pages, 15);  // ceil(100 / 7)
  EXPECT_LE(pages, 16);  // an implementation may need one empty page to see eof
  ASSERT_EQ(seen.size(), 100u);
  for (const auto& [name, n] : seen) EXPECT_EQ(n, 1) << name;
}

TEST_P(NamespaceTest, ReadDirPlusFillsAttributes) {
  InodeAttr f = MakeFile(kRootInode, "f", 0600);
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 33, 0}}, 33).ok());
  InodeAttr d = MakeDir(kRootInode, "d");
  std::vector<DirEntry> entries = ListAll(kRootInode, 1, /*plus=*/true);
  ASSERT_EQ(entries.size(), 2u);
  for (const DirEntry& e : entries) {
    ASSERT_TRUE(e.attr.has_value()) << e.name;
    EXPECT_EQ(e.attr->ino, e.ino);
    EXPECT_EQ(e.attr->type, e.type);
    InodeAttr want = Attr(e.ino);
    EXPECT_EQ(e.attr->size, want.size);
    EXPECT_EQ(e.attr->mode, want.mode);
    EXPECT_EQ(e.attr->nlink, want.nlink);
    EXPECT_EQ(e.attr->mtime_ns, want.mtime_ns);
  }
  EXPECT_EQ(Attr(f.ino).size, 33u);
  EXPECT_EQ(Attr(d.ino).nlink, 2u);
}

TEST_P(NamespaceTest, ReadDirOfFileIsENOTDIR) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->ReadDir(root_, f.ino, 0, 10, false)), ENOTDIR);
  EXPECT_EQ(Errno(ns_->ReadDir(root_, InodeId(987654321), 0, 10, false)), ENOENT);
}

// ---------------------------------------------------------------------------
// Xattrs

TEST_P(NamespaceTest, XattrSetGetListRemove) {
  InodeAttr f = MakeFile(kRootInode, "f");
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.one", "1", 0).ok());
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.two", binary, 0).ok());
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "trusted.three", "", 0).ok());
  auto one = ns_->GetXattr(root_, f.ino, "user.one");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, "1");
  auto two = ns_->GetXattr(root_, f.ino, "user.two");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, binary);
  auto three = ns_->GetXattr(root_, f.ino, "trusted.three");
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(*three, "");
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.one", "uno", 0).ok());
  EXPECT_EQ(GetX(f.ino, "user.one"), "uno");
  EXPECT_EQ(ListX(f.ino), Sorted({"user.one", "user.two", "trusted.three"}));
  ASSERT_TRUE(ns_->RemoveXattr(root_, f.ino, "user.one").ok());
  EXPECT_EQ(Errno(ns_->GetXattr(root_, f.ino, "user.one")), ENODATA);
  EXPECT_EQ(Errno(ns_->RemoveXattr(root_, f.ino, "user.one")), ENODATA);
  EXPECT_EQ(ListX(f.ino), Sorted({"user.two", "trusted.three"}));
  // Directories carry xattrs too.
  ASSERT_TRUE(ns_->SetXattr(root_, kRootInode, "user.dir", "v", 0).ok());
  EXPECT_EQ(GetX(kRootInode, "user.dir"), "v");
}

TEST_P(NamespaceTest, XattrCreateOnExistingIsEEXIST) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.a", "1", kXattrCreate).ok());
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "user.a", "2", kXattrCreate)), EEXIST);
  EXPECT_EQ(GetX(f.ino, "user.a"), "1");
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.a", "3", kXattrReplace).ok());
  EXPECT_EQ(GetX(f.ino, "user.a"), "3");
}

TEST_P(NamespaceTest, XattrReplaceOnMissingIsENODATA) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "user.a", "1", kXattrReplace)), ENODATA);
  EXPECT_EQ(Errno(ns_->GetXattr(root_, f.ino, "user.a")), ENODATA);
}

TEST_P(NamespaceTest, GetXattrOfMissingNameIsENODATA) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->GetXattr(root_, f.ino, "user.missing")), ENODATA);
  auto list = ns_->ListXattr(root_, f.ino);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_P(NamespaceTest, XattrNameWithoutNamespacePrefixIsEOPNOTSUPP) {
  InodeAttr f = MakeFile(kRootInode, "f");
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "plain", "1", 0)), EOPNOTSUPP);
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "bogus.name", "1", 0)), EOPNOTSUPP);
  EXPECT_EQ(Errno(ns_->GetXattr(root_, f.ino, "plain")), EOPNOTSUPP);
}

TEST_P(NamespaceTest, PosixAclXattrsAreEOPNOTSUPP) {
  // Stored as opaque bytes, an ACL would not change the mode bits as the
  // kernel's ACL code does: refuse it, so cp -a falls back to chmod.
  InodeAttr f = MakeFile(kRootInode, "f");
  const std::string acl("\x02\x00\x00\x00", 4);
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "system.posix_acl_access", acl, 0)), EOPNOTSUPP);
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "system.posix_acl_default", acl, 0)), EOPNOTSUPP);
  EXPECT_EQ(Errno(ns_->GetXattr(root_, f.ino, "system.posix_acl_access")), EOPNOTSUPP);
}

TEST_P(NamespaceTest, XattrValueOver64KiBIsE2BIG) {
  InodeAttr f = MakeFile(kRootInode, "f");
  const std::string largest(kMaxXattrValueBytes, 'v');
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.big", largest, 0).ok());
  EXPECT_EQ(GetX(f.ino, "user.big"), largest);
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, "user.big", largest + "v", 0)), E2BIG);
}

TEST_P(NamespaceTest, XattrNameOver255BytesIsERANGE) {
  InodeAttr f = MakeFile(kRootInode, "f");
  const std::string longest = "user." + std::string(kMaxXattrNameBytes - 5, 'n');
  ASSERT_EQ(longest.size(), 255u);
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, longest, "1", 0).ok());
  EXPECT_EQ(Errno(ns_->SetXattr(root_, f.ino, longest + "n", "1", 0)), ERANGE);
}

TEST_P(NamespaceTest, SetXattrAdvancesCtime) {
  InodeAttr f = MakeFile(kRootInode, "f");
  TickClock();
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.a", "1", 0).ok());
  InodeAttr a = Attr(f.ino);
  EXPECT_GT(a.ctime_ns, f.ctime_ns);
  TickClock();
  ASSERT_TRUE(ns_->RemoveXattr(root_, f.ino, "user.a").ok());
  EXPECT_GT(Attr(f.ino).ctime_ns, a.ctime_ns);
}

// ---------------------------------------------------------------------------
// Chunks and the garbage queue

TEST_P(NamespaceTest, ReadChunksReturnsNewestChunkWhereChunksOverlap) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 100, 1000}}, 100).ok());
  auto b = ns_->AddChunks(f.ino, {{Fid(1, 2), 50, 100, 5000}}, 150);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->size, 150u);
  auto all = ns_->ReadChunks(f.ino, 0, 150);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  ExpectChunk((*all)[0], Fid(1, 1), 0, 50, 1000);
  ExpectChunk((*all)[1], Fid(1, 2), 50, 100, 5000);
  auto mid = ns_->ReadChunks(f.ino, 20, 50);
  ASSERT_TRUE(mid.ok());
  ASSERT_EQ(mid->size(), 2u);
  ExpectChunk((*mid)[0], Fid(1, 1), 20, 30, 1020);
  ExpectChunk((*mid)[1], Fid(1, 2), 50, 20, 5000);
  auto inner = ns_->ReadChunks(f.ino, 60, 20);
  ASSERT_TRUE(inner.ok());
  ASSERT_EQ(inner->size(), 1u);
  ExpectChunk((*inner)[0], Fid(1, 2), 60, 20, 5010);
}

TEST_P(NamespaceTest, NewerChunkInsideOlderChunkSplitsIt) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 3), 0, 100, 0}}, 100).ok());
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 4), 20, 20, 700}}, 0).ok());
  auto r = ns_->ReadChunks(f.ino, 0, 100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  ExpectChunk((*r)[0], Fid(1, 3), 0, 20, 0);
  ExpectChunk((*r)[1], Fid(1, 4), 20, 20, 700);
  ExpectChunk((*r)[2], Fid(1, 3), 40, 60, 40);
  EXPECT_EQ(Attr(f.ino).size, 100u);
  // Within one AddChunks call, the later chunk of the vector wins.
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 5), 0, 10, 0}, {Fid(1, 6), 5, 10, 0}}, 0).ok());
  auto s = ns_->ReadChunks(f.ino, 0, 15);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 2u);
  ExpectChunk((*s)[0], Fid(1, 5), 0, 5, 0);
  ExpectChunk((*s)[1], Fid(1, 6), 5, 10, 0);
}

TEST_P(NamespaceTest, HolesAreAbsentFromReadChunks) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 1000, 100, 0}}, 1100).ok());
  EXPECT_EQ(Attr(f.ino).size, 1100u);
  auto r = ns_->ReadChunks(f.ino, 0, 1100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  ExpectChunk((*r)[0], Fid(1, 1), 1000, 100, 0);
  auto hole = ns_->ReadChunks(f.ino, 0, 1000);
  ASSERT_TRUE(hole.ok());
  EXPECT_TRUE(hole->empty());
  auto past = ns_->ReadChunks(f.ino, 1050, 1'000'000);  // clipped to the size
  ASSERT_TRUE(past.ok());
  ASSERT_EQ(past->size(), 1u);
  ExpectChunk((*past)[0], Fid(1, 1), 1050, 50, 50);
  auto beyond = ns_->ReadChunks(f.ino, 5000, 10);
  ASSERT_TRUE(beyond.ok());
  EXPECT_TRUE(beyond->empty());
}

TEST_P(NamespaceTest, AddChunksRaisesSizeToMinSizeButNeverLowersIt) {
  InodeAttr f = MakeFile(kRootInode, "f");
  TickClock();
  auto a = ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 100, 0}}, 500);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size, 500u);
  EXPECT_GT(a->mtime_ns, f.mtime_ns);
  EXPECT_GT(a->ctime_ns, f.ctime_ns);
  auto b = ns_->AddChunks(f.ino, {{Fid(1, 2), 0, 10, 0}}, 100);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size, 500u);
  EXPECT_EQ(Attr(f.ino).size, 500u);
  InodeAttr d = MakeDir(kRootInode, "d");
  EXPECT_EQ(Errno(ns_->AddChunks(d.ino, {{Fid(1, 3), 0, 1, 0}}, 1)), EISDIR);
  EXPECT_EQ(Errno(ns_->AddChunks(InodeId(987654321), {{Fid(1, 3), 0, 1, 0}}, 1)), ENOENT);
}

TEST_P(NamespaceTest, TruncateClipsChunksAndQueuesDroppedBlobs) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(
      ns_->AddChunks(f.ino,
                     {{Fid(1, 1), 0, 100, 0}, {Fid(1, 2), 100, 100, 0}, {Fid(1, 3), 200, 100, 0}},
                     300)
          .ok());
  EXPECT_TRUE(GarbageIds().empty());
  ASSERT_TRUE(Truncate(f.ino, 150).ok());
  auto r = ns_->ReadChunks(f.ino, 0, 300);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  ExpectChunk((*r)[0], Fid(1, 1), 0, 100, 0);
  ExpectChunk((*r)[1], Fid(1, 2), 100, 50, 0);
  EXPECT_EQ(GarbageIds(), Names({Fid(1, 3).ToString()}));
  // Extending again exposes a hole, not the old bytes.
  ASSERT_TRUE(Truncate(f.ino, 300).ok());
  auto grown = ns_->ReadChunks(f.ino, 0, 300);
  ASSERT_TRUE(grown.ok());
  ASSERT_EQ(grown->size(), 2u);
  ExpectChunk((*grown)[1], Fid(1, 2), 100, 50, 0);
  ASSERT_TRUE(Truncate(f.ino, 0).ok());
  auto none = ns_->ReadChunks(f.ino, 0, 300);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(Sorted(GarbageIds()),
            Sorted({Fid(1, 3).ToString(), Fid(1, 1).ToString(), Fid(1, 2).ToString()}));
}

TEST_P(NamespaceTest, AckGarbageRemovesEntriesUpToSequence) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 10, 0}, {Fid(1, 2), 10, 10, 0}}, 20).ok());
  ASSERT_TRUE(Truncate(f.ino, 10).ok());
  ASSERT_TRUE(Truncate(f.ino, 0).ok());
  auto g = ns_->PeekGarbage(10);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(g->size(), 2u);
  EXPECT_EQ((*g)[0].second, Fid(1, 2).ToString());
  EXPECT_EQ((*g)[1].second, Fid(1, 1).ToString());
  EXPECT_LT((*g)[0].first, (*g)[1].first);
  auto one = ns_->PeekGarbage(1);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].second, Fid(1, 2).ToString());
  ASSERT_TRUE(ns_->AckGarbage((*g)[0].first).ok());
  EXPECT_EQ(GarbageIds(), Names({Fid(1, 1).ToString()}));
  ASSERT_TRUE(ns_->AckGarbage((*g)[1].first).ok());
  EXPECT_TRUE(GarbageIds().empty());
}

TEST_P(NamespaceTest, UnlinkOfLastNameQueuesFileChunks) {
  InodeAttr f = MakeFile(kRootInode, "f");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 10, 0}, {Fid(1, 2), 10, 10, 0}}, 20).ok());
  ASSERT_TRUE(ns_->Link(root_, f.ino, kRootInode, "g").ok());
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "f").ok());
  EXPECT_TRUE(GarbageIds().empty()) << "still linked as g";
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "g").ok());
  EXPECT_EQ(Sorted(GarbageIds()), Sorted({Fid(1, 1).ToString(), Fid(1, 2).ToString()}));
}

// ---------------------------------------------------------------------------
// Generations, timestamps, statfs, reopen

TEST_P(NamespaceTest, GetAttrCheckedWithWrongGenerationIsENOENT) {
  InodeAttr f = MakeFile(kRootInode, "f");
  auto ok = ns_->GetAttrChecked(f.ino, f.generation);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->ino, f.ino);
  EXPECT_EQ(Errno(ns_->GetAttrChecked(f.ino, Generation(f.generation.value + 1))), ENOENT);
  EXPECT_EQ(Errno(ns_->GetAttr(InodeId(987654321))), ENOENT);
}

TEST_P(NamespaceTest, TimestampsKeepNanosecondResolution) {
  InodeAttr f = MakeFile(kRootInode, "f");
  SetAttrRequest req;
  req.mtime_ns = 1234567890123456789;
  req.atime_ns = 987654321987654321;
  ASSERT_TRUE(ns_->SetAttr(root_, f.ino, req).ok());
  InodeAttr a = Attr(f.ino);
  EXPECT_EQ(a.mtime_ns, 1234567890123456789);
  EXPECT_EQ(a.atime_ns, 987654321987654321);
  req.mtime_ns = -1'500'000'001;  // before the epoch
  ASSERT_TRUE(ns_->SetAttr(root_, f.ino, req).ok());
  EXPECT_EQ(Attr(f.ino).mtime_ns, -1'500'000'001);
}

TEST_P(NamespaceTest, StatFsCountsInodesAndBytes) {
  auto s0 = ns_->GetStatFs();
  ASSERT_TRUE(s0.ok()) << s0.status().ToString();
  InodeAttr f = MakeFile(kRootInode, "f");
  MakeDir(kRootInode, "d");
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 100, 0}}, 100).ok());
  auto s1 = ns_->GetStatFs();
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->inodes, s0->inodes + 2);
  EXPECT_EQ(s1->bytes_used, s0->bytes_used + 100);
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "f").ok());
  auto s2 = ns_->GetStatFs();
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->inodes, s0->inodes + 1);
  EXPECT_EQ(s2->bytes_used, s0->bytes_used);
}

void ExpectSameAttr(const InodeAttr& a, const InodeAttr& b) {
  EXPECT_EQ(a.ino, b.ino);
  EXPECT_EQ(a.generation, b.generation);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.nlink, b.nlink);
  EXPECT_EQ(a.atime_ns, b.atime_ns);
  EXPECT_EQ(a.mtime_ns, b.mtime_ns);
  EXPECT_EQ(a.ctime_ns, b.ctime_ns);
  EXPECT_EQ(a.rdev, b.rdev);
}

TEST_P(NamespaceTest, ReopenKeepsTreeAndNeverReusesLiveInodeNumbers) {
  if (GetParam() == KvEngine::kMemory) {
    // The memory engine persists nothing: a reopened namespace is a fresh
    // root with an empty directory.
    MakeDir(kRootInode, "a", 0750);
    CloseAll();
    ASSERT_NO_FATAL_FAILURE(OpenAll());
    EXPECT_EQ(Errno(ns_->Lookup(root_, kRootInode, "a").status()), ENOENT);
    EXPECT_EQ(Attr(kRootInode).nlink, 2u);
    return;
  }
  InodeAttr a = MakeDir(kRootInode, "a", 0750);
  InodeAttr f = MakeFile(a.ino, "f", 0640);
  ASSERT_TRUE(ns_->AddChunks(f.ino, {{Fid(1, 1), 0, 64, 8}}, 100).ok());
  ASSERT_TRUE(ns_->Link(root_, f.ino, kRootInode, "f-link").ok());
  ASSERT_TRUE(ns_->SetXattr(root_, f.ino, "user.k", "v", 0).ok());
  ASSERT_TRUE(ns_->Symlink(root_, a.ino, "s", "f").ok());
  ASSERT_TRUE(ns_->Mknod(root_, kRootInode, "c", FileType::kCharDevice, 0600, 0x501).ok());
  for (int i = 0; i < 20; ++i) MakeFile(a.ino, "n" + std::to_string(i));
  std::set<uint64_t> used = {kRootInode.value};
  for (InodeId dir : {kRootInode, a.ino}) {
    for (const DirEntry& e : ListAll(dir)) used.insert(e.ino.value);
  }
  ASSERT_EQ(used.size(), 25u);  // root, a, f (also f-link), c, s, n0..n19
  auto fs0 = ns_->GetStatFs();
  ASSERT_TRUE(fs0.ok());

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("reopen " + std::to_string(round));
    std::map<uint64_t, InodeAttr> before;
    for (uint64_t ino : used) before[ino] = Attr(InodeId(ino));
    CloseAll();
    ASSERT_NO_FATAL_FAILURE(OpenAll());
    for (const auto& [ino, attr] : before) ExpectSameAttr(Attr(InodeId(ino)), attr);
    EXPECT_EQ(Look(a.ino, "f").ino, f.ino);
    EXPECT_EQ(Look(kRootInode, "f-link").ino, f.ino);
    EXPECT_EQ(Look(kRootInode, "c").rdev, 0x501u);
    auto target = ns_->Readlink(Look(a.ino, "s").ino);
    ASSERT_TRUE(target.ok());
    EXPECT_EQ(*target, "f");
    auto x = ns_->GetXattr(root_, f.ino, "user.k");
    ASSERT_TRUE(x.ok()) << x.status().ToString();
    EXPECT_EQ(*x, "v");
    auto chunks = ns_->ReadChunks(f.ino, 0, 100);
    ASSERT_TRUE(chunks.ok());
    ASSERT_EQ(chunks->size(), 1u);
    ExpectChunk((*chunks)[0], Fid(1, 1), 0, 64, 8);
    auto fs = ns_->GetStatFs();
    ASSERT_TRUE(fs.ok());
    EXPECT_EQ(fs->inodes, fs0->inodes + round * 5);
    for (int i = 0; i < 5; ++i) {
      InodeAttr n = MakeFile(kRootInode, "new" + std::to_string(round) + "-" + std::to_string(i));
      EXPECT_EQ(used.count(n.ino.value), 0u) << "inode " << n.ino.value << " reused";
      used.insert(n.ino.value);
    }
  }
}

}  // namespace
}  // namespace needlefs

namespace needlefs {
namespace {

/// A store whose transactions run an armed hook once, right after a Scan:
/// a change committed there lands between a ReadDir's cookie scan and its
/// dentry reads, which RocksDB (reads without a snapshot) lets it see.
class ScanHookStore : public KvStore {
 public:
  explicit ScanHookStore(std::unique_ptr<KvStore> inner) : inner_(std::move(inner)) {}
  void Arm(std::function<void()> f) { after_scan_ = std::move(f); }
  std::unique_ptr<KvTransaction> Begin(const TxnOptions& o) override {
    return std::make_unique<Txn>(inner_->Begin(o), this);
  }
  Status SyncLog() override { return inner_->SyncLog(); }
  Status Flush() override { return inner_->Flush(); }

 private:
  class Txn : public KvTransaction {
   public:
    Txn(std::unique_ptr<KvTransaction> t, ScanHookStore* s) : t_(std::move(t)), s_(s) {}
    StatusOr<std::optional<std::string>> Get(std::string_view k) override { return t_->Get(k); }
    StatusOr<std::optional<std::string>> GetForUpdate(std::string_view k) override {
      return t_->GetForUpdate(k);
    }
    Status Scan(std::string_view p, std::string_view a, size_t l,
                const std::function<bool(std::string_view, std::string_view)>& fn) override {
      Status st = t_->Scan(p, a, l, fn);
      if (auto hook = std::exchange(s_->after_scan_, nullptr)) hook();
      return st;
    }
    Status Put(std::string_view k, std::string_view v) override { return t_->Put(k, v); }
    Status Delete(std::string_view k) override { return t_->Delete(k); }
    Status Commit() override { return t_->Commit(); }

   private:
    std::unique_ptr<KvTransaction> t_;
    ScanHookStore* s_;
  };
  std::unique_ptr<KvStore> inner_;
  std::function<void()> after_scan_;
};

// A rename over a name while a listing reads the directory: the name existed
// all along, so the listing has it. (It had neither the replaced entry nor
// the new one, whose cookie lies past the scan: ReplaceFile's readers saw
// the file missing now and then.)
TEST(NamespaceReadDirTest, ANameRenamedOverDuringTheListingIsStillListed) {
  TempDir dir;
  auto rocks = OpenRocksDbKvStore(dir.path() + "/kv");
  ASSERT_TRUE(rocks.ok()) << rocks.status().ToString();
  ScanHookStore store(std::move(*rocks));
  auto opened = Namespace::Open(&store);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Namespace& ns = **opened;
  const RequestContext root = RequestContext::Root();
  const InodeId top(1);
  ASSERT_TRUE(ns.Create(root, top, "obj", 0644, true).ok());
  ASSERT_TRUE(ns.Create(root, top, "tmp", 0644, true).ok());
  Status renamed;
  store.Arm([&] { renamed = ns.Rename(root, top, "tmp", top, "obj"); });
  auto listing = ns.ReadDir(root, top, 0, 100, true);
  ASSERT_TRUE(renamed.ok()) << renamed.ToString();
  ASSERT_TRUE(listing.ok()) << listing.status().ToString();
  std::vector<std::string> names;
  for (const DirEntry& e : listing->entries) names.push_back(e.name);
  EXPECT_EQ(names, std::vector<std::string>{"obj"});
  EXPECT_TRUE(listing->eof);
  // Paged: the first page stops before the new cookie, the next one has it.
  ASSERT_TRUE(ns.Create(root, top, "tmp2", 0644, true).ok());
  ASSERT_TRUE(ns.Create(root, top, "zzz", 0644, true).ok());
  store.Arm([&] { renamed = ns.Rename(root, top, "tmp2", top, "obj"); });
  names.clear();
  uint64_t cookie = 0;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = ns.ReadDir(root, top, cookie, 1, false);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const DirEntry& e : page->entries) {
      names.push_back(e.name);
      cookie = e.cookie;
    }
    if (page->eof) break;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"obj", "zzz"}));
}

}  // namespace
}  // namespace needlefs
