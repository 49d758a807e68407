// Unit tests of the file-system layer (client/file_system.h) over a cluster
// inside the test process (tests/client/in_process_cluster.h: the real
// master, volume server and meta on loopback, no child processes): the
// rules every front end shares -- permissions on each call, implicit opens,
// the truncate ordering, exclusive create with a verifier, path resolution,
// streaming -- checked through the layer's own API, as NFS and S3 use it.
#include "client/file_system.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/in_process_cluster.h"
#include "client/meta_client.h"

namespace needlefs {
namespace {

RequestContext User(uint32_t uid, uint32_t gid = 0) {
  RequestContext c;
  c.uid = uid;
  c.gid = gid == 0 ? uid : gid;
  return c;
}

/// Resident set size of this process, bytes.
uint64_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

class FileSystemTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new InProcessCluster("needlefs-fs-test-"); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  /// A layer over the suite's cluster, rooted at this test's directory.
  std::unique_ptr<FileSystem> OpenFs(FileSystemOptions o = {}) {
    o.meta = cluster_->meta_address();
    o.master = cluster_->master_address();
    o.subdir = "/" + dir_;
    o.file.chunk_size = 1 << 20;
    auto fs = FileSystem::Open(o);
    EXPECT_TRUE(fs.ok()) << fs.status().ToString();
    return fs.ok() ? std::move(fs).value() : nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(cluster_ != nullptr && cluster_->ok());
    dir_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    FileSystemOptions o;
    o.meta = cluster_->meta_address();
    o.master = cluster_->master_address();
    auto top = FileSystem::Open(o);
    ASSERT_TRUE(top.ok()) << top.status().ToString();
    auto d = (*top)->Mkdir(root_, (*top)->root(), dir_, 0777);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    fs_ = OpenFs();
    ASSERT_NE(fs_, nullptr);
  }

  /// A root-owned file `name` in the test's root with `mode` and `data`.
  InodeAttr MakeFile(const std::string& name, uint32_t mode, const std::string& data = "") {
    auto f = fs_->Create(root_, fs_->root(), name, mode, O_RDWR | O_EXCL);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (!f.ok()) return {};
    if (!data.empty()) EXPECT_TRUE(fs_->Write(root_, f->attr.ino, 0, data, f->handle).ok());
    EXPECT_TRUE(fs_->Flush(f->attr.ino).ok());
    fs_->Release(f->handle);
    auto a = fs_->GetAttr(f->attr.ino);
    EXPECT_TRUE(a.ok());
    return a.ok() ? *a : InodeAttr{};
  }

  static int Errno(const Status& s) { return s.posix_errno(); }
  template <typename T>
  static int Errno(const StatusOr<T>& s) {
    return s.ok() ? 0 : s.status().posix_errno();
  }

  static InProcessCluster* cluster_;
  RequestContext root_ = RequestContext::Root();
  std::string dir_;
  std::unique_ptr<FileSystem> fs_;
};

InProcessCluster* FileSystemTest::cluster_ = nullptr;

TEST_F(FileSystemTest, EachOperationChecksTheCallersPermission) {
  const InodeAttr f = MakeFile("f", 0644, "hello");
  auto d = fs_->Mkdir(root_, fs_->root(), "d", 0755);
  ASSERT_TRUE(d.ok());
  const RequestContext u = User(1001);
  // READ and WRITE without an open (NFS): checked on every call.
  EXPECT_EQ(*fs_->Read(u, f.ino, 0, 100), "hello");
  EXPECT_EQ(Errno(fs_->Write(u, f.ino, 0, "x")), EACCES);
  // Open for writing, setattr, create, remove, rename.
  EXPECT_EQ(Errno(fs_->Open(u, f.ino, O_WRONLY)), EACCES);
  EXPECT_EQ(Errno(fs_->Open(u, f.ino, O_RDONLY | O_TRUNC)), EACCES);
  SetAttrRequest chmod;
  chmod.mode = 0777;
  EXPECT_EQ(Errno(fs_->SetAttr(u, f.ino, chmod)), EPERM);
  SetAttrRequest trunc;
  trunc.size = 0;
  EXPECT_EQ(Errno(fs_->SetAttr(u, f.ino, trunc)), EACCES);
  EXPECT_EQ(Errno(fs_->Create(u, d->ino, "new", 0644, O_RDWR)), EACCES);
  EXPECT_EQ(Errno(fs_->Mkdir(u, d->ino, "sub", 0755)), EACCES);
  EXPECT_EQ(Errno(fs_->Unlink(u, d->ino, "nothing")), EACCES);
  ASSERT_TRUE(fs_->Mknod(root_, d->ino, "g", FileType::kRegular, 0666, 0).ok());
  EXPECT_EQ(Errno(fs_->Unlink(u, d->ino, "g")), EACCES);
  EXPECT_EQ(Errno(fs_->Rename(u, d->ino, "g", fs_->root(), "g2")), EACCES);
  EXPECT_EQ(Errno(fs_->OpenDir(User(1001), d->ino)), 0);
  SetAttrRequest closed;
  closed.mode = 0700;
  ASSERT_TRUE(fs_->SetAttr(root_, d->ino, closed).ok());
  EXPECT_EQ(Errno(fs_->OpenDir(u, d->ino)), EACCES);
  EXPECT_EQ(Errno(fs_->Lookup(u, d->ino, "g")), EACCES);
  // Nothing above changed the file.
  EXPECT_EQ(*fs_->Read(root_, f.ino, 0, 100), "hello");
  EXPECT_EQ(fs_->GetAttr(f.ino)->mode, 0644u);
}

TEST_F(FileSystemTest, ImplicitOpenBuffersAndExpiresFlushing) {
  const InodeAttr f = MakeFile("f", 0666);
  auto other = OpenFs();  // a second client of the same cluster
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(fs_->Write(User(1001), f.ino, 0, "unstable data").ok());
  EXPECT_EQ(fs_->implicit_opens(), 1u);
  // Buffered here: this client sees it, the other not yet.
  EXPECT_EQ(fs_->GetAttr(f.ino)->size, 13u);
  EXPECT_EQ(other->GetAttr(f.ino)->size, 0u);
  EXPECT_EQ(fs_->ExpireImplicitOpens(0), 1u);
  EXPECT_EQ(fs_->implicit_opens(), 0u);
  EXPECT_EQ(*other->Read(root_, f.ino, 0, 100), "unstable data");
}

TEST_F(FileSystemTest, IdleImplicitOpenEndsByItself) {
  FileSystemOptions o;
  o.implicit_open_idle_ns = 200'000'000;
  auto fs = OpenFs(o);
  ASSERT_NE(fs, nullptr);
  const InodeAttr f = MakeFile("f", 0666);
  ASSERT_TRUE(fs->Write(root_, f.ino, 0, "abc").ok());
  EXPECT_EQ(fs->implicit_opens(), 1u);
  for (int i = 0; i < 50 && fs->implicit_opens() > 0; ++i) usleep(100'000);
  EXPECT_EQ(fs->implicit_opens(), 0u);
  EXPECT_EQ(fs_->GetAttr(f.ino)->size, 3u);
}

TEST_F(FileSystemTest, TruncateOrderingDropsBufferedDataPastTheNewSize) {
  auto f = fs_->Create(root_, fs_->root(), "f", 0644, O_RDWR);
  ASSERT_TRUE(f.ok());
  const InodeId ino = f->attr.ino;
  ASSERT_TRUE(fs_->Write(root_, ino, 0, "0123456789", f->handle).ok());
  SetAttrRequest r;
  r.size = 4;
  auto a = fs_->SetAttr(root_, ino, r, f->handle);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size, 4u);
  EXPECT_EQ(*fs_->Read(root_, ino, 0, 100, f->handle), "0123");
  // A write past the end after the truncate leaves a hole of zeros.
  ASSERT_TRUE(fs_->Write(root_, ino, 6, "xy", f->handle).ok());
  ASSERT_TRUE(fs_->Flush(ino).ok());
  fs_->Release(f->handle);
  auto other = OpenFs();
  EXPECT_EQ(*other->Read(root_, ino, 0, 100), std::string("0123\0\0xy", 8));
}

TEST_F(FileSystemTest, FtruncateFollowsTheHandleAndWriteKillsSetuid) {
  const RequestContext u = User(1001);
  auto f = fs_->Create(u, fs_->root(), "f", 0644, O_RDWR);
  ASSERT_TRUE(f.ok());
  SetAttrRequest ro;
  ro.mode = 0444;
  ASSERT_TRUE(fs_->SetAttr(u, f->attr.ino, ro).ok());
  SetAttrRequest t;
  t.size = 3;
  EXPECT_EQ(Errno(fs_->SetAttr(u, f->attr.ino, t)), EACCES);        // truncate(2)
  EXPECT_EQ(Errno(fs_->SetAttr(u, f->attr.ino, t, f->handle)), 0);  // ftruncate(2)
  EXPECT_EQ(Errno(fs_->SetAttr(User(1002), f->attr.ino, t, f->handle)), 0);
  fs_->Release(f->handle);

  // The chmod the kernel sends before a non-owner's write to a setuid file.
  const InodeAttr s = MakeFile("s", 06777);
  SetAttrRequest kill;
  kill.mode = 0777;
  auto k = fs_->SetAttr(u, s.ino, kill);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->mode, 0777u);
  // Anything more than clearing those bits stays the owner's.
  SetAttrRequest more;
  more.mode = 0700;
  EXPECT_EQ(Errno(fs_->SetAttr(u, s.ino, more)), EPERM);
  const InodeAttr p = MakeFile("p", 06755);  // not writable by 1001
  EXPECT_EQ(Errno(fs_->SetAttr(u, p.ino, kill)), EPERM);
}

TEST_F(FileSystemTest, ExclusiveCreateReplaysWithTheSameVerifier) {
  bool created = false;
  auto a = fs_->CreateFile(root_, fs_->root(), "x", 0644, CreateHow::kExclusive,
                           0x1234567890abcdefull, &created);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(created);
  auto again = fs_->CreateFile(root_, fs_->root(), "x", 0644, CreateHow::kExclusive,
                               0x1234567890abcdefull, &created);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(created);
  EXPECT_EQ(again->ino, a->ino);
  EXPECT_EQ(
      Errno(fs_->CreateFile(root_, fs_->root(), "x", 0644, CreateHow::kExclusive, 42, &created)),
      EEXIST);
  // GUARDED refuses any existing name, UNCHECKED returns the file.
  EXPECT_EQ(Errno(fs_->CreateFile(root_, fs_->root(), "x", 0644, CreateHow::kGuarded)), EEXIST);
  auto unchecked =
      fs_->CreateFile(root_, fs_->root(), "x", 0644, CreateHow::kUnchecked, 0, &created);
  ASSERT_TRUE(unchecked.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(unchecked->ino, a->ino);
  // A file made otherwise is never taken for a retransmission.
  MakeFile("plain", 0644);
  EXPECT_EQ(
      Errno(fs_->CreateFile(root_, fs_->root(), "plain", 0644, CreateHow::kExclusive, 0, &created)),
      EEXIST);
}

TEST_F(FileSystemTest, ModifyingCallsReportWccAttributes) {
  // NFS wcc_data: the parent's attributes before and after, from meta in
  // the same reply.
  auto d = fs_->Mkdir(root_, fs_->root(), "d", 0755);
  ASSERT_TRUE(d.ok());
  ChangeInfo info;
  auto f = fs_->CreateFile(root_, d->ino, "f", 0644, CreateHow::kGuarded, 0, nullptr, &info);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(info.dir.before && info.dir.after);
  EXPECT_EQ(info.dir.before->ino, d->ino);
  EXPECT_EQ(info.dir.before->size, 0u);
  EXPECT_EQ(info.dir.after->size, 1u);
  EXPECT_GE(info.dir.after->mtime_ns, info.dir.before->mtime_ns);
  EXPECT_EQ(*info.dir.after, *fs_->GetAttr(d->ino));

  ChangeInfo set;
  SetAttrRequest chmod;
  chmod.mode = 0600;
  ASSERT_TRUE(fs_->SetAttr(root_, f->ino, chmod, 0, &set).ok());
  ASSERT_TRUE(set.inode.before && set.inode.after);
  EXPECT_EQ(set.inode.before->mode, 0644u);
  EXPECT_EQ(set.inode.after->mode, 0600u);

  auto e = fs_->Mkdir(root_, fs_->root(), "e", 0755);
  ASSERT_TRUE(e.ok());
  ChangeInfo mv;
  ASSERT_TRUE(fs_->Rename(root_, d->ino, "f", e->ino, "g", 0, &mv).ok());
  EXPECT_EQ(mv.dir.before->size, 1u);
  EXPECT_EQ(mv.dir.after->size, 0u);
  EXPECT_EQ(mv.to_dir.before->size, 0u);
  EXPECT_EQ(mv.to_dir.after->size, 1u);

  ChangeInfo rm;
  ASSERT_TRUE(fs_->Unlink(root_, e->ino, "g", &rm).ok());
  EXPECT_EQ(rm.dir.after->size, 0u);
  // A failed call still reports the directory as it was read.
  ChangeInfo miss;
  EXPECT_EQ(Errno(fs_->Unlink(root_, e->ino, "g", &miss)), ENOENT);
  ASSERT_TRUE(miss.dir.before.has_value());
  EXPECT_EQ(miss.dir.before->ino, e->ino);
}

TEST_F(FileSystemTest, ResolvePathNeverLeavesTheRoot) {
  auto a = fs_->Mkdir(root_, fs_->root(), "a", 0755);
  ASSERT_TRUE(a.ok());
  auto b = fs_->Mkdir(root_, a->ino, "b", 0755);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(fs_->Symlink(root_, a->ino, "up", "/").ok());
  EXPECT_EQ(fs_->ResolvePath(root_, "a/b")->ino, b->ino);
  EXPECT_EQ(fs_->ResolvePath(root_, "//a//b/")->ino, b->ino);
  EXPECT_EQ(fs_->ResolvePath(root_, "")->ino, fs_->root());
  EXPECT_EQ(Errno(fs_->ResolvePath(root_, "a/../a")), EINVAL);
  EXPECT_EQ(Errno(fs_->ResolvePath(root_, "a/./b")), EINVAL);
  EXPECT_EQ(fs_->ResolvePath(root_, "a/up")->type, FileType::kSymlink);  // not followed
  EXPECT_EQ(Errno(fs_->ResolvePath(root_, "a/up/etc")), ENOTDIR);
  EXPECT_EQ(Errno(fs_->ResolvePath(root_, "a/nothing")), ENOENT);
  EXPECT_EQ(Errno(fs_->ResolvePath(root_, std::string(300, 'n'))), ENAMETOOLONG);
  EXPECT_EQ(Errno(fs_->ResolvePath(root_, std::string(5000, 'a'))), ENAMETOOLONG);
  SetAttrRequest closed;
  closed.mode = 0700;
  ASSERT_TRUE(fs_->SetAttr(root_, a->ino, closed).ok());
  EXPECT_EQ(Errno(fs_->ResolvePath(User(1001), "a/b")), EACCES);
}

TEST_F(FileSystemTest, WriteVerifierDiffersPerInstance) {
  auto other = OpenFs();
  ASSERT_NE(other, nullptr);
  EXPECT_NE(fs_->write_verifier(), other->write_verifier());
  EXPECT_EQ(fs_->write_verifier(), fs_->write_verifier());
}

TEST_F(FileSystemTest, UnlinkedOpenFileStaysReadableUntilRelease) {
  const InodeAttr f = MakeFile("f", 0644, "still here");
  auto h = fs_->Open(root_, f.ino, O_RDONLY);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(fs_->Unlink(root_, fs_->root(), "f").ok());
  EXPECT_EQ(Errno(fs_->Lookup(root_, fs_->root(), "f")), ENOENT);
  EXPECT_EQ(*fs_->Read(root_, f.ino, 0, 100, h->handle), "still here");
  fs_->Release(h->handle);
  EXPECT_EQ(Errno(fs_->GetAttr(f.ino)), ENOENT);
}

TEST_F(FileSystemTest, ComposeJoinsPartsWithoutCopying) {
  auto up = fs_->Mkdir(root_, fs_->root(), "uploads", 0755);
  ASSERT_TRUE(up.ok());
  std::string want;
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    // Parts of 1.5 MiB: chunks (1 MiB here) cross part boundaries.
    const std::string data(3 << 19, static_cast<char>('p' + i));
    auto f = fs_->Create(root_, up->ino, std::to_string(i), 0644, O_WRONLY);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(fs_->Write(root_, f->attr.ino, 0, data, f->handle).ok());
    fs_->Release(f->handle);  // flushes
    want += data;
    names.push_back(std::to_string(i));
  }
  auto t = fs_->CreateFile(root_, fs_->root(), "joined", 0644, CreateHow::kGuarded);
  ASSERT_TRUE(t.ok());
  auto a = fs_->Compose(root_, t->ino, up->ino, names);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size, want.size());
  auto other = OpenFs();
  auto got = other->Read(root_, t->ino, 0, want.size() + 10);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == want) << "composed data differs";
  auto listing = fs_->ReadDir(root_, up->ino, 0, 100, false);
  ASSERT_TRUE(listing.ok());
  EXPECT_TRUE(listing->entries.empty());
  EXPECT_EQ(Errno(fs_->Lookup(root_, up->ino, "0")), ENOENT);
}

TEST_F(FileSystemTest, ReplaceFileIsAtomicForReaders) {
  constexpr size_t kSize = 3 << 20;  // three chunks
  auto source = [](char c) {
    auto left = std::make_shared<size_t>(size_t{3 << 20});
    return [c, left](std::string* piece) {
      const size_t n = std::min<size_t>(*left, 700'000);
      piece->assign(n, c);
      *left -= n;
      return Status::OK();
    };
  };
  auto first = fs_->ReplaceFile(root_, fs_->root(), "obj", 0644, source('a'));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto reader_fs = OpenFs();
  std::atomic<bool> stop{false};
  std::atomic<int> whole{0}, stale{0}, bad{0};
  std::string first_bad;  // what the first bad read was (reader thread only)
  std::thread reader([&] {
    while (!stop) {
      auto a = reader_fs->Lookup(root_, reader_fs->root(), "obj");
      if (!a.ok()) {
        if (bad++ == 0) first_bad = "lookup: " + a.status().ToString();  // the name always exists
        continue;
      }
      auto data = reader_fs->Read(root_, a->ino, 0, kSize + 1);
      if (!data.ok()) {
        ++stale;  // the inode was replaced between lookup and read
        continue;
      }
      const bool one =
          data->size() == kSize && data->find_first_not_of((*data)[0]) == std::string::npos;
      if (one) {
        ++whole;
      } else if (bad++ == 0) {
        first_bad = "read " + std::to_string(data->size()) + " bytes, size " +
                    std::to_string(a->size) + ", mixed " +
                    std::to_string(data->find_first_not_of((*data)[0]) != std::string::npos);
      }
    }
  });
  for (int i = 0; i < 6; ++i) {
    auto r = fs_->ReplaceFile(root_, fs_->root(), "obj", 0644, source(i % 2 ? 'a' : 'b'));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->size, kSize);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad, 0) << "a reader saw a mix, a short file or no file; first: " << first_bad;
  EXPECT_GT(whole, 0);
  // No temporary file is left, and a failed source leaves the old file.
  auto failing = [](std::string* piece) -> Status {
    if (piece->empty()) return Status::Unavailable("source broke");
    return Status::OK();
  };
  EXPECT_FALSE(fs_->ReplaceFile(root_, fs_->root(), "obj", 0644, failing).ok());
  auto listing = fs_->ReadDir(root_, fs_->root(), 0, 100, false);
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->entries.size(), 1u);
  EXPECT_EQ(listing->entries[0].name, "obj");
  EXPECT_EQ(fs_->Lookup(root_, fs_->root(), "obj")->size, kSize);
  (void)stale;
}

TEST_F(FileSystemTest, StreamsALargeFileWithBoundedMemory) {
  FileSystemOptions o;
  o.file.max_write_buffer_bytes = 16 << 20;
  o.file.cache_bytes = 16 << 20;
  auto fs = OpenFs(o);
  ASSERT_NE(fs, nullptr);
  const InodeAttr f = MakeFile("big", 0644);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed memory in quarantine by design: a smaller object, and
  // no bound on memory.
  constexpr uint64_t kTotal = 128ull << 20;
  constexpr bool kCheckMemory = false;
#else
  constexpr uint64_t kTotal = 1ull << 30;
  constexpr bool kCheckMemory = true;
#endif
  constexpr size_t kPiece = 1 << 20;
  const uint64_t rss_before = RssBytes();
  uint64_t produced = 0, peak = 0;
  Status st = fs->WriteFrom(root_, f.ino, [&](std::string* piece) {
    if (produced < kTotal) {
      piece->assign(kPiece, static_cast<char>('a' + (produced / kPiece) % 26));
      produced += kPiece;
    }
    peak = std::max(peak, RssBytes());
    return Status::OK();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(fs->GetAttr(f.ino)->size, kTotal);
  uint64_t consumed = 0;
  bool same = true;
  st = fs->ReadTo(root_, f.ino, 0, [&](std::string_view data) {
    for (size_t i = 0; i < data.size(); i += 4096) {
      same = same && data[i] == static_cast<char>('a' + ((consumed + i) / kPiece) % 26);
    }
    consumed += data.size();
    peak = std::max(peak, RssBytes());
    return Status::OK();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(consumed, kTotal);
  EXPECT_TRUE(same);
  // Buffers and caches of 16 MiB each, plus chunks in flight: far below
  // the object's 1 GiB (the servers run in this process too).
  if (kCheckMemory) {
    EXPECT_LT(peak - rss_before, 160ull << 20) << "peak " << (peak >> 20) << " MiB";
  }
}

TEST_F(FileSystemTest, SmallWritesMergeIntoChunksCommittedInOrder) {
  // 2.5 MiB in 4 KiB writes through one open: whole 1 MiB chunks go to
  // the volumes, not one blob per write; a later overlapping write wins.
  auto f = fs_->Create(root_, fs_->root(), "f", 0644, O_RDWR);
  ASSERT_TRUE(f.ok());
  const InodeId ino = f->attr.ino;
  std::string want;
  for (int i = 0; i < 640; ++i) {
    const std::string piece(4096, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(fs_->Write(root_, ino, want.size(), piece, f->handle).ok());
    want += piece;
  }
  ASSERT_TRUE(fs_->Flush(ino).ok());
  auto meta = MetaClient::Create(cluster_->meta_address());
  ASSERT_TRUE(meta.ok());
  auto chunks = (*meta)->ReadChunks(ino, 0, want.size());
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->size(), 3u) << "writes were not merged into 1 MiB chunks";
  // Overwrite across the first chunk boundary, then read through another
  // client: the newer bytes win.
  const std::string over(300'000, 'Z');
  ASSERT_TRUE(fs_->Write(root_, ino, (1 << 20) - 100'000, over, f->handle).ok());
  ASSERT_TRUE(fs_->Flush(ino).ok());
  fs_->Release(f->handle);
  want.replace((1 << 20) - 100'000, over.size(), over);
  auto other = OpenFs();
  auto got = other->Read(root_, ino, 0, want.size());
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == want);
}

/// A cluster of its own, whose volume server a test may stop.
class FileSystemFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    FileSystemOptions o;
    o.meta = cluster_.meta_address();
    o.master = cluster_.master_address();
    o.file.chunk_size = 1 << 20;
    auto fs = FileSystem::Open(o);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
  }

  InProcessCluster cluster_{"needlefs-fs-fail-"};
  std::unique_ptr<FileSystem> fs_;
  RequestContext root_ = RequestContext::Root();
};

TEST_F(FileSystemFailureTest, AFailedUploadIsReportedByTheNextFlushAsEIO) {
  auto f = fs_->Create(root_, fs_->root(), "f", 0644, O_WRONLY);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(fs_->Write(root_, f->attr.ino, 0, "acknowledged", f->handle).ok());
  ASSERT_TRUE(fs_->Flush(f->attr.ino).ok());
  // No volume server: the buffered data cannot be uploaded.
  cluster_.StopVolume();
  ASSERT_TRUE(fs_->Write(root_, f->attr.ino, 12, std::string(2 << 20, 'x'), f->handle).ok());
  Status st = fs_->Flush(f->attr.ino);
  EXPECT_EQ(st.posix_errno(), EIO) << st.ToString();
  fs_->Release(f->handle);
  // What was committed before stays, exactly: no short or zero-filled data.
  auto meta = MetaClient::Create(cluster_.meta_address());
  ASSERT_TRUE(meta.ok());
  auto a = (*meta)->GetAttr(f->attr.ino);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, 12u);
}

}  // namespace
}  // namespace needlefs
