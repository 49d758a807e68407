// Integration tests of `needlefs mount` through the real kernel FUSE client:
// a cluster of real processes on loopback (master, volume server, meta),
// mounts started by the test, and ordinary programs (cp, rsync, tar, git,
// sqlite3, stat, setfattr) as the users.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "client/meta_client.h"
#include "common/http.h"
#include "integration/fuse_fixture.h"
#include "integration/process.h"

namespace needlefs::integration {
namespace {

using namespace std::chrono_literals;

/// One cluster for the whole suite (master, one volume server, meta) and a
/// main mount; each test works in its own directory of the mount.
class FuseTest : public FuseFixture<FuseTest> {
 protected:
  // Small chunks so modest files cross many chunk boundaries.
  static void SetUpTestSuite() { StartCluster("needlefs-fuse-test-", {"-chunkSizeMB", "1"}); }
  static void TearDownTestSuite() { StopCluster(); }

  /// The value of sample `sample` (name and labels) on the test's meta's
  /// /metrics: 0 when absent, -1 when /metrics cannot be read.
  double MetaMetric(const std::string& sample) const {
    auto r = HttpClient("127.0.0.1", meta_.http_port).Request("GET", "/metrics");
    if (!r.ok()) return -1.0;
    const std::string name = sample + " ";
    const size_t at = r->body.find("\n" + name);
    return at == std::string::npos ? 0.0 : std::stod(r->body.substr(at + 1 + name.size()));
  }
};

TEST_F(FuseTest, CopyRealTreeInAndDiff) {
  std::string out;
  // /usr/share/doc: thousands of files, symlinks, gzip, modes and times.
  ASSERT_EQ(Sh("cp -a /usr/share/doc " + ShellQuote(work_ + "/doc"), &out), 0) << out;
  ASSERT_EQ(Sh("diff -r --no-dereference /usr/share/doc " + ShellQuote(work_ + "/doc"), &out), 0)
      << out.substr(0, 4000);
  // cp -a kept modes, owners and mtimes: find's listing matches.
  // (Directory sizes differ by design: ext4 reports blocks, we entries.)
  std::string a, b;
  const std::string fmt =
      " \\( -type d -printf '%P %M %u %g %T@\\n' \\) -o -printf '%P %M %u %g %s %T@ %l\\n' | sort";
  ASSERT_EQ(Sh("cd /usr/share/doc && find ." + fmt, &a), 0);
  ASSERT_EQ(Sh("cd " + ShellQuote(work_ + "/doc") + " && find ." + fmt, &b), 0);
  EXPECT_GT(a.size(), 100'000u);
  EXPECT_EQ(a, b);
}

TEST_F(FuseTest, ParallelCopiesOfARealTreeMatchTheSource) {
  // 8 cp processes at once keep the mount's workers busy, so its namespace
  // calls go to meta in Batch calls (docs/fuse.md); every file must still
  // arrive whole, with its mode and mtime.
  // Header directories that scripts/install-deps brings (about 3,000 files).
  const std::string src = "/usr/include";
  const std::string dirs =
      "$(for d in linux x86_64-linux-gnu absl grpcpp openssl rocksdb fuse3 c++; do "
      "[ -d \"$d\" ] && echo \"$d\"; done)";
  std::string out;
  auto batch_ops = [&] { return MetaMetric("needlefs_meta_batch_ops_total"); };
  const double before = batch_ops();
  ASSERT_EQ(Sh("cd " + src + " && printf '%s\\n' " + dirs + " | xargs -P 8 -I{} cp -a {} " +
                   ShellQuote(work_ + "/") + " 2>&1",
               &out),
            0)
      << out;
  ASSERT_EQ(Sh("cd " + src + " && for d in " + dirs + "; do diff -r --no-dereference \"$d\" " +
                   ShellQuote(work_) + "/\"$d\" || exit 1; done 2>&1",
               &out),
            0)
      << out.substr(0, 4000);
  std::string a, b;
  const std::string fmt = " ! -type d -printf '%p %M %s %T@ %l\\n' | sort";
  ASSERT_EQ(Sh("cd " + src + " && find " + dirs + fmt, &a), 0);
  ASSERT_EQ(Sh("cd " + ShellQuote(work_) + " && find " + dirs + fmt, &b), 0);
  EXPECT_GT(std::count(a.begin(), a.end(), '\n'), 1000) << "too few files to copy";
  EXPECT_EQ(a, b);
  EXPECT_GT(batch_ops(), before) << "no namespace call of the mount went out batched";
}

TEST_F(FuseTest, RsyncInAndOutThenNothingToTransfer) {
  const std::string src = "/usr/include/linux";  // ~1,000 headers in subdirectories
  std::string out;
  ASSERT_EQ(Sh("rsync -a " + src + "/ " + ShellQuote(work_ + "/inc/"), &out), 0) << out;
  ASSERT_EQ(Sh("diff -r --no-dereference " + src + " " + ShellQuote(work_ + "/inc"), &out), 0)
      << out.substr(0, 4000);
  // A second run finds nothing to do: sizes and mtimes all match.
  ASSERT_EQ(Sh("rsync -a --itemize-changes " + src + "/ " + ShellQuote(work_ + "/inc/"), &out), 0);
  EXPECT_EQ(out, "") << "rsync wanted to transfer again";
  // And out of the mount again.
  TempDir local("needlefs-fuse-rsync-");
  ASSERT_EQ(
      Sh("rsync -a " + ShellQuote(work_ + "/inc/") + " " + ShellQuote(local.path() + "/"), &out), 0)
      << out;
  ASSERT_EQ(Sh("diff -r --no-dereference " + src + " " + ShellQuote(local.path()), &out), 0)
      << out.substr(0, 4000);
}

TEST_F(FuseTest, TarThroughTheMount) {
  std::string out;
  ASSERT_EQ(
      Sh("tar -C /usr/share -cf - doc/bash doc/git | tar -C " + ShellQuote(work_) + " -xf -", &out),
      0)
      << out;
  ASSERT_EQ(Sh("tar -C " + ShellQuote(work_) + " -cf - doc | tar -tf - | sort > /dev/null", &out),
            0)
      << out;
  ASSERT_EQ(
      Sh("diff -r --no-dereference /usr/share/doc/git " + ShellQuote(work_ + "/doc/git"), &out), 0)
      << out.substr(0, 4000);
}

TEST_F(FuseTest, GitRepositoryInsideTheMount) {
  std::string out;
  const std::string repo = ShellQuote(work_ + "/repo");
  ASSERT_EQ(
      Sh("mkdir " + repo + " && cd " + repo +
             " && git init -q && cp -a /usr/share/doc/git/RelNotes . && " +
             "git add -A && git -c user.name=t -c user.email=t@example.com commit -qm one && " +
             "echo change >> RelNotes/1.5.0.txt && git -c user.name=t -c user.email=t@example.com "
             "commit -qam two && " +
             "git gc -q && git fsck --strict && git log --oneline | wc -l",
         &out),
      0)
      << out;
  EXPECT_NE(out.find("2"), std::string::npos) << out;
}

TEST_F(FuseTest, OneGiBFileInAndOutWithSameSha256) {
  TempDir local("needlefs-fuse-big-");
  const std::string src = local.path() + "/big";
  std::string out;
  ASSERT_EQ(Sh("head -c 1073741824 /dev/urandom > " + src), 0);
  ASSERT_EQ(
      Sh("dd if=" + src + " of=" + ShellQuote(work_ + "/big") + " bs=1M conv=fsync status=none",
         &out),
      0)
      << out;
  struct stat st;
  ASSERT_EQ(::stat((work_ + "/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1073741824);
  std::string a, b;
  ASSERT_EQ(Sh("sha256sum < " + src, &a), 0);
  ASSERT_EQ(Sh("echo 3 > /proc/sys/vm/drop_caches; sha256sum < " + ShellQuote(work_ + "/big"), &b),
            0);
  EXPECT_EQ(a, b);
}

/// GET requests the volume server has answered so far (any status and
/// path, /metrics included; `code`: only those answered with it).
static uint64_t VolumeGets(uint16_t http_port, const std::string& code = "") {
  std::string out;
  if (Sh("curl -s http://127.0.0.1:" + std::to_string(http_port) + "/metrics", &out) != 0) return 0;
  uint64_t n = 0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("needlefs_volume_server_requests_total{", 0) != 0) continue;
    if (line.find("method=\"GET\"") == std::string::npos) continue;
    if (!code.empty() && line.find("code=\"" + code + "\"") == std::string::npos) continue;
    n += static_cast<uint64_t>(std::stod(line.substr(line.rfind(' ') + 1)));
  }
  return n;
}

/// Random reads of a file spanning many 4 MiB chunks, through a second
/// mount that has none of it cached: a read far from the last one, of a
/// chunk not cached, is a range read of just its bytes (not the whole
/// chunk), and every byte matches.
TEST_F(FuseTest, RandomReadsThroughAColdMountMatchTheFile) {
  std::mt19937_64 rng(20261202);
  std::string data((64 << 20) + 12345, '\0');  // 17 chunks: most reads land far from the last
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(data.data() + i, &v, 8);
  }
  { std::ofstream(work_ + "/big", std::ios::binary) << data; }
  const std::string mp = tmp_->path() + "/mnt-random";
  const uint64_t ranges_before = VolumeGets(volume_.http_port, "206");
  auto m = StartMount(mp);
  ASSERT_NE(m, nullptr);
  const int fd = ::open((mp + "/" + name_ + "/big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf;
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % (data.size() + 100), len = 1 + rng() % 70'000;
    buf.assign(len, '\0');
    const ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
    const std::string want = off < data.size() ? data.substr(off, len) : std::string();
    ASSERT_EQ(n, static_cast<ssize_t>(want.size())) << "read " << i << " at " << off;
    ASSERT_TRUE(std::equal(want.begin(), want.end(), buf.begin())) << "read " << i << " at " << off;
  }
  ::close(fd);
  StopMount(std::move(m), mp);
  EXPECT_GT(VolumeGets(volume_.http_port, "206"), ranges_before + 10) << "few range reads";
}

/// -o cache_dir: what one mount read stays on local disk, and the next
/// mount with the same directory reads it from there, not from the volume
/// server.
TEST_F(FuseTest, DiskCacheServesTheNextMountsReads) {
  std::mt19937_64 rng(7);
  std::string data((5 << 20) + 100, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  { std::ofstream(work_ + "/cached", std::ios::binary) << data; }
  const std::string cache = tmp_->path() + "/disk-cache", mp = tmp_->path() + "/mnt-dc";
  auto m = StartMount(mp, {"-o", "cache_dir=" + cache + ",cache_dir_mb=64"});
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(Slurp(mp + "/" + name_ + "/cached") == data);
  StopMount(std::move(m), mp);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache)) files += e.is_regular_file();
  EXPECT_GE(files, 2u);  // at least two 4 MiB chunks

  const uint64_t gets = VolumeGets(volume_.http_port);
  ASSERT_GT(gets, 0u);
  m = StartMount(mp, {"-o", "cache_dir=" + cache + ",cache_dir_mb=64"});
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(Slurp(mp + "/" + name_ + "/cached") == data);
  StopMount(std::move(m), mp);
  // + 1: the GET /metrics that read `gets` counts itself only afterwards.
  EXPECT_EQ(VolumeGets(volume_.http_port), gets + 1)
      << "the second mount went to the volume server";
}

/// The same random sequence of writes, truncates and appends on a local
/// file and on a file in the mount, compared byte for byte as it goes.
TEST_F(FuseTest, RandomOverwriteTruncateAppendMatchesLocalDisk) {
  TempDir local("needlefs-fuse-random-");
  const std::string paths[2] = {local.path() + "/f", work_ + "/f"};
  std::mt19937_64 rng(20261121);
  auto rand = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  int fds[2], afds[2];
  auto reopen = [&](int flags) {
    for (int i = 0; i < 2; ++i) {
      fds[i] = ::open(paths[i].c_str(), O_RDWR | O_CREAT | flags, 0644);
      afds[i] = ::open(paths[i].c_str(), O_WRONLY | O_APPEND);
      ASSERT_GE(fds[i], 0) << paths[i];
      ASSERT_GE(afds[i], 0) << paths[i];
    }
  };
  auto close_all = [&] {
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(::close(fds[i]), 0);
      EXPECT_EQ(::close(afds[i]), 0);
    }
  };
  auto compare = [&](const std::string& when) {
    const std::string a = Slurp(paths[0]), b = Slurp(paths[1]);
    ASSERT_EQ(a.size(), b.size()) << when;
    if (a != b) {
      size_t at = 0;
      while (a[at] == b[at]) ++at;
      FAIL() << when << ": first difference at byte " << at;
    }
  };
  reopen(O_TRUNC);
  std::string buf;
  for (int step = 0; step < 300; ++step) {
    const uint64_t size = static_cast<uint64_t>(::lseek(fds[0], 0, SEEK_END));
    const int op = static_cast<int>(rand(100));
    if (op < 45) {  // overwrite or extend, sometimes far past the end (a hole)
      const uint64_t off = op < 5 ? size + rand(3 << 20) : rand(size + 1);
      buf.resize(1 + rand(op < 30 ? 64 << 10 : 3 << 20));
      for (auto& c : buf) c = static_cast<char>(rng());
      for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(::pwrite(fds[i], buf.data(), buf.size(), static_cast<off_t>(off)),
                  static_cast<ssize_t>(buf.size()));
      }
    } else if (op < 60) {  // append through O_APPEND
      buf.assign(1 + rand(200 << 10), static_cast<char>('a' + step % 26));
      for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(::write(afds[i], buf.data(), buf.size()), static_cast<ssize_t>(buf.size()));
      }
    } else if (op < 72) {  // truncate down or up
      const uint64_t to = rand(size + (2 << 20));
      for (int i = 0; i < 2; ++i) ASSERT_EQ(::ftruncate(fds[i], static_cast<off_t>(to)), 0);
    } else if (op < 90) {  // read back a range through the open descriptors
      const uint64_t off = rand(size + 1), len = 1 + rand(2 << 20);
      std::string a(len, '\0'), b(len, '\0');
      ssize_t na = ::pread(fds[0], a.data(), len, static_cast<off_t>(off));
      ssize_t nb = ::pread(fds[1], b.data(), len, static_cast<off_t>(off));
      ASSERT_EQ(na, nb) << "step " << step;
      ASSERT_TRUE(std::equal(a.begin(), a.begin() + na, b.begin())) << "step " << step;
    } else if (op < 95) {
      ASSERT_EQ(::fsync(fds[1]), 0);
    } else {  // close, compare whole files, reopen
      close_all();
      ASSERT_NO_FATAL_FAILURE(compare("step " + std::to_string(step)));
      reopen(0);
    }
    struct stat a, b;
    ASSERT_EQ(::fstat(fds[0], &a), 0);
    ASSERT_EQ(::fstat(fds[1], &b), 0);
    ASSERT_EQ(a.st_size, b.st_size) << "step " << step;
  }
  close_all();
  compare("end");
}

TEST_F(FuseTest, ExclusiveCreateTruncateAndAppendFromTwoProcesses) {
  const std::string f = work_ + "/f";
  int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello world", 11), 11);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600), -1);
  EXPECT_EQ(errno, EEXIST);
  fd = ::open(f.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(Slurp(f), "x");
  // Two processes append 500 lines each: every line arrives whole.
  std::string out;
  const std::string q = ShellQuote(work_ + "/log");
  ASSERT_EQ(Sh("for p in a b; do (for i in $(seq 1 500); do echo \"$p $i\" >> " + q +
                   "; done) & done; wait; wc -l < " + q + "; sort " + q + " | uniq | wc -l",
               &out),
            0);
  EXPECT_EQ(out, "1000\n1000\n");
}

TEST_F(FuseTest, AttributesChangedByToolsShowInStat) {
  const std::string f = work_ + "/f", d = work_ + "/d";
  std::string out;
  ASSERT_EQ(
      Sh("cd " + ShellQuote(work_) + " && echo data > f && mkdir d && echo x > d/inner && " +
             "chmod 640 f && chown 1234:5678 f && TZ=UTC touch -d '2001-02-03 04:05:06.5' f && " +
             "ln f hard && ln -s f soft && mkfifo fifo && " +
             "setfattr -n user.color -v blue f && getfattr --only-values -n user.color f",
         &out),
      0)
      << out;
  EXPECT_EQ(out, "blue");
  struct stat st;
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mtim.tv_sec, 981173106);  // 2001-02-03 04:05:06 UTC
  EXPECT_EQ(st.st_mtim.tv_nsec, 500'000'000);
  EXPECT_EQ(st.st_nlink, 2u);
  struct stat hard;
  ASSERT_EQ(::stat((work_ + "/hard").c_str(), &hard), 0);
  EXPECT_EQ(hard.st_ino, st.st_ino);
  ASSERT_EQ(::lstat((work_ + "/soft").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  char target[64] = {};
  EXPECT_EQ(::readlink((work_ + "/soft").c_str(), target, sizeof(target)), 1);
  EXPECT_STREQ(target, "f");
  ASSERT_EQ(::stat((work_ + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  // mv over an existing file, and over an existing empty directory.
  ASSERT_EQ(Sh("cd " + ShellQuote(work_) + " && echo new > g && mv g f && cat f && " +
                   "mkdir e && mv d e2 && mkdir empty && mv -T e2 empty && ls empty",
               &out),
            0)
      << out;
  EXPECT_EQ(out, "new\ninner\n");
  ASSERT_EQ(::stat((work_ + "/hard").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "the replaced file lost a link";
  EXPECT_EQ(Slurp(work_ + "/hard"), "data\n");
  // mv of a directory over a non-empty one fails, as on ext4.
  EXPECT_NE(Sh("cd " + ShellQuote(work_) + " && mkdir x && mv -T e empty", &out), 0);

  struct statvfs vfs;
  ASSERT_EQ(::statvfs(mnt().c_str(), &vfs), 0);
  EXPECT_GT(vfs.f_blocks, 0u);
  EXPECT_EQ(vfs.f_namemax, 255u);
  ASSERT_EQ(Sh("df -P " + ShellQuote(mnt()) + " | tail -1", &out), 0);
  EXPECT_NE(out.find("needlefs"), std::string::npos) << out;
}

TEST_F(FuseTest, HardLinksReadTheSameData) {
  const std::string a = work_ + "/a", b = work_ + "/b";
  std::string data(3 << 20, 'z');
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>(i / 4096);
  { std::ofstream(a, std::ios::binary) << data; }
  ASSERT_EQ(::link(a.c_str(), b.c_str()), 0);
  EXPECT_EQ(Slurp(b), data);
  ASSERT_EQ(::unlink(a.c_str()), 0);
  EXPECT_EQ(Slurp(b), data);
}

TEST_F(FuseTest, UnlinkedOpenFileKeepsItsData) {
  const std::string f = work_ + "/f";
  { std::ofstream(f) << "still here"; }
  int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::unlink(f.c_str()), 0);
  struct stat st;
  EXPECT_EQ(::stat(f.c_str(), &st), -1);
  char buf[32] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 10);
  EXPECT_STREQ(buf, "still here");
  ASSERT_EQ(::pwrite(fd, "STILL", 5, 0), 5);
  ASSERT_EQ(::fsync(fd), 0);
  EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 10);
  EXPECT_STREQ(buf, "STILL here");
  EXPECT_EQ(::close(fd), 0);
}

/// True once `cond()` holds, polling every 20 ms for at most `ms`.
template <typename Cond>
bool Eventually(Cond cond, int ms) {
  for (int waited = 0;; waited += 20) {
    if (cond()) return true;
    if (waited >= ms) return false;
    std::this_thread::sleep_for(20ms);
  }
}

// The second mount caches entries and attributes for 60 s, so only meta's
// change stream can make it see the first mount's changes within the 5 s the
// test allows. The stream is asynchronous (as NFS attribute caching is): a
// change shows up shortly after the call that made it returned, not in it.
TEST_F(FuseTest, TwoMountsSeeEachOthersChanges) {
  const std::string mnt2 = tmp_->path() + "/mnt2";
  auto second = StartMount(mnt2, {"-o", "entry_timeout=60,attr_timeout=60"});
  ASSERT_TRUE(second != nullptr);
  const std::string here = work_, there = mnt2 + "/" + name_;
  { std::ofstream(here + "/a") << "version 1"; }
  EXPECT_EQ(Slurp(there + "/a"), "version 1");
  // Overwritten in the first mount: the second reads the new data after close.
  { std::ofstream(here + "/a") << "version two"; }
  EXPECT_TRUE(Eventually([&] { return Slurp(there + "/a") == "version two"; }, 5000))
      << Slurp(there + "/a");
  // A rename in one is seen by the other.
  ASSERT_EQ(::rename((here + "/a").c_str(), (here + "/b").c_str()), 0);
  struct stat st;
  EXPECT_TRUE(Eventually([&] { return ::stat((there + "/a").c_str(), &st) == -1; }, 5000));
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(Slurp(there + "/b"), "version two");
  // And the other way round.
  { std::ofstream(there + "/c") << "from two"; }
  EXPECT_TRUE(Eventually([&] { return Slurp(here + "/c") == "from two"; }, 5000));
  StopMount(std::move(second), mnt2);
}

// Names that do not exist are kept by the kernel as negative entries (here
// for the 60 s entry timeout), so asking again does not reach the mount;
// another mount creating the name drops the entry through meta's change
// stream within the 5 s the test allows.
TEST_F(FuseTest, NegativeEntriesAreCachedAndDroppedWhenAnotherMountCreatesTheName) {
  const std::string mnt2 = tmp_->path() + "/mnt-neg";
  const std::string stats = tmp_->path() + "/neg-opstats.txt";
  auto second = StartMount(mnt2, {"-o", "entry_timeout=60,attr_timeout=60", "-opStats", stats});
  ASSERT_TRUE(second != nullptr);
  const std::string here = work_ + "/late", there = mnt2 + "/" + name_ + "/late";
  struct stat st;
  for (int i = 0; i < 200; ++i) ASSERT_EQ(::stat(there.c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  { std::ofstream(here) << "made elsewhere"; }
  EXPECT_TRUE(Eventually([&] { return ::stat(there.c_str(), &st) == 0; }, 5000))
      << "the negative entry outlived the other mount's create";
  EXPECT_EQ(Slurp(there), "made elsewhere");
  // Removed in the first mount: gone in the second too.
  ASSERT_EQ(::unlink(here.c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return ::stat(there.c_str(), &st) == -1; }, 5000));
  StopMount(std::move(second), mnt2);
  // The 200 stats of the missing name made a handful of LOOKUPs, not 200.
  std::ifstream in(stats);
  std::string op;
  long lookups = -1;
  while (in >> op) {
    if (op == "LOOKUP") {
      in >> lookups;
      break;
    }
  }
  ASSERT_GE(lookups, 0) << "no LOOKUP line in " << stats;
  EXPECT_LT(lookups, 50);
}

// The attributes a mount's own close or chmod returned answer the kernel's
// next GETATTR without meta (rsync stats every file it closed), but never
// hide another mount's change: dropped by the change stream, and an open
// asks meta (close-to-open).
TEST_F(FuseTest, OwnAttributesAnswerGetattrAndGiveWayToAnotherMountsChange) {
  const std::string mnt2 = tmp_->path() + "/mnt-kept";
  auto second = StartMount(mnt2, {"-o", "entry_timeout=60,attr_timeout=60"});
  ASSERT_TRUE(second != nullptr);
  const std::string there = mnt2 + "/" + name_ + "/kept", here = work_ + "/kept";
  auto meta_getattrs = [&] {
    return MetaMetric("needlefs_meta_frame_requests_total{method=\"GetAttr\",result=\"ok\"}");
  };
  struct stat st;
  {
    std::ofstream(there) << "12345";
  }
  ASSERT_EQ(::stat(there.c_str(), &st), 0);
  const double before = meta_getattrs();
  ASSERT_GE(before, 0);
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    // A write drops the kernel's attributes: the stat after the close asks
    // the mount, which has them from its own commit.
    { std::ofstream(there, std::ios::app) << "x"; }
    ASSERT_EQ(::stat(there.c_str(), &st), 0);
    ASSERT_EQ(st.st_size, 6 + i);
    ASSERT_EQ(::chmod(there.c_str(), i % 2 ? 0600 : 0640), 0);
    ASSERT_EQ(::stat(there.c_str(), &st), 0);
    ASSERT_EQ(st.st_mode & 07777, i % 2 ? 0600u : 0640u);
  }
  // Each append opens the file (close-to-open asks meta once); the stats
  // after the closes and chmods do not.
  EXPECT_LE(meta_getattrs() - before, kRounds + 3) << "GETATTRs after own changes went to meta";
  // Another mount's append: the second mount sees it once the change
  // stream tells it, although the kernel and the mount were told to keep
  // attributes for 60 s.
  { std::ofstream(here, std::ios::app) << "from the other mount"; }
  const off_t size = 6 + kRounds - 1 + 20;
  EXPECT_TRUE(
      Eventually([&] { return ::stat(there.c_str(), &st) == 0 && st.st_size == size; }, 5000))
      << "kept attributes hid another mount's change: size " << st.st_size;
  ASSERT_EQ(::chmod(here.c_str(), 0604), 0);
  EXPECT_TRUE(Eventually(
      [&] { return ::stat(there.c_str(), &st) == 0 && (st.st_mode & 07777) == 0604; }, 5000));
  // Close-to-open: after the other mount's close, an open here reads it all.
  { std::ofstream(here, std::ios::app) << "+more"; }
  EXPECT_EQ(Slurp(there).size(), static_cast<size_t>(size + 5));
  StopMount(std::move(second), mnt2);
}

// Files closed after one small write keep their bytes in meta (an inline
// chunk: one round trip to write, none to the volume server to read); bigger
// ones get blobs. Both read back the same through a cold mount, through
// appends and truncates, and a kill -9 of the mount after close loses none.
TEST_F(FuseTest, SmallFilesLiveInMetaAndReadBackEverywhere) {
  const std::vector<size_t> sizes{1, 100, 4096, 4097, 100'000};
  std::map<size_t, std::string> content;
  for (size_t n : sizes) {
    std::string data(n, '\0');
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<char>('a' + (i * 7 + n) % 26);
    content[n] = data;
    std::ofstream(work_ + "/f" + std::to_string(n), std::ios::binary) << data;
  }
  auto meta = MetaClient::Create(Addr(meta_.grpc_port));
  ASSERT_TRUE(meta.ok());
  const RequestContext root = RequestContext::Root();
  auto dir = (*meta)->Lookup(root, kRootInode, name_);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  for (size_t n : sizes) {
    auto f = (*meta)->Lookup(root, dir->ino, "f" + std::to_string(n));
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->size, n);
    auto chunks = (*meta)->ReadChunks(f->ino, 0, n);
    ASSERT_TRUE(chunks.ok()) << chunks.status().ToString();
    ASSERT_FALSE(chunks->empty());
    if (n <= 4096) {
      ASSERT_EQ(chunks->size(), 1u) << n;
      EXPECT_TRUE((*chunks)[0].is_inline()) << n << " bytes should be kept in meta";
      EXPECT_EQ((*chunks)[0].data, content[n]);
    } else {
      for (const Chunk& c : *chunks) EXPECT_FALSE(c.is_inline()) << n << " bytes in meta";
    }
  }
  // kill -9 of the mount: everything closed is there for the next one.
  const std::string mnt2 = tmp_->path() + "/mnt-inline";
  auto second = StartMount(mnt2);
  ASSERT_TRUE(second != nullptr);
  const std::string there = mnt2 + "/" + name_;
  { std::ofstream(there + "/late", std::ios::binary) << "closed before the kill"; }
  second->Kill(SIGKILL);
  second->Wait();
  Sh("umount -l " + ShellQuote(mnt2));
  second = StartMount(mnt2, {"-o", "inline_max=0"});
  ASSERT_TRUE(second != nullptr);
  EXPECT_EQ(Slurp(there + "/late"), "closed before the kill");
  for (size_t n : sizes) EXPECT_EQ(Slurp(there + "/f" + std::to_string(n)), content[n]) << n;
  // Appended to, an inline file keeps its first bytes; truncated, it is cut.
  {
    std::ofstream out(there + "/f100", std::ios::binary | std::ios::app);
    out << std::string(5000, 'z');
  }
  EXPECT_EQ(Slurp(work_ + "/f100"), content[100] + std::string(5000, 'z'));
  ASSERT_EQ(::truncate((work_ + "/f4096").c_str(), 10), 0);
  EXPECT_EQ(Slurp(there + "/f4096"), content[4096].substr(0, 10));
  // A mount with inline_max=0 writes small files as blobs.
  { std::ofstream(there + "/blob", std::ios::binary) << "tiny"; }
  auto b = (*meta)->Lookup(root, dir->ino, "blob");
  ASSERT_TRUE(b.ok());
  auto bc = (*meta)->ReadChunks(b->ino, 0, 4);
  ASSERT_TRUE(bc.ok());
  ASSERT_EQ(bc->size(), 1u);
  EXPECT_FALSE((*bc)[0].is_inline());
  StopMount(std::move(second), mnt2);
}

// tar and cp -a set a new file's times, owner and mode through its open
// descriptor before closing it. The mount sends those with the file's
// commit at close (one meta transaction): the same mount sees them at
// once, another mount after the close, and a kill -9 after the close loses
// none; a write after deferred times still leaves the write's mtime.
TEST_F(FuseTest, AttributesSetBeforeCloseArriveWithTheCommit) {
  const std::string mnt2 = tmp_->path() + "/mnt-attrs";
  auto second = StartMount(mnt2);
  ASSERT_TRUE(second != nullptr);
  const std::string there = mnt2 + "/" + name_;
  const timespec when[2] = {{1'000'000'000, 0}, {1'234'567'890, 123'000'000}};
  // As tar does: write, futimens, fchown, fchmod, close.
  {
    int fd = ::open((there + "/tarred").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "tar data", 8), 8);
    ASSERT_EQ(::futimens(fd, when), 0);
    ASSERT_EQ(::fchown(fd, 0, 0), 0);
    ASSERT_EQ(::fchmod(fd, 0751), 0);
    struct stat st;
    ASSERT_EQ(::fstat(fd, &st), 0);  // this mount sees them before the close
    EXPECT_EQ(st.st_mode & 07777, 0751u);
    EXPECT_EQ(st.st_mtim.tv_sec, when[1].tv_sec);
    ASSERT_EQ(::close(fd), 0);
  }
  // Over several chunks (1 MiB here), committed while still being written:
  // the times go with the last commit, not an earlier one.
  const std::string big(2'600'000, 'b');
  {
    int fd = ::open((there + "/big").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
    ASSERT_EQ(::futimens(fd, when), 0);
    ASSERT_EQ(::fchmod(fd, 0604), 0);
    ASSERT_EQ(::close(fd), 0);
  }
  // As tar does for another owner (as root): times, then a real chown,
  // which is not deferred: the times still follow the data.
  {
    int fd = ::open((there + "/owned").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "theirs", 6), 6);
    ASSERT_EQ(::futimens(fd, when), 0);
    ASSERT_EQ(::fchown(fd, 1234, 1234), 0);
    ASSERT_EQ(::fchmod(fd, 0644), 0);
    ASSERT_EQ(::close(fd), 0);
  }
  // Another process's chmod of a file the creator holds open reaches meta
  // at once; fchmod then fsync is durable before any close.
  auto meta = MetaClient::Create(Addr(meta_.grpc_port));
  ASSERT_TRUE(meta.ok());
  auto dir = (*meta)->Lookup(RequestContext::Root(), kRootInode, name_);
  ASSERT_TRUE(dir.ok());
  int held = ::open((there + "/held").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(held, 0);
  ASSERT_EQ(Sh("chmod 600 " + ShellQuote(there + "/held")), 0);
  auto h = (*meta)->Lookup(RequestContext::Root(), dir->ino, "held");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->mode & 07777, 0600u) << "another process's chmod was held back";
  ASSERT_EQ(::fchmod(held, 0604), 0);
  ASSERT_EQ(::fsync(held), 0);
  h = (*meta)->Lookup(RequestContext::Root(), dir->ino, "held");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->mode & 07777, 0604u) << "fsync left the chmod behind";
  ASSERT_EQ(::close(held), 0);
  // An empty file: the changes go at close without a commit.
  {
    int fd = ::open((there + "/empty").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fchmod(fd, 0640), 0);
    ASSERT_EQ(::close(fd), 0);
  }
  // Times set, then written: the write's mtime wins, as on a local disk.
  {
    int fd = ::open((there + "/later").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::futimens(fd, when), 0);
    ASSERT_EQ(::write(fd, "after", 5), 5);
    ASSERT_EQ(::close(fd), 0);
  }
  second->Kill(SIGKILL);  // after the closes: nothing may be lost
  second->Wait();
  Sh("umount -l " + ShellQuote(mnt2));
  // The main mount (and a new one) see everything.
  struct stat st;
  ASSERT_EQ(::stat((work_ + "/tarred").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  EXPECT_EQ(st.st_mtim.tv_sec, when[1].tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, when[1].tv_nsec);
  EXPECT_EQ(st.st_atim.tv_sec, when[0].tv_sec);
  EXPECT_EQ(st.st_size, 8);
  EXPECT_EQ(Slurp(work_ + "/tarred"), "tar data");
  ASSERT_EQ(::stat((work_ + "/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(st.st_mtim.tv_sec, when[1].tv_sec) << "a later commit's mtime won";
  EXPECT_EQ(st.st_size, static_cast<off_t>(big.size()));
  EXPECT_EQ(Slurp(work_ + "/big"), big);
  ASSERT_EQ(::stat((work_ + "/owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_mtim.tv_sec, when[1].tv_sec) << "the commit's mtime won over the times";
  ASSERT_EQ(::stat((work_ + "/empty").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::stat((work_ + "/later").c_str(), &st), 0);
  EXPECT_GT(st.st_mtim.tv_sec, when[1].tv_sec + 100'000'000) << "the write's mtime was lost";
  EXPECT_EQ(Slurp(work_ + "/later"), "after");
}

TEST_F(FuseTest, SqliteFromTwoProcessesLosesNoRow) {
  const std::string db = ShellQuote(work_ + "/t.db");
  std::string out;
  ASSERT_EQ(Sh("sqlite3 " + db + " 'CREATE TABLE t(p TEXT, i INTEGER)'", &out), 0) << out;
  // Two writers at once; each row its own transaction; locks keep them apart.
  const std::string writer =
      "(echo '.timeout 20000'; for i in $(seq 1 150); do echo \"INSERT INTO t VALUES('$P', $i);\"; "
      "done) | sqlite3 " +
      db;
  ASSERT_EQ(Sh("P=a; " + writer + " & P=b; " + writer + " & wait", &out), 0) << out;
  ASSERT_EQ(Sh("sqlite3 " + db +
                   " 'PRAGMA integrity_check' 'SELECT count(*), count(DISTINCT p||i) FROM t'",
               &out),
            0);
  EXPECT_EQ(out, "ok\n300|300\n");
}

/// needlefs_volume_syncs_total of the test's volume server (-1: unreadable).
double VolumeSyncs(uint16_t port) {
  std::string out;
  if (RunCommand("curl -s http://127.0.0.1:" + std::to_string(port) +
                     "/metrics | sed -n 's/^needlefs_volume_syncs_total //p'",
                 &out) != 0) {
    return -1;
  }
  return out.empty() ? 0 : std::stod(out);
}

TEST_F(FuseTest, KillNineOfTheMountThenRemountKeepsFsyncedData) {
  const std::string mnt3 = tmp_->path() + "/mnt3";
  auto m = StartMount(mnt3);
  ASSERT_TRUE(m != nullptr);
  const std::string f = mnt3 + "/" + name_ + "/synced";
  std::string out;
  const double syncs_before = VolumeSyncs(volume_.http_port);
  ASSERT_EQ(Sh("head -c 5000000 /dev/urandom > " + ShellQuote(tmp_->path() + "/synced") +
                   " && dd if=" + ShellQuote(tmp_->path() + "/synced") + " of=" + ShellQuote(f) +
                   " bs=64k conv=fsync status=none",
               &out),
            0)
      << out;
  // The mount uploads unstably; its fsync synced the volume it wrote to.
  EXPECT_GT(VolumeSyncs(volume_.http_port), syncs_before);
  ASSERT_TRUE(m->Kill(SIGKILL));
  m->Wait();
  struct stat st;
  EXPECT_EQ(::stat(f.c_str(), &st), -1);
  EXPECT_EQ(errno, ENOTCONN) << "a dead mount reports 'Transport endpoint is not connected'";
  ASSERT_EQ(Sh("umount -l " + ShellQuote(mnt3), &out), 0) << out;
  m = StartMount(mnt3);
  ASSERT_TRUE(m != nullptr);
  EXPECT_EQ(Slurp(f), Slurp(tmp_->path() + "/synced"));
  StopMount(std::move(m), mnt3);
}

TEST_F(FuseTest, ReadOnlyMountAndSubdirectoryRoot) {
  { std::ofstream(work_ + "/inside") << "sub"; }
  const std::string mnt4 = tmp_->path() + "/mnt4";
  auto m = StartMount(mnt4, {"-o", "ro,subdir=/" + name_});
  ASSERT_TRUE(m != nullptr);
  EXPECT_EQ(Slurp(mnt4 + "/inside"), "sub");
  EXPECT_EQ(::open((mnt4 + "/new").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink((mnt4 + "/inside").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  struct stat st;
  ASSERT_EQ(::stat(mnt4.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, 1u);
  StopMount(std::move(m), mnt4);
}

/// Resident memory of process `pid`, bytes (0 when unreadable).
uint64_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

/// 200,000 small files written in by 8 threads: the mount's memory stays
/// under its cap, 640 MiB = read cache (256 MiB) + write buffer (256 MiB) +
/// 128 MiB for the rest, and does not grow with the number of files (nothing
/// is kept per file once it is closed). Earlier tests of the suite may have
/// filled the caches already; the growth is measured from there.
TEST_F(FuseTest, MemoryStaysBoundedWhileCopyingInSmallFiles) {
  constexpr int kThreads = 8, kPerThread = 25'000;
  constexpr uint64_t kCapBytes = 640ull << 20;
  const pid_t pid = mount_->pid();
  const uint64_t before = RssBytes(pid);
  ASSERT_GT(before, 0u);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> peak{before};
  std::thread sampler([&] {
    while (!done) {
      uint64_t r = RssBytes(pid);
      uint64_t p = peak.load();
      while (r > p && !peak.compare_exchange_weak(p, r)) {
      }
      std::this_thread::sleep_for(200ms);
    }
  });
  std::atomic<int> failures{0};
  std::mutex first_error_mu;
  std::string first_error;  // the first failing call, with its errno
  auto fail = [&](const char* call, const std::string& path) {
    const int e = errno;
    std::lock_guard<std::mutex> lock(first_error_mu);
    if (failures++ == 0) first_error = std::string(call) + " " + path + ": " + std::strerror(e);
  };
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      const std::string dir = work_ + "/t" + std::to_string(t);
      if (::mkdir(dir.c_str(), 0755) != 0) {
        fail("mkdir", dir);
        return;
      }
      std::string data(1000, static_cast<char>('a' + t));
      for (int i = 0; i < kPerThread && failures < 10; ++i) {
        const std::string f = dir + "/" + std::to_string(i);
        int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) {
          fail("open", f);
          continue;
        }
        if (::write(fd, data.data(), data.size()) != 1000) fail("write", f);
        if (::close(fd) != 0) fail("close", f);
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  sampler.join();
  ASSERT_EQ(failures.load(), 0) << "first failure: " << first_error
                                << "\nmount log: " << mount_->LogTail();
  std::string out;
  ASSERT_EQ(Sh("find " + ShellQuote(work_) + " -type f | wc -l", &out), 0);
  EXPECT_EQ(out, std::to_string(kThreads * kPerThread) + "\n");
  RecordProperty("mount_rss_peak_mib", static_cast<int>(peak.load() >> 20));
  std::printf("mount RSS: %llu MiB before, %llu MiB peak while writing %d files\n",
              static_cast<unsigned long long>(before >> 20),
              static_cast<unsigned long long>(peak.load() >> 20), kThreads * kPerThread);
  EXPECT_LT(peak.load(), kCapBytes);
  // Small files fill neither cache: nothing may grow with the file count.
  EXPECT_LT(peak.load() - before, 64ull << 20) << "memory grew with the number of files";
}

/// mount-tools/mount.needlefs as mount(8) runs it: it daemonizes, returns
/// once the mount works, and `umount` ends the daemon cleanly.
TEST_F(FuseTest, MountHelperDaemonizesAndUmountStopsIt) {
  { std::ofstream(work_ + "/hello") << "via helper"; }
  const std::string mp = tmp_->path() + "/mnt5", pidfile = tmp_->path() + "/mnt5.pid";
  std::filesystem::create_directories(mp);
  std::string out;
  const std::string helper = std::string(NEEDLEFS_SOURCE_DIR) + "/mount-tools/mount.needlefs";
  ASSERT_EQ(
      Sh("NEEDLEFS_BIN=" + ShellQuote(NeedlefsBinary()) + " " + helper + " " +
             ShellQuote(Addr(meta_.grpc_port) + ":/" + name_) + " " + ShellQuote(mp) +
             " -o _netdev,master=" + Addr(master_.http_port) + ",pidfile=" + ShellQuote(pidfile),
         &out),
      0)
      << out;
  // Usable as soon as the helper returned.
  EXPECT_EQ(Slurp(mp + "/hello"), "via helper");
  const pid_t pid = static_cast<pid_t>(std::atoi(Slurp(pidfile).c_str()));
  ASSERT_GT(pid, 1);
  ASSERT_EQ(Sh("umount " + ShellQuote(mp), &out), 0) << out;
  bool exited = false;
  for (int i = 0; i < 100 && !exited; ++i) {
    exited = ::kill(pid, 0) != 0;
    if (!exited) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(exited) << "the mount daemon outlived umount";
  if (!exited) ::kill(pid, SIGKILL);
  struct stat st;
  EXPECT_NE(::stat(pidfile.c_str(), &st), 0) << "pid file left behind";
  // A bad spec fails with a message, and nothing is mounted.
  EXPECT_NE(Sh("NEEDLEFS_BIN=" + ShellQuote(NeedlefsBinary()) + " " + helper + " " +
                   ShellQuote(Addr(meta_.grpc_port) + ":/no-such-dir") + " " + ShellQuote(mp) +
                   " -o master=" + Addr(master_.http_port),
               &out),
            0);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
}

// `needlefs mount ... DIR` with a relative DIR mounts the caller's DIR, and
// a relative --opStats file is the caller's too (the daemon runs in /).
TEST_F(FuseTest, ARelativeMountpointIsTheCallersDirectory) {
  const std::string base = tmp_->path() + "/rel";
  std::filesystem::create_directories(base + "/here");
  std::string out;
  ASSERT_EQ(Sh("cd " + ShellQuote(base) + " && " + ShellQuote(NeedlefsBinary()) + " mount -meta " +
                   Addr(meta_.grpc_port) + " -master " + Addr(master_.http_port) +
                   " -opStats stats.txt here",
               &out),
            0)
      << out;
  const std::string mounts = Slurp("/proc/mounts");
  EXPECT_NE(mounts.find(" " + base + "/here fuse.needlefs"), std::string::npos) << mounts;
  EXPECT_TRUE(std::filesystem::exists(base + "/here/" + name_));
  ASSERT_EQ(Sh("umount " + ShellQuote(base + "/here"), &out), 0) << out;
  EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(base + "/stats.txt"); }, 5000));
}

/// mount(8) itself: `mount -t needlefs SPEC MOUNTPOINT -o ...` and an fstab
/// line (`mount -T FILE MOUNTPOINT`, util-linux's alternative fstab) run
/// mount-tools/mount.needlefs as /sbin/mount.needlefs; `umount` ends it.
/// The test links the helper there only when nothing is installed (and
/// removes its link after); it is skipped when another helper is.
TEST_F(FuseTest, MountCommandAndFstabLineMountThroughTheHelper) {
  const std::string link = "/sbin/mount.needlefs";
  const std::string helper = std::string(NEEDLEFS_SOURCE_DIR) + "/mount-tools/mount.needlefs";
  std::error_code ec;
  bool linked = false;
  if (!std::filesystem::exists(std::filesystem::symlink_status(link, ec))) {
    std::filesystem::create_symlink(helper, link, ec);
    ASSERT_FALSE(ec) << "cannot link " << link << ": " << ec.message();
    linked = true;
  } else if (std::filesystem::read_symlink(link, ec) != helper) {
    GTEST_SKIP() << link << " is another helper; not replacing it";
  }
  const std::string mp = tmp_->path() + "/mnt8", pidfile = tmp_->path() + "/mnt8.pid";
  std::filesystem::create_directories(mp);
  auto end_mount = [&] {
    std::string ignored;
    const pid_t pid = static_cast<pid_t>(std::atoi(Slurp(pidfile).c_str()));
    Sh("umount " + ShellQuote(mp) + " 2>/dev/null || umount -l " + ShellQuote(mp) + " 2>/dev/null",
       &ignored);
    for (int i = 0; i < 100 && pid > 1 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(100ms);
    }
    if (pid > 1 && ::kill(pid, 0) == 0) {
      ADD_FAILURE() << "the mount daemon outlived umount";
      ::kill(pid, SIGKILL);
    }
    std::filesystem::remove(pidfile, ec);
  };
  struct Cleanup {
    std::function<void()> f;
    ~Cleanup() { f(); }
  } cleanup{[&] {
    end_mount();
    if (linked) std::filesystem::remove(link, ec);
  }};
  { std::ofstream(work_ + "/hello") << "via mount(8)"; }
  const std::string env = "NEEDLEFS_BIN=" + ShellQuote(NeedlefsBinary()) + " ";
  const std::string spec = Addr(meta_.grpc_port) + ":/" + name_;
  const std::string opts = "_netdev,master=" + Addr(master_.http_port) + ",pidfile=" + pidfile;
  std::string out;
  ASSERT_EQ(Sh(env + "mount -t needlefs " + ShellQuote(spec) + " " + ShellQuote(mp) + " -o " +
                   ShellQuote(opts),
               &out),
            0)
      << out;
  EXPECT_EQ(Slurp(mp + "/hello"), "via mount(8)");
  end_mount();

  const std::string fstab = tmp_->path() + "/fstab";
  { std::ofstream(fstab) << spec << " " << mp << " needlefs " << opts << " 0 0\n"; }
  ASSERT_EQ(Sh(env + "mount -T " + ShellQuote(fstab) + " " + ShellQuote(mp), &out), 0) << out;
  EXPECT_EQ(Slurp(mp + "/hello"), "via mount(8)");
  ASSERT_EQ(Sh("findmnt -n -o FSTYPE " + ShellQuote(mp), &out), 0);
  EXPECT_EQ(out, "fuse.needlefs\n");
}

}  // namespace
}  // namespace needlefs::integration
