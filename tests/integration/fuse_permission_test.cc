// POSIX ownership and mode rules through the real kernel FUSE mount, as
// users other than root: a mount started by root with no permission options
// (root's defaults: allow_other and default_permissions), and each rule
// tried by a process that setpriv(1) runs under another uid, gid and group
// list. The processes are python3 snippets that call os.* and print "OK" or
// the errno name of the failure, so each assertion names the exact errno.
// docs/fuse.md ("Permission rules") lists the rules and where each is
// enforced.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "integration/fuse_fixture.h"
#include "integration/process.h"

namespace needlefs::integration {
namespace {

/// Defined before every snippet: T(f, *args) calls f and returns "OK" or the
/// errno name (EACCES, EPERM, ...); P(*words) prints them on one line; M is
/// the mountpoint. Paths in snippets are relative to the test's directory.
constexpr char kPrelude[] = R"(import errno, os, sys, time
os.umask(0o022)
M = sys.argv[1]
def T(f, *a):
    try:
        f(*a)
        return 'OK'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def P(*words):
    print(' '.join(str(w) for w in words), flush=True)
def Touch(p, mode=0o644):
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, mode))
def Mode(p):
    return oct(os.stat(p).st_mode & 0o7777)
)";

class FusePermissionTest : public FuseFixture<FusePermissionTest> {
 protected:
  static void SetUpTestSuite() {
    StartCluster("needlefs-fuse-perm-test-", {});
    // mkdtemp made the temp dir 0700: other users must reach the mountpoint.
    if (tmp_ != nullptr && ::chmod(tmp_->path().c_str(), 0755) != 0) {
      ADD_FAILURE() << "chmod " << tmp_->path();
    }
  }
  static void TearDownTestSuite() { StopCluster(); }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FuseFixture::SetUp());
    ASSERT_EQ(::chmod(work_.c_str(), 0777), 0) << work_;
    std::string out;
    ASSERT_EQ(AsUserSh(1001, 1001, "test -w " + ShellQuote(work_), &out), 0)
        << "uid 1001 cannot write " << work_
        << " (a mount without allow_other? $TMPDIR not searchable by all?) " << out;
  }

  /// Runs `cmd` with /bin/sh in work_ as `uid`:`gid`, with supplementary
  /// groups `groups` ("1005,1006"; none when empty). Returns the exit code,
  /// stdout and stderr in *out.
  int AsUserSh(uid_t uid, gid_t gid, const std::string& cmd, std::string* out,
               const std::string& groups = "") {
    const std::string ids = "--reuid=" + std::to_string(uid) + " --regid=" + std::to_string(gid) +
                            (groups.empty() ? " --clear-groups" : " --groups=" + groups);
    return Sh("cd " + ShellQuote(work_) + " && setpriv " + ids + " -- sh -c " + ShellQuote(cmd),
              out);
  }

  /// Runs python `code` (after kPrelude) as AsUserSh does; returns what it
  /// printed without the last newline, with "[exit N]" added on failure.
  std::string Py(uid_t uid, gid_t gid, const std::string& code, const std::string& groups = "") {
    std::string out;
    const int rc = AsUserSh(
        uid, gid,
        "exec /usr/bin/python3 -I -c " + ShellQuote(kPrelude + code) + " " + ShellQuote(mnt()),
        &out, groups);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    if (rc != 0) out += "[exit " + std::to_string(rc) + "]";
    return out;
  }
  std::string Root(const std::string& code) { return Py(0, 0, code); }
};

TEST_F(FusePermissionTest, RootMountServesOtherUsers) {
  ASSERT_EQ(Root("os.mkdir('pub', 0o755); open('pub/f', 'w').write('hello')\n"
                 "os.chmod('pub/f', 0o644); P(Mode('pub'), Mode('pub/f'))"),
            "0o755 0o644");
  std::string out;
  ASSERT_EQ(AsUserSh(1001, 1001, "ls " + ShellQuote(mnt()) + " && echo -- && ls pub", &out), 0)
      << out;
  EXPECT_NE(out.find(name_ + "\n"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\n--\nf\n")) << out;
  EXPECT_EQ(
      Py(1001, 1001, "P(open('pub/f').read(), T(open, 'pub/f', 'a'), T(os.truncate, 'pub/f', 0))"),
      "hello EACCES EACCES");
}

TEST_F(FusePermissionTest, ExecuteOnlyProgramRuns) {
  // execve opens with __FMODE_EXEC: that needs x, not r (a 0711 program
  // runs; reading it is still EACCES).
  std::string out;
  ASSERT_EQ(Sh("cp /bin/true " + ShellQuote(work_ + "/prog") + " && chmod 0711 " +
                   ShellQuote(work_ + "/prog"),
               &out),
            0)
      << out;
  EXPECT_EQ(AsUserSh(1001, 1001, "./prog && echo ran", &out), 0) << out;
  EXPECT_EQ(out, "ran\n");
  EXPECT_EQ(Py(1001, 1001, "P(T(open, 'prog', 'rb'))"), "EACCES");
  ASSERT_EQ(Sh("chmod 0644 " + ShellQuote(work_ + "/prog"), &out), 0) << out;
  EXPECT_NE(AsUserSh(1001, 1001, "./prog", &out), 0) << "ran without x";
}

TEST_F(FusePermissionTest, SearchPermissionOnDirectoryIsEnforcedEvenWhenCached) {
  ASSERT_EQ(Root("os.mkdir('d', 0o755); Touch('d/f'); os.chmod('d/f', 0o666); P(Mode('d/f'))"),
            "0o666");
  // The kernel (and the mount's directory cache) now hold d/f.
  ASSERT_EQ(Py(1001, 1001, "P(T(os.stat, 'd/f'), T(os.stat, 'd/f'))"), "OK OK");
  ASSERT_EQ(Root("os.chmod('d', 0o700); P(Mode('d'))"), "0o700");
  EXPECT_EQ(
      Py(1001, 1001,
         "P(T(os.stat, 'd/f'), T(os.chmod, 'd/f', 0o777), T(os.chown, 'd/f', 1001, 1001),\n"
         "  T(os.truncate, 'd/f', 0), T(os.open, 'd/f', os.O_RDONLY), T(os.link, 'd/f', 'g'))"),
      "EACCES EACCES EACCES EACCES EACCES EACCES");
  // Nothing of the refusal sticks once search is allowed again.
  ASSERT_EQ(Root("os.chmod('d', 0o711); P(Mode('d'))"), "0o711");
  EXPECT_EQ(Py(1001, 1001, "P(T(os.stat, 'd/f'), T(os.listdir, 'd'))"), "OK EACCES");
}

TEST_F(FusePermissionTest, DirectoryOutOfStickyDirNeedsWriteOnItself) {
  ASSERT_EQ(Root("for d, m in (('tmp', 0o1777), ('shared', 0o777), ('other', 0o777)):\n"
                 "    os.mkdir(d); os.chmod(d, m)\n"
                 "P(Mode('tmp'), Mode('shared'), Mode('other'))"),
            "0o1777 0o777 0o777");
  ASSERT_EQ(Py(1001, 1001, "os.mkdir('mine', 0o755); P(Mode('mine'))"), "0o755");
  ASSERT_EQ(Py(1002, 1002, "os.mkdir('tmp/x', 0o755); os.mkdir('shared/y', 0o755); P('OK')"), "OK");
  // Sticky: 1001 owns neither tmp/x nor tmp. Not sticky: moving y to
  // another parent rewrites its "..", which needs write permission on y.
  EXPECT_EQ(Py(1001, 1001,
               "P(T(os.rename, 'tmp/x', 'mine/x'), T(os.rename, 'shared/y', 'other/y'),\n"
               "  T(os.rename, 'shared/y', 'shared/z'))"),
            "EPERM EACCES OK");
  EXPECT_EQ(Root("P(sorted(os.listdir('tmp')), sorted(os.listdir('shared')), os.listdir('other'),\n"
                 "  os.listdir('mine'))"),
            "['x'] ['z'] [] []");
}

TEST_F(FusePermissionTest, OpenOfFifoOrDirectoryFollowsMode) {
  ASSERT_EQ(Root("os.mkfifo('fifo', 0o600); os.chmod('fifo', 0o600)\n"
                 "os.mkdir('priv', 0o700); P(Mode('fifo'), Mode('priv'))"),
            "0o600 0o700");
  const std::string code =
      "P(T(os.open, 'fifo', os.O_RDONLY | os.O_NONBLOCK), T(os.open, 'priv', os.O_RDONLY),\n"
      "  T(os.listdir, 'priv'))";
  EXPECT_EQ(Py(1001, 1001, code), "EACCES EACCES EACCES");
  EXPECT_EQ(Root(code), "OK OK OK");
}

TEST_F(FusePermissionTest, NonOwnerChownToCurrentOwnerIsEperm) {
  ASSERT_EQ(Root("Touch('f'); os.chmod('f', 0o666); P(Mode('f'))"), "0o666");
  EXPECT_EQ(Py(1001, 1001, "P(T(os.chown, 'f', 0, 0), T(os.chown, 'f', -1, 0))"), "EPERM EPERM");
  // The owner may give the file to its own gid or a group it is in, and to
  // nobody else.
  EXPECT_EQ(Py(1001, 1001,
               "Touch('g'); P(T(os.chown, 'g', -1, 1001), T(os.chown, 'g', -1, 1006),\n"
               "  T(os.chown, 'g', 1002, -1), T(os.chown, 'g', 1001, 1001))"),
            "OK EPERM EPERM OK");
  EXPECT_EQ(Py(1001, 1001,
               "P(T(os.chown, 'g', -1, 1005)); st = os.stat('g'); P(st.st_uid, st.st_gid)", "1005"),
            "OK\n1001 1005");
  EXPECT_EQ(Root("st = os.stat('f'); P(st.st_uid, st.st_gid)"), "0 0");
}

TEST_F(FusePermissionTest, NonOwnerWriteClearsSetuidAndSetgid) {
  ASSERT_EQ(Root("Touch('f', 0o777); os.chmod('f', 0o6777); P(Mode('f'))"), "0o6777");
  EXPECT_EQ(
      Py(1001, 1001, "fd = os.open('f', os.O_WRONLY); P(os.write(fd, b'data')); os.close(fd)"),
      "4");
  // Setgid goes too, because group-exec is set (Linux).
  EXPECT_EQ(Root("st = os.stat('f'); P(Mode('f'), st.st_uid, open('f').read())"), "0o777 0 data");
}

TEST_F(FusePermissionTest, FtruncateFollowsTheOpenDescriptor) {
  EXPECT_EQ(
      Py(1001, 1001,
         "fd = os.open('f', os.O_RDWR | os.O_CREAT, 0o644); os.write(fd, b'abcdef')\n"
         "os.fchmod(fd, 0o444)\n"
         "P(Mode('f'), T(os.ftruncate, fd, 3), T(os.truncate, 'f', 1), os.fstat(fd).st_size)\n"
         "os.close(fd)"),
      "0o444 OK EACCES 3");
  EXPECT_EQ(Root("P(open('f').read())"), "abc");
}

TEST_F(FusePermissionTest, LongNameIsENAMETOOLONG) {
  ASSERT_EQ(Root("[Touch('f%d' % i) for i in range(5)]; P(len(os.listdir('.')))"), "5");
  // Listed twice and missed twice: the mount's directory cache answers
  // lookups in this directory, and must not say ENOENT for a long name.
  const std::string code =
      "for i in range(2): os.listdir('.')\n"
      "miss = [T(os.stat, 'missing%d' % i) for i in range(3)]\n"
      "n256, n255 = 'n' * 256, ('u%d' % os.getuid()).ljust(255, 'x')\n"
      "P(*miss, T(os.stat, n256), T(os.open, n256, os.O_CREAT | os.O_WRONLY, 0o644),\n"
      "  T(os.mkdir, n256), T(Touch, n255), T(os.stat, n255), n255 in os.listdir('.'))";
  EXPECT_EQ(Py(1001, 1001, code),
            "ENOENT ENOENT ENOENT ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG OK OK True");
  EXPECT_EQ(Root(code), "ENOENT ENOENT ENOENT ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG OK OK True");
}

TEST_F(FusePermissionTest, ChmodChownUtimesByOwnerOthersRoot) {
  EXPECT_EQ(Py(1001, 1001,
               "Touch('f'); P(T(os.chmod, 'f', 0o600), T(os.utime, 'f', (1, 2)), Mode('f'),\n"
               "  os.stat('f').st_mtime)"),
            "OK OK 0o600 2.0");
  // Explicit times and chmod are the owner's; "now" needs write permission.
  EXPECT_EQ(Py(1002, 1002,
               "P(T(os.chmod, 'f', 0o666), T(os.utime, 'f', (5, 6)), T(os.utime, 'f', None))"),
            "EPERM EPERM EACCES");
  ASSERT_EQ(Root("P(T(os.chmod, 'f', 0o666), Mode('f'))"), "OK 0o666");
  EXPECT_EQ(Py(1002, 1002,
               "P(T(os.utime, 'f', None), T(os.utime, 'f', (5, 6)), T(os.chmod, 'f', 0o777),\n"
               "  os.stat('f').st_mtime > time.time() - 600)"),
            "OK EPERM EPERM True");
  EXPECT_EQ(Py(1001, 1001, "P(T(os.utime, 'f', (3, 4)), os.stat('f').st_mtime, Mode('f'))"),
            "OK 4.0 0o666");
}

TEST_F(FusePermissionTest, ChmodByNonMemberOwnerClearsSetgid) {
  ASSERT_EQ(Py(1001, 1001, "Touch('f'); Touch('g'); P(Mode('f'))"), "0o644");
  ASSERT_EQ(Root("os.chown('f', -1, 1005); os.chown('g', -1, 1005); P(os.stat('f').st_gid)"),
            "1005");
  EXPECT_EQ(Py(1001, 1001, "P(T(os.chmod, 'f', 0o2755), Mode('f'), os.stat('f').st_gid)"),
            "OK 0o755 1005");
  // A member of the group keeps the bit.
  EXPECT_EQ(Py(1001, 1001, "P(T(os.chmod, 'g', 0o2755), Mode('g'))", "1005"), "OK 0o2755");
}

TEST_F(FusePermissionTest, SetgidDirectoryInheritsGroup) {
  ASSERT_EQ(Root("os.mkdir('sg'); os.chown('sg', 0, 1005); os.chmod('sg', 0o2777); P(Mode('sg'))"),
            "0o2777");
  EXPECT_EQ(
      Py(1001, 1001,
         "Touch('sg/f'); os.mkdir('sg/sub', 0o755); Touch('plain')\n"
         "f, s = os.stat('sg/f'), os.stat('sg/sub')\n"
         "P(f.st_uid, f.st_gid, s.st_uid, s.st_gid, Mode('sg/sub'), os.stat('plain').st_gid)"),
      "1001 1005 1001 1005 0o2755 1001");
}

TEST_F(FusePermissionTest, UnlinkInStickyDirectory) {
  ASSERT_EQ(
      Root("os.mkdir('st'); os.chown('st', 1003, 1003); os.chmod('st', 0o1777); P(Mode('st'))"),
      "0o1777");
  ASSERT_EQ(Py(1001, 1001, "Touch('st/a'); P('OK')"), "OK");
  ASSERT_EQ(Py(1002, 1002, "Touch('st/b', 0o666); Touch('st/c', 0o666); P('OK')"), "OK");
  EXPECT_EQ(Py(1001, 1001, "P(T(os.unlink, 'st/b'), T(os.unlink, 'st/a'))"), "EPERM OK");
  EXPECT_EQ(Py(1003, 1003, "P(T(os.unlink, 'st/b'))"), "OK");
  EXPECT_EQ(Root("P(T(os.unlink, 'st/c'), os.listdir('st'))"), "OK []");
}

TEST_F(FusePermissionTest, NlinkAndCtimeUpdates) {
  EXPECT_EQ(
      Py(1001, 1001,
         "Touch('f'); os.mkdir('d', 0o755); S = os.stat; nap = lambda: time.sleep(0.05)\n"
         "a = S('f'); nap(); os.link('f', 'g'); b = S('f'); nap(); os.unlink('g'); c = S('f')\n"
         "d0 = S('d').st_nlink; os.mkdir('d/sub'); d1 = S('d').st_nlink\n"
         "nap(); os.rename('f', 'd/f2'); e = S('d/f2')\n"
         "P(a.st_nlink, b.st_nlink, c.st_nlink, e.st_nlink, d1 - d0,\n"
         "  b.st_ctime_ns > a.st_ctime_ns, c.st_ctime_ns > b.st_ctime_ns,\n"
         "  e.st_ctime_ns > c.st_ctime_ns)"),
      "1 2 1 1 1 True True True");
}

TEST_F(FusePermissionTest, PathMaxIsENAMETOOLONG) {
  // 19 components of 200 bytes (3,818) fit in PATH_MAX (4,096); 21 do not.
  EXPECT_EQ(Py(1001, 1001,
               "fit, over = '/'.join(['x' * 200] * 19), '/'.join(['x' * 200] * 21)\n"
               "P(len(over) > 4096, T(os.makedirs, fit), T(os.stat, fit), T(os.stat, over),\n"
               "  T(os.mkdir, over))"),
            "True OK OK ENAMETOOLONG ENAMETOOLONG");
}

// Attribute changes of a file its creator still holds open are sent with
// the file's commit (docs/fuse.md, "Attributes set before close"): a
// non-root owner's times and mode arrive as set; a set-id mode bit, which
// meta may clear, is not held back, so meta's rule applies (the set-group-ID
// bit goes when the owner is not in the file's group: here the group of a
// setgid directory); a chgrp to a group she is not in reaches meta and its
// EPERM, one to her own group passes.
TEST_F(FusePermissionTest, AnOwnersChangesBeforeCloseFollowMetasRules) {
  ASSERT_EQ(Root("os.mkdir('sg'); os.chown('sg', 0, 3000); os.chmod('sg', 0o2777)\n"
                 "P(Mode('sg'), os.stat('sg').st_gid)"),
            "0o2777 3000");
  EXPECT_EQ(Py(1001, 1001,
               "fd = os.open('mine', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
               "os.write(fd, b'data'); os.utime(fd, ns=(10**18, 1234 * 10**15))\n"
               "os.fchmod(fd, 0o640); P(oct(os.fstat(fd).st_mode & 0o7777)); os.close(fd)\n"
               "fd = os.open('sg/f', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
               "os.write(fd, b'x'); os.fchmod(fd, 0o2640); os.close(fd)\n"
               "fd = os.open('sg/g', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
               "P(T(os.fchown, fd, -1, 2000), T(os.fchown, fd, -1, 1001)); os.close(fd)\n"
               "P(open('mine').read(), os.stat('sg/g').st_gid)"),
            "0o640\nEPERM OK\ndata 1001");
  // As another user sees them after the closes.
  EXPECT_EQ(Py(1002, 1002,
               "st = os.stat('mine'); P(Mode('mine'), st.st_mtime_ns, st.st_uid)\n"
               "P(Mode('sg/f'), os.stat('sg/f').st_gid)"),
            "0o640 1234000000000000000 1001\n0o640 3000");
}

TEST_F(FusePermissionTest, WriteNeedsPermissionAtOpenNotAfter) {
  // Run as root: a child turns into uid 1001 and opens; the parent (root)
  // chmods 0000 in between; then the child writes through its descriptor.
  EXPECT_EQ(
      Root("a, b = os.pipe(); c, d = os.pipe()\n"
           "if os.fork() == 0:\n"
           "    os.close(a); os.close(d); os.setgroups([])\n"
           "    os.setresgid(1001, 1001, 1001); os.setresuid(1001, 1001, 1001)\n"
           "    fd = os.open('f', os.O_WRONLY | os.O_CREAT, 0o644)\n"
           "    os.write(b, b'1'); os.read(c, 1)\n"
           "    P(T(os.write, fd, b'after chmod'), T(os.close, fd), T(os.open, 'f', os.O_WRONLY))\n"
           "    os._exit(0)\n"
           "os.close(b); os.close(c); os.read(a, 1); os.chmod('f', 0)\n"
           "T(os.write, d, b'1'); os.wait()\n"
           "st = os.stat('f'); P(Mode('f'), st.st_uid, open('f').read())"),
      "OK OK EACCES\n0o0 1001 after chmod");
}

}  // namespace
}  // namespace needlefs::integration
