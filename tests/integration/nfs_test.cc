// Integration tests of `needlefs nfsd` through libnfs (a real NFSv3 client
// in this process) and raw RPC records: a cluster of real processes on
// loopback (master, volume server, meta), one nfsd, and calls of every
// procedure with their results and error codes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nfsc/libnfs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/http.h"
#include "integration/fuse_fixture.h"
#include "integration/process.h"

namespace needlefs::integration {
namespace {

/// The port after `key=IP:` in a ready line.
uint16_t PortIn(const std::string& line, const std::string& key) {
  size_t at = line.find(key + "=");
  if (at == std::string::npos) return 0;
  size_t colon = line.find(':', at);
  return static_cast<uint16_t>(std::stoi(line.substr(colon + 1)));
}

/// One `needlefs nfsd` and its ports.
struct Nfsd {
  std::unique_ptr<ChildProcess> process;
  uint16_t nfs = 0, mount = 0, portmap = 0, http = 0;
};

/// The primary nfsd's exports: export 0 "/" for loopback clients, export 1
/// "/private" for 10.0.0.0/8 only, export 2 "/readonly" read-only.
constexpr const char* kExports = R"(exports:
  - path: /
    clients: [127.0.0.0/8, "::1"]
    squash: no_root_squash
  - path: /private
    clients: [10.0.0.0/8]
  - path: /readonly
    clients: [127.0.0.1]
    access: ro
    squash: no_root_squash
)";

/// Another nfsd's exports over the same cluster: "/private" (export 1)
/// open to loopback.
constexpr const char* kOtherExports = R"(exports:
  - path: /
    clients: ["*"]
    squash: no_root_squash
  - path: /private
    clients: [127.0.0.1]
    squash: no_root_squash
)";

/// Runs against one cluster of real processes with a FUSE mount of it
/// (FuseFixture) and an nfsd serving kExports with the built-in
/// portmapper. Each test works in its own directory, "/<test name>" over
/// NFS and work_ in the FUSE mount.
class NfsTest : public FuseFixture<NfsTest> {
 protected:
  static void SetUpTestSuite() {
    StartCluster("needlefs-nfs-test-", {});
    if (::testing::Test::HasFatalFailure()) return;
    nfsd_ = new Nfsd(StartNfsd(kExports));
  }

  static void TearDownTestSuite() {
    delete nfsd_;
    nfsd_ = nullptr;
    StopCluster();
  }

  /// `needlefs nfsd` with `exports` (YAML written next to its log), on free
  /// loopback ports, with the built-in portmapper and /metrics.
  static Nfsd StartNfsd(const std::string& exports) {
    Nfsd d;
    static int n = 0;
    const std::string file = tmp_->path() + "/exports" + std::to_string(++n) + ".yaml";
    std::ofstream(file) << exports;
    d.process = std::make_unique<ChildProcess>(std::vector<std::string>{NeedlefsBinary(),
                                                                        "nfsd",
                                                                        "-meta",
                                                                        Addr(meta_.grpc_port),
                                                                        "-master",
                                                                        Addr(master_.http_port),
                                                                        "-ip",
                                                                        "127.0.0.1",
                                                                        "-port",
                                                                        "0",
                                                                        "-mountPort",
                                                                        "0",
                                                                        "-portmap",
                                                                        "true",
                                                                        "-portmapPort",
                                                                        "0",
                                                                        "-httpPort",
                                                                        "0",
                                                                        "-exports",
                                                                        file,
                                                                        "-log.level",
                                                                        "warn"},
                                               tmp_->path());
    std::string error;
    if (!d.process->Start(&error)) {
      ADD_FAILURE() << error;
      return d;
    }
    auto line = d.process->WaitForLine("needlefs nfsd ready", 15'000);
    if (!line) {
      ADD_FAILURE() << "nfsd did not start: " << d.process->LogTail();
      return d;
    }
    d.nfs = PortIn(*line, "nfs");
    d.mount = PortIn(*line, "mount");
    d.portmap = PortIn(*line, "portmap");
    d.http = PortIn(*line, "http");
    return d;
  }

  void SetUp() override {
    ASSERT_NE(nfsd_, nullptr);
    ASSERT_NE(nfsd_->nfs, 0) << "the suite's nfsd did not start";
    FuseFixture::SetUp();  // makes the test's directory
    if (HasFatalFailure()) return;
    dir_ = "/" + name_;
    nfs_port_ = nfsd_->nfs;
    mount_port_ = nfsd_->mount;
    portmap_port_ = nfsd_->portmap;
    http_port_ = nfsd_->http;
    nfs_ = Connect(0, 0);
    ASSERT_NE(nfs_, nullptr);
    ASSERT_EQ(nfs_chmod(nfs_, dir_.c_str(), 0777), 0) << nfs_get_error(nfs_);
  }

  void TearDown() override {
    if (nfs_) nfs_destroy_context(nfs_);
  }

  /// A libnfs client mounted on "/" as `uid`/`gid` (AUTH_SYS).
  static nfs_context* Connect(int uid, int gid) {
    nfs_context* n = nfs_init_context();
    if (!n) return nullptr;
    // Both ports given: libnfs asks no portmapper.
    const std::string url = "nfs://127.0.0.1/?version=3&nfsport=" + std::to_string(nfsd_->nfs) +
                            "&mountport=" + std::to_string(nfsd_->mount) +
                            "&uid=" + std::to_string(uid) + "&gid=" + std::to_string(gid);
    nfs_url* u = nfs_parse_url_dir(n, url.c_str());
    if (!u) {
      ADD_FAILURE() << "nfs_parse_url_dir " << url << ": " << nfs_get_error(n);
      nfs_destroy_context(n);
      return nullptr;
    }
    nfs_set_uid(n, uid);
    nfs_set_gid(n, gid);
    const int rc = nfs_mount(n, u->server, u->path);
    nfs_destroy_url(u);
    if (rc != 0) {
      ADD_FAILURE() << "nfs_mount: " << nfs_get_error(n);
      nfs_destroy_context(n);
      return nullptr;
    }
    return n;
  }

  std::string P(const std::string& name) const { return dir_ + "/" + name; }

  /// Writes `data` to a new file `name` (mode 0644).
  void WriteFile(const std::string& name, const std::string& data, int mode = 0644) {
    nfsfh* fh = nullptr;
    ASSERT_EQ(nfs_creat(nfs_, P(name).c_str(), mode, &fh), 0) << nfs_get_error(nfs_);
    ASSERT_EQ(nfs_write(nfs_, fh, data.size(), const_cast<char*>(data.data())),
              static_cast<int>(data.size()))
        << nfs_get_error(nfs_);
    ASSERT_EQ(nfs_close(nfs_, fh), 0) << nfs_get_error(nfs_);
  }

  std::string ReadFile(nfs_context* n, const std::string& path) {
    nfsfh* fh = nullptr;
    if (nfs_open(n, path.c_str(), O_RDONLY, &fh) != 0)
      return "<open: " + std::string(nfs_get_error(n)) + ">";
    std::string out;
    char buf[65536];
    for (;;) {
      int got = nfs_read(n, fh, sizeof(buf), buf);
      if (got < 0) {
        out = "<read: " + std::string(nfs_get_error(n)) + ">";
        break;
      }
      if (got == 0) break;
      out.append(buf, got);
    }
    nfs_close(n, fh);
    return out;
  }

  inline static Nfsd* nfsd_ = nullptr;
  // The suite nfsd's ports (copied in SetUp for brevity).
  uint16_t nfs_port_ = 0, mount_port_ = 0, portmap_port_ = 0, http_port_ = 0;
  std::string dir_;
  nfs_context* nfs_ = nullptr;
};

TEST_F(NfsTest, WriteReadStatAndRemoveAFile) {
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_NO_FATAL_FAILURE(WriteFile("f", data));
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("f").c_str(), &st), 0) << nfs_get_error(nfs_);
  EXPECT_EQ(st.nfs_size, data.size());
  EXPECT_EQ(st.nfs_mode & 07777, 0644u);
  EXPECT_TRUE(S_ISREG(st.nfs_mode));
  EXPECT_EQ(ReadFile(nfs_, P("f")), data);
  // A second client (its own connection) sees the same bytes.
  nfs_context* other = Connect(0, 0);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ReadFile(other, P("f")), data);
  nfs_destroy_context(other);
  ASSERT_EQ(nfs_unlink(nfs_, P("f").c_str()), 0) << nfs_get_error(nfs_);
  EXPECT_EQ(nfs_stat64(nfs_, P("f").c_str(), &st), -ENOENT);
}

TEST_F(NfsTest, DirectoriesLinksSymlinksAndRename) {
  ASSERT_EQ(nfs_mkdir(nfs_, P("d").c_str()), 0) << nfs_get_error(nfs_);
  ASSERT_NO_FATAL_FAILURE(WriteFile("d/a", "alpha"));
  ASSERT_EQ(nfs_link(nfs_, P("d/a").c_str(), P("b").c_str()), 0) << nfs_get_error(nfs_);
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("b").c_str(), &st), 0);
  EXPECT_EQ(st.nfs_nlink, 2u);
  ASSERT_EQ(nfs_symlink(nfs_, "d/a", P("s").c_str()), 0) << nfs_get_error(nfs_);
  char target[256] = {};
  ASSERT_EQ(nfs_readlink(nfs_, P("s").c_str(), target, sizeof(target)), 0) << nfs_get_error(nfs_);
  EXPECT_STREQ(target, "d/a");
  ASSERT_EQ(nfs_rename(nfs_, P("d/a").c_str(), P("c").c_str()), 0) << nfs_get_error(nfs_);
  EXPECT_EQ(ReadFile(nfs_, P("c")), "alpha");
  EXPECT_EQ(nfs_rmdir(nfs_, dir_.c_str()), -ENOTEMPTY);
  EXPECT_EQ(nfs_mkdir(nfs_, P("d").c_str()), -EEXIST);
  ASSERT_EQ(nfs_rmdir(nfs_, P("d").c_str()), 0) << nfs_get_error(nfs_);
  EXPECT_EQ(nfs_stat64(nfs_, P("d").c_str(), &st), -ENOENT);
}

TEST_F(NfsTest, ReaddirListsEveryEntryAcrossManyPages) {
  constexpr int kFiles = 600;  // several READDIRPLUS pages
  for (int i = 0; i < kFiles; ++i) {
    nfsfh* fh = nullptr;
    ASSERT_EQ(nfs_creat(nfs_, P("f" + std::to_string(i)).c_str(), 0644, &fh), 0);
    nfs_close(nfs_, fh);
  }
  nfsdir* d = nullptr;
  ASSERT_EQ(nfs_opendir(nfs_, dir_.c_str(), &d), 0) << nfs_get_error(nfs_);
  std::vector<std::string> names;
  while (nfsdirent* e = nfs_readdir(nfs_, d)) names.push_back(e->name);
  nfs_closedir(nfs_, d);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names.size(), static_cast<size_t>(kFiles + 2));
  EXPECT_TRUE(std::binary_search(names.begin(), names.end(), "."));
  EXPECT_TRUE(std::binary_search(names.begin(), names.end(), ".."));
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_TRUE(std::binary_search(names.begin(), names.end(), "f" + std::to_string(i))) << i;
  }
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end()) << "an entry came twice";
}

TEST_F(NfsTest, SetattrChmodChownTruncateAndTimes) {
  ASSERT_NO_FATAL_FAILURE(WriteFile("f", "0123456789"));
  ASSERT_EQ(nfs_chmod(nfs_, P("f").c_str(), 0600), 0);
  ASSERT_EQ(nfs_chown(nfs_, P("f").c_str(), 1001, 1002), 0) << nfs_get_error(nfs_);
  ASSERT_EQ(nfs_truncate(nfs_, P("f").c_str(), 4), 0) << nfs_get_error(nfs_);
  struct timeval tv[2] = {{1000, 0}, {2000, 500}};
  ASSERT_EQ(nfs_utimes(nfs_, P("f").c_str(), tv), 0) << nfs_get_error(nfs_);
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("f").c_str(), &st), 0);
  EXPECT_EQ(st.nfs_mode & 07777, 0600u);
  EXPECT_EQ(st.nfs_uid, 1001u);
  EXPECT_EQ(st.nfs_gid, 1002u);
  EXPECT_EQ(st.nfs_size, 4u);
  EXPECT_EQ(st.nfs_atime, 1000u);
  EXPECT_EQ(st.nfs_mtime, 2000u);
  EXPECT_EQ(st.nfs_mtime_nsec, 500'000u);
}

TEST_F(NfsTest, PermissionsFollowTheCallersIdentity) {
  ASSERT_NO_FATAL_FAILURE(WriteFile("private", "secret", 0600));
  ASSERT_NO_FATAL_FAILURE(WriteFile("public", "hello", 0644));
  nfs_context* user = Connect(1001, 1001);
  ASSERT_NE(user, nullptr);
  EXPECT_EQ(ReadFile(user, P("public")), "hello");
  nfsfh* fh = nullptr;
  EXPECT_EQ(nfs_open(user, P("private").c_str(), O_RDONLY, &fh), -EACCES);
  EXPECT_EQ(nfs_open(user, P("public").c_str(), O_WRONLY, &fh), -EACCES);
  EXPECT_EQ(nfs_chmod(user, P("public").c_str(), 0777), -EPERM);
  // In the 0777 test directory the user may create its own file.
  ASSERT_EQ(nfs_creat(user, P("mine").c_str(), 0600, &fh), 0) << nfs_get_error(user);
  nfs_close(user, fh);
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("mine").c_str(), &st), 0);
  EXPECT_EQ(st.nfs_uid, 1001u);
  nfs_destroy_context(user);
}

TEST_F(NfsTest, ErrorsMapToNfsstat3) {
  nfs_stat_64 st;
  EXPECT_EQ(nfs_stat64(nfs_, P("missing").c_str(), &st), -ENOENT);
  ASSERT_NO_FATAL_FAILURE(WriteFile("f", "x"));
  EXPECT_EQ(nfs_mkdir(nfs_, P("f/sub").c_str()), -ENOTDIR);
  EXPECT_EQ(nfs_mkdir(nfs_, P(std::string(256, 'n')).c_str()), -ENAMETOOLONG);
  nfsfh* fh = nullptr;
  EXPECT_EQ(nfs_creat(nfs_, P("f").c_str(), 0644, &fh) == 0 ? 0 : -1, 0)
      << "UNCHECKED create of an existing file succeeds";
  if (fh) nfs_close(nfs_, fh);
  ASSERT_EQ(nfs_mkdir(nfs_, P("d").c_str()), 0);
  EXPECT_EQ(nfs_unlink(nfs_, P("d").c_str()), -EISDIR);
}

TEST_F(NfsTest, StatvfsAndFsinfoAreSensible) {
  struct statvfs sv;
  ASSERT_EQ(nfs_statvfs(nfs_, "/", &sv), 0) << nfs_get_error(nfs_);
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_GT(sv.f_files, 0u);
  EXPECT_EQ(nfs_get_readmax(nfs_), 1u << 20);
  EXPECT_EQ(nfs_get_writemax(nfs_), 1u << 20);
}

// ---- raw RPC: what a malformed or foreign call gets ----

/// A connected TCP socket to `port` (-1 on failure), with a 5 s receive timeout.
int ConnectTcp(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

/// Sends one record to the NFS port and returns the reply record ("" when
/// the connection closed without one).
std::string Call(uint16_t port, const std::string& record) {
  const int fd = ConnectTcp(port);
  if (fd < 0) return "";
  const uint32_t mark = htonl(0x80000000u | static_cast<uint32_t>(record.size()));
  std::string framed(reinterpret_cast<const char*>(&mark), 4);
  framed += record;
  (void)!write(fd, framed.data(), framed.size());
  uint32_t reply_mark = 0;
  std::string out;
  if (read(fd, &reply_mark, 4) == 4) {
    out.resize(ntohl(reply_mark) & 0x7fffffff);
    size_t got = 0;
    while (got < out.size()) {
      ssize_t n = read(fd, out.data() + got, out.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
  }
  close(fd);
  return out;
}

std::string U32(uint32_t v) {
  const uint32_t be = htonl(v);
  return std::string(reinterpret_cast<const char*>(&be), 4);
}

/// A call header with AUTH_NONE (or `flavor` with an empty body).
std::string CallHeader(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                       uint32_t flavor = 0) {
  return U32(xid) + U32(0) + U32(2) + U32(prog) + U32(vers) + U32(proc) + U32(flavor) + U32(0) +
         U32(0) + U32(0);
}

/// A call header with AUTH_SYS as `uid`/`gid` (no other groups).
std::string CallHeaderSys(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                          uint32_t uid = 0, uint32_t gid = 0) {
  const std::string cred = U32(0) + U32(4) + "test" + U32(uid) + U32(gid) + U32(0);
  return U32(xid) + U32(0) + U32(2) + U32(prog) + U32(vers) + U32(proc) + U32(1) +
         U32(static_cast<uint32_t>(cred.size())) + cred + U32(0) + U32(0);
}

uint32_t WordAt(const std::string& s, size_t i) {
  uint32_t v;
  std::memcpy(&v, s.data() + 4 * i, 4);
  return ntohl(v);
}

TEST_F(NfsTest, BadCallsGetTheRpcErrorsOfRfc5531) {
  // Accepted replies: xid, REPLY, MSG_ACCEPTED, verf (2 words), accept_stat.
  std::string r = Call(nfs_port_, CallHeader(7, 100003, 3, 0));
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 0), 7u);
  EXPECT_EQ(WordAt(r, 5), 0u) << "NULL: SUCCESS";
  r = Call(nfs_port_, CallHeader(8, 100099, 1, 0));
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 5), 1u) << "PROG_UNAVAIL";
  r = Call(nfs_port_, CallHeader(9, 100003, 2, 0));
  ASSERT_GE(r.size(), 32u);
  EXPECT_EQ(WordAt(r, 5), 2u) << "PROG_MISMATCH";
  EXPECT_EQ(WordAt(r, 6), 3u);
  EXPECT_EQ(WordAt(r, 7), 3u);
  r = Call(nfs_port_, CallHeader(10, 100003, 3, 99));
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 5), 3u) << "PROC_UNAVAIL";
  r = Call(nfs_port_, CallHeader(11, 100003, 3, 1) + U32(1000));  // a handle of 1000 bytes, absent
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 5), 4u) << "GARBAGE_ARGS";
  // A GETATTR of a malformed handle: SUCCESS with NFS3ERR_BADHANDLE.
  r = Call(nfs_port_, CallHeader(12, 100003, 3, 1) + U32(4) + "abcd");
  ASSERT_GE(r.size(), 28u);
  EXPECT_EQ(WordAt(r, 5), 0u);
  EXPECT_EQ(WordAt(r, 6), 10001u) << "NFS3ERR_BADHANDLE";
  // RPCSEC_GSS (6) is not offered: MSG_DENIED AUTH_ERROR AUTH_TOOWEAK.
  r = Call(nfs_port_, CallHeader(13, 100003, 3, 0, 6));
  ASSERT_GE(r.size(), 20u);
  EXPECT_EQ(WordAt(r, 2), 1u) << "MSG_DENIED";
  EXPECT_EQ(WordAt(r, 3), 1u) << "AUTH_ERROR";
  EXPECT_EQ(WordAt(r, 4), 5u) << "AUTH_TOOWEAK";
  // Garbage that is not a call at all: no reply, and the server lives on.
  EXPECT_EQ(Call(nfs_port_, "not rpc"), "");
  r = Call(nfs_port_, CallHeader(14, 100003, 3, 0));
  EXPECT_EQ(WordAt(r, 0), 14u);
}

/// XDR opaque<> / string: length, bytes, padding.
std::string Opaque(const std::string& b) {
  std::string out = U32(static_cast<uint32_t>(b.size())) + b;
  out.append((4 - b.size() % 4) % 4, '\0');
  return out;
}

TEST_F(NfsTest, ARetransmittedCreateGetsTheFirstReply) {
  // The root handle from MOUNT, then the test directory's from LOOKUP.
  std::string r = Call(mount_port_, CallHeader(20, 100005, 3, 1) + Opaque("/"));
  ASSERT_GE(r.size(), 32u);
  ASSERT_EQ(WordAt(r, 6), 0u) << "MNT3_OK";
  const std::string root_fh = r.substr(32, WordAt(r, 7));
  r = Call(nfs_port_, CallHeader(21, 100003, 3, 3) + Opaque(root_fh) + Opaque(dir_.substr(1)));
  ASSERT_GE(r.size(), 32u);
  ASSERT_EQ(WordAt(r, 6), 0u) << "LOOKUP";
  const std::string dir_fh = r.substr(32, WordAt(r, 7));
  // CREATE GUARDED "once" with no attributes set.
  const std::string args = Opaque(dir_fh) + Opaque("once") + U32(1) + U32(0) + U32(0) + U32(0) +
                           U32(0) + U32(0) + U32(0);
  r = Call(nfs_port_, CallHeader(22, 100003, 3, 8) + args);
  ASSERT_GE(r.size(), 28u);
  EXPECT_EQ(WordAt(r, 6), 0u) << "first CREATE";
  // The same call again (its reply was "lost"): the first reply, not EXIST.
  const std::string again = Call(nfs_port_, CallHeader(22, 100003, 3, 8) + args);
  EXPECT_EQ(again, r);
  // A new call (another xid) runs: EXIST.
  r = Call(nfs_port_, CallHeader(23, 100003, 3, 8) + args);
  ASSERT_GE(r.size(), 28u);
  EXPECT_EQ(WordAt(r, 6), 17u) << "NFS3ERR_EXIST";
}

TEST_F(NfsTest, ThePortmapperAnswersWhereNfsAndMountListen) {
  // PMAP v2 GETPORT(prog, vers, prot = TCP, port): what `mount -t nfs`
  // without port options asks first.
  ASSERT_NE(portmap_port_, 0);
  auto getport = [&](uint32_t prog, uint32_t vers) {
    std::string r =
        Call(portmap_port_, CallHeader(30, 100000, 2, 3) + U32(prog) + U32(vers) + U32(6) + U32(0));
    return r.size() >= 28 && WordAt(r, 5) == 0 ? WordAt(r, 6) : 0xffffffffu;
  };
  EXPECT_EQ(getport(100003, 3), nfs_port_);
  EXPECT_EQ(getport(100005, 3), mount_port_);
  EXPECT_EQ(getport(100005, 1), mount_port_);
  EXPECT_EQ(getport(100021, 4), 0u) << "NLM is not served: port 0";
  // DUMP lists the mappings (value-follows flag, 4 words each, FALSE).
  std::string d = Call(portmap_port_, CallHeader(31, 100000, 2, 4));
  ASSERT_GE(d.size(), 28u);
  size_t tcp = 0, udp = 0;
  for (size_t w = 6; 4 * w < d.size() && WordAt(d, w) == 1; w += 5) {
    if (WordAt(d, w + 1) == 100003 && WordAt(d, w + 4) == nfs_port_) {
      ++(WordAt(d, w + 3) == 6 ? tcp : udp);
    }
  }
  EXPECT_EQ(tcp, 1u);
  EXPECT_EQ(udp, 1u);
  // Another version of the portmapper (rpcbind v3/v4) is PROG_MISMATCH 2..2.
  d = Call(portmap_port_, CallHeader(32, 100000, 4, 0));
  ASSERT_GE(d.size(), 32u);
  EXPECT_EQ(WordAt(d, 5), 2u);
}

TEST_F(NfsTest, MetricsAndStatusCountCallsAndErrors) {
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("absent").c_str(), &st), -ENOENT);
  ASSERT_EQ(nfs_mkdir(nfs_, P("d").c_str()), 0) << nfs_get_error(nfs_);
  ASSERT_NE(http_port_, 0);
  auto metrics = HttpClient("127.0.0.1", http_port_).Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status().ToString();
  EXPECT_EQ(metrics->status, 200);
  auto value = [&](const std::string& name) {
    const size_t at = metrics->body.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics->body.substr(at + name.size() + 2));
  };
  EXPECT_GT(value("needlefs_nfs_calls_total{proc=\"LOOKUP\"}"), 0);
  EXPECT_GT(value("needlefs_nfs_errors_total{proc=\"LOOKUP\"}"), 0) << "the ENOENT above";
  EXPECT_GT(value("needlefs_nfs_call_seconds_total{proc=\"MKDIR\"}"), 0);
  EXPECT_GE(value("needlefs_nfs_drc_hits_total"), 0);
  auto status = HttpClient("127.0.0.1", http_port_).Request("GET", "/status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->status, 200);
  EXPECT_NE(status->body.find("\"no_root_squash\""), std::string::npos) << status->body;
  EXPECT_NE(status->body.find("\"nfs_port\": " + std::to_string(nfs_port_)), std::string::npos);
}

// ---- raw XDR for the calls libnfs's high-level API does not make ----

std::string U64(uint64_t v) {
  return U32(static_cast<uint32_t>(v >> 32)) + U32(static_cast<uint32_t>(v));
}

/// sattr3 setting nothing, or only the mode.
std::string NoSattr() { return U32(0) + U32(0) + U32(0) + U32(0) + U32(0) + U32(0); }
std::string ModeSattr(uint32_t mode) {
  return U32(1) + U32(mode) + U32(0) + U32(0) + U32(0) + U32(0) + U32(0);
}

/// Reads an XDR reply after its 6-word accepted header; `ok` turns false
/// past the end.
struct XdrReader {
  explicit XdrReader(std::string r) : s(std::move(r)) {}
  uint32_t U32() {
    if (at + 4 > s.size()) {
      ok = false;
      return 0;
    }
    uint32_t v;
    std::memcpy(&v, s.data() + at, 4);
    at += 4;
    return ntohl(v);
  }
  uint64_t U64() {
    const uint64_t hi = U32();
    return (hi << 32) | U32();
  }
  std::string Opaque() {
    const uint32_t n = U32();
    if (!ok || at + n > s.size()) {
      ok = false;
      return "";
    }
    std::string out = s.substr(at, n);
    at += (n + 3) / 4 * 4;
    return out;
  }
  std::string Fixed(size_t n) {
    if (at + n > s.size()) {
      ok = false;
      return "";
    }
    std::string out = s.substr(at, n);
    at += n;
    return out;
  }
  void Words(size_t n) { at += 4 * n; }
  /// post_op_attr; its fattr3 (21 words) into *attr when present.
  bool PostOpAttr(std::vector<uint32_t>* attr = nullptr) {
    if (U32() == 0) return false;
    for (int i = 0; i < 21; ++i) {
      const uint32_t w = U32();
      if (attr) attr->push_back(w);
    }
    return true;
  }
  void Wcc() {
    if (U32()) Words(6);  // pre_op_attr: size, mtime, ctime
    PostOpAttr();
  }
  std::string s;
  size_t at = 24;  // xid, REPLY, MSG_ACCEPTED, verifier (2), accept_stat
  bool ok = true;
};

/// nfsstat3 of an NFS reply (word 6); ~0 when it is not an accepted SUCCESS.
uint32_t NfsStatus(const std::string& r) {
  return r.size() >= 28 && WordAt(r, 5) == 0 ? WordAt(r, 6) : 0xffffffffu;
}

constexpr uint32_t kNfs = 100003, kMount = 100005;
enum : uint32_t {
  kGetattr = 1,
  kSetattr = 2,
  kLookup = 3,
  kRead = 6,
  kWrite = 7,
  kCreate = 8,
  kRemove = 12,
  kReaddir = 16,
  kFsinfo = 19,
  kCommit = 21
};
enum : uint32_t {
  kOk = 0,
  kNoent = 2,
  kAcces = 13,
  kExist = 17,
  kRofs = 30,
  kStale = 70,
  kBadHandle = 10001,
  kNotSync = 10002,
  kTooSmall = 10005
};

/// MNT of `path` at `port`: the root handle, or "" (and *status).
std::string MountHandle(uint16_t port, const std::string& path, uint32_t* status = nullptr) {
  const std::string r = Call(port, CallHeader(1, kMount, 3, 1) + Opaque(path));
  const uint32_t st = r.size() >= 28 ? WordAt(r, 6) : 0xffffffffu;
  if (status) *status = st;
  if (st != 0 || r.size() < 32) return "";
  return r.substr(32, WordAt(r, 7));
}

/// LOOKUP `name` in `dir`: the handle, or "" (and *status).
std::string LookupHandle(uint16_t port, const std::string& dir, const std::string& name,
                         uint32_t* status = nullptr) {
  const std::string r = Call(port, CallHeader(2, kNfs, 3, kLookup) + Opaque(dir) + Opaque(name));
  const uint32_t st = NfsStatus(r);
  if (status) *status = st;
  if (st != 0) return "";
  XdrReader x(r);
  x.U32();
  return x.Opaque();
}

/// Sends one datagram to `port` and returns the reply ("" on a 5 s timeout).
std::string CallUdp(uint16_t port, const std::string& record) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out(70000, '\0');
  ssize_t n = -1;
  if (sendto(fd, record.data(), record.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) ==
      static_cast<ssize_t>(record.size())) {
    n = recv(fd, out.data(), out.size(), 0);
  }
  close(fd);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

TEST_F(NfsTest, BadRecordsCloseTheConnectionAndTheServerServesOn) {
  // A record mark announcing 5 MiB (over the 4 MiB cap): closed at once.
  int fd = ConnectTcp(nfs_port_);
  ASSERT_GE(fd, 0);
  const uint32_t big = htonl(0x80000000u | (5u << 20));
  ASSERT_EQ(write(fd, &big, 4), 4);
  char c;
  EXPECT_EQ(read(fd, &c, 1), 0) << "the connection is closed, nothing answered";
  close(fd);
  // A record cut short by the client going away.
  fd = ConnectTcp(nfs_port_);
  ASSERT_GE(fd, 0);
  const uint32_t hundred = htonl(0x80000000u | 100u);
  ASSERT_EQ(write(fd, &hundred, 4), 4);
  ASSERT_EQ(write(fd, "0123456789", 10), 10);
  close(fd);
  // A call in three fragments is one record.
  const std::string null_call = CallHeader(41, kNfs, 3, 0);
  fd = ConnectTcp(nfs_port_);
  ASSERT_GE(fd, 0);
  std::string framed;
  for (size_t at = 0, part = 0; at < null_call.size(); ++part) {
    const size_t n = part < 2 ? 12 : null_call.size() - at;
    framed +=
        U32((part == 2 ? 0x80000000u : 0) | static_cast<uint32_t>(n)) + null_call.substr(at, n);
    at += n;
  }
  ASSERT_EQ(write(fd, framed.data(), framed.size()), static_cast<ssize_t>(framed.size()));
  char reply[32];
  EXPECT_EQ(read(fd, reply, sizeof(reply)), 28) << "mark + 24-byte NULL reply";
  close(fd);
  // RPC version 3: MSG_DENIED RPC_MISMATCH 2..2.
  std::string v3 = null_call;
  v3.replace(8, 4, U32(3));
  std::string r = Call(nfs_port_, v3);
  ASSERT_GE(r.size(), 20u);
  EXPECT_EQ(WordAt(r, 2), 1u) << "MSG_DENIED";
  EXPECT_EQ(WordAt(r, 3), 0u) << "RPC_MISMATCH";
  EXPECT_EQ(WordAt(r, 4), 2u);
  // AUTH_SYS with a machine name over 255 bytes: AUTH_BADCRED.
  const std::string cred = U32(1) + Opaque(std::string(300, 'm')) + U32(0) + U32(0) + U32(0);
  r = Call(nfs_port_, U32(42) + U32(0) + U32(2) + U32(kNfs) + U32(3) + U32(0) + U32(1) +
                          U32(static_cast<uint32_t>(cred.size())) + cred + U32(0) + U32(0));
  ASSERT_GE(r.size(), 20u);
  EXPECT_EQ(WordAt(r, 3), 1u) << "AUTH_ERROR";
  EXPECT_EQ(WordAt(r, 4), 1u) << "AUTH_BADCRED";
  // A handle announced as 28 bytes with 10 present: GARBAGE_ARGS.
  r = Call(nfs_port_, CallHeader(43, kNfs, 3, kGetattr) + U32(28) + "0123456789");
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 5), 4u) << "GARBAGE_ARGS";
  // After all of that: served as before.
  r = Call(nfs_port_, CallHeader(44, kNfs, 3, 0));
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 0), 44u);
  EXPECT_EQ(WordAt(r, 5), 0u);
}

/// Reads one record from `fd` (its fragments joined); "" at EOF or timeout.
std::string ReadRecord(int fd) {
  std::string out;
  for (bool last = false; !last;) {
    uint32_t mark = 0;
    size_t got = 0;
    while (got < 4) {
      const ssize_t n = read(fd, reinterpret_cast<char*>(&mark) + got, 4 - got);
      if (n <= 0) return "";
      got += static_cast<size_t>(n);
    }
    mark = ntohl(mark);
    last = (mark & 0x80000000u) != 0;
    const size_t at = out.size(), len = mark & 0x7fffffffu;
    out.resize(at + len);
    for (got = 0; got < len;) {
      const ssize_t n = read(fd, out.data() + at + got, len - got);
      if (n <= 0) return "";
      got += static_cast<size_t>(n);
    }
  }
  return out;
}

TEST_F(NfsTest, AClientThatStopsReadingHoldsUpNoOtherAndGetsEveryReplyLater) {
  // 64 pipelined READs of 1 MiB on one connection whose client reads
  // nothing: 64 MiB of replies that cannot all fit its socket. The server
  // must not spend its threads waiting on that client.
  std::string content(1 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + (i * 7) % 26);
  ASSERT_NO_FATAL_FAILURE(WriteFile("big", content));
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  const std::string fh = LookupHandle(nfs_port_, dir, "big");
  ASSERT_FALSE(fh.empty());
  const int stalled = ConnectTcp(nfs_port_);
  ASSERT_GE(stalled, 0);
  constexpr int kCalls = 64;
  std::string pipeline;
  for (int i = 0; i < kCalls; ++i) {
    const std::string call =
        CallHeader(2000 + i, kNfs, 3, kRead) + Opaque(fh) + U64(0) + U32(1 << 20);
    pipeline += U32(0x80000000u | static_cast<uint32_t>(call.size())) + call;
  }
  ASSERT_EQ(write(stalled, pipeline.data(), pipeline.size()),
            static_cast<ssize_t>(pipeline.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Meanwhile every other client is served (more calls than nfsd has
  // threads, each on a connection of its own, within the 5 s timeout).
  for (uint32_t xid = 3000; xid < 3020; ++xid) {
    const std::string r = Call(nfs_port_, CallHeader(xid, kNfs, 3, kGetattr) + Opaque(fh));
    ASSERT_GE(r.size(), 28u) << "call " << xid << " not answered while a client stalls";
    EXPECT_EQ(WordAt(r, 0), xid);
    EXPECT_EQ(NfsStatus(r), kOk);
  }
  // The stalled client reads at last: every reply, whole.
  std::set<uint32_t> xids;
  for (int i = 0; i < kCalls; ++i) {
    XdrReader x(ReadRecord(stalled));
    ASSERT_GE(x.s.size(), 28u) << "reply " << i << " missing";
    xids.insert(WordAt(x.s, 0));
    EXPECT_EQ(x.U32(), kOk);
    x.PostOpAttr();
    EXPECT_EQ(x.U32(), 1u << 20) << "count";
    x.U32();  // eof
    EXPECT_TRUE(x.Opaque() == content) << "reply " << i << " carries the file";
  }
  EXPECT_EQ(xids.size(), static_cast<size_t>(kCalls));
  // A client that sends 500 calls at once (more than a connection may have
  // in hand: the rest wait in nfsd's buffer) and half-closes still gets
  // every reply.
  std::string nulls;
  for (uint32_t xid = 4000; xid < 4500; ++xid) {
    const std::string call = CallHeader(xid, kNfs, 3, 0);
    nulls += U32(0x80000000u | static_cast<uint32_t>(call.size())) + call;
  }
  const int half = ConnectTcp(nfs_port_);
  ASSERT_GE(half, 0);
  ASSERT_EQ(write(half, nulls.data(), nulls.size()), static_cast<ssize_t>(nulls.size()));
  shutdown(half, SHUT_WR);
  std::set<uint32_t> answered;
  for (std::string r; !(r = ReadRecord(half)).empty();) answered.insert(WordAt(r, 0));
  EXPECT_EQ(answered.size(), 500u);
  close(half);
  close(stalled);
}

// READ without an open (NFS has none): the file layer's implicit open
// checks the caller's identity (AUTH_SYS uid 1001 here, not root) before a
// byte is read, on the first READ of the file and on later ones alike.
TEST_F(NfsTest, AReadByACallerWhoMayNotReadGetsAccesAndNoBytes) {
  ASSERT_NO_FATAL_FAILURE(WriteFile("owned", "the owner's words", 0600));
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  const std::string fh = LookupHandle(nfs_port_, dir, "owned");
  ASSERT_FALSE(fh.empty());
  auto read_as = [&](uint32_t xid, uint32_t uid) {
    return Call(nfs_port_,
                CallHeaderSys(xid, kNfs, 3, kRead, uid, uid) + Opaque(fh) + U64(0) + U32(100));
  };
  for (uint32_t xid = 5000; xid < 5003; ++xid) {
    const std::string denied = read_as(xid, 1001);
    EXPECT_EQ(NfsStatus(denied), kAcces) << "READ " << xid << " by uid 1001";
    EXPECT_EQ(denied.find("owner's words"), std::string::npos) << "no bytes for uid 1001";
    // The owner (root created it) reads it, and the next refusal still holds.
    XdrReader ok(read_as(xid + 100, 0));
    ASSERT_EQ(ok.U32(), kOk);
    ok.PostOpAttr();
    ok.U32();  // count
    ok.U32();  // eof
    EXPECT_EQ(ok.Opaque(), "the owner's words");
  }
}

TEST_F(NfsTest, ForgedStaleOrRefusedCallsChangeNothing) {
  const std::string root = MountHandle(mount_port_, "/");
  ASSERT_FALSE(root.empty());
  const std::string dir = LookupHandle(nfs_port_, root, dir_.substr(1));
  ASSERT_FALSE(dir.empty());
  ASSERT_NO_FATAL_FAILURE(WriteFile("keep", "kept"));
  // A forged handle (one bit of the inode changed): BADHANDLE, no file.
  std::string forged = dir;
  forged[8] = static_cast<char>(forged[8] ^ 1);
  const std::string create_new = Opaque(forged) + Opaque("new") + U32(0) + NoSattr();
  EXPECT_EQ(NfsStatus(Call(nfs_port_, CallHeader(50, kNfs, 3, kCreate) + create_new)), kBadHandle);
  // The same CREATE with its arguments cut short: GARBAGE_ARGS, no file.
  const std::string cut = Opaque(dir) + Opaque("new") + U32(0);
  std::string r = Call(nfs_port_, CallHeader(51, kNfs, 3, kCreate) + cut);
  ASSERT_GE(r.size(), 24u);
  EXPECT_EQ(WordAt(r, 5), 4u) << "GARBAGE_ARGS";
  // A REMOVE with a credential flavor we do not take: refused, file kept.
  r = Call(nfs_port_, CallHeader(52, kNfs, 3, kRemove, 6) + Opaque(dir) + Opaque("keep"));
  ASSERT_GE(r.size(), 20u);
  EXPECT_EQ(WordAt(r, 2), 1u) << "MSG_DENIED";
  uint32_t st = 0;
  LookupHandle(nfs_port_, dir, "new", &st);
  EXPECT_EQ(st, kNoent) << "no call above created anything";
  EXPECT_EQ(ReadFile(nfs_, P("keep")), "kept");
  // The handle of a removed file that nfsd had just read and written
  // (an implicit open): STALE at once, nothing keeps it.
  ASSERT_NO_FATAL_FAILURE(WriteFile("used", "data"));
  ASSERT_EQ(ReadFile(nfs_, P("used")), "data");
  const std::string used = LookupHandle(nfs_port_, dir, "used");
  ASSERT_FALSE(used.empty());
  ASSERT_EQ(nfs_unlink(nfs_, P("used").c_str()), 0);
  EXPECT_EQ(NfsStatus(Call(nfs_port_, CallHeader(56, kNfs, 3, kGetattr) + Opaque(used))), kStale);
  // The handle of a removed file: STALE.
  ASSERT_EQ(NfsStatus(Call(nfs_port_, CallHeader(53, kNfs, 3, kCreate) + Opaque(dir) +
                                          Opaque("gone") + U32(0) + NoSattr())),
            kOk);
  const std::string gone = LookupHandle(nfs_port_, dir, "gone");
  ASSERT_FALSE(gone.empty());
  ASSERT_EQ(
      NfsStatus(Call(nfs_port_, CallHeader(54, kNfs, 3, kRemove) + Opaque(dir) + Opaque("gone"))),
      kOk);
  EXPECT_EQ(NfsStatus(Call(nfs_port_, CallHeader(55, kNfs, 3, kGetattr) + Opaque(gone))), kStale);
}

TEST_F(NfsTest, ARetransmittedRemoveGetsTheFirstReply) {
  ASSERT_NO_FATAL_FAILURE(WriteFile("once", "x"));
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  ASSERT_FALSE(dir.empty());
  const std::string call = CallHeader(60, kNfs, 3, kRemove) + Opaque(dir) + Opaque("once");
  const std::string first = Call(nfs_port_, call);
  EXPECT_EQ(NfsStatus(first), kOk);
  EXPECT_EQ(Call(nfs_port_, call), first) << "the retransmission gets the first reply, not NOENT";
  EXPECT_EQ(
      NfsStatus(Call(nfs_port_, CallHeader(61, kNfs, 3, kRemove) + Opaque(dir) + Opaque("once"))),
      kNoent)
      << "a new call runs";
}

TEST_F(NfsTest, ExclusiveCreateIsReplayedWithTheSameVerifier) {
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  ASSERT_FALSE(dir.empty());
  auto create = [&](uint32_t xid, const std::string& verf) {
    const std::string r = Call(
        nfs_port_, CallHeader(xid, kNfs, 3, kCreate) + Opaque(dir) + Opaque("x") + U32(2) + verf);
    XdrReader x(r);
    const uint32_t st = x.U32();
    std::string fh;
    if (st == kOk && x.U32() == 1) fh = x.Opaque();
    return std::make_pair(st, fh);
  };
  const auto first = create(70, "verifier");
  ASSERT_EQ(first.first, kOk);
  ASSERT_FALSE(first.second.empty());
  // The client lost the reply and sends the call again with a new xid (a
  // server restart in between, say): the same verifier is the same create.
  const auto replay = create(71, "verifier");
  EXPECT_EQ(replay.first, kOk);
  EXPECT_EQ(replay.second, first.second) << "the same file";
  EXPECT_EQ(create(72, "another!").first, kExist) << "another client's create";
  // The client then sets the mode it wanted (EXCLUSIVE carries none).
  const std::string r = Call(nfs_port_, CallHeader(73, kNfs, 3, kSetattr) + Opaque(first.second) +
                                            ModeSattr(0640) + U32(0));
  EXPECT_EQ(NfsStatus(r), kOk);
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("x").c_str(), &st), 0);
  EXPECT_EQ(st.nfs_mode & 07777, 0640u);
}

TEST_F(NfsTest, GuardedSetattrChangesOnlyWhenCtimeMatches) {
  ASSERT_NO_FATAL_FAILURE(WriteFile("g", "guarded"));
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  const std::string fh = LookupHandle(nfs_port_, dir, "g");
  ASSERT_FALSE(fh.empty());
  XdrReader attr(Call(nfs_port_, CallHeader(80, kNfs, 3, kGetattr) + Opaque(fh)));
  ASSERT_EQ(attr.U32(), kOk);
  attr.Words(19);
  const uint32_t ctime_s = attr.U32(), ctime_ns = attr.U32();
  ASSERT_TRUE(attr.ok);
  auto setattr = [&](uint32_t xid, uint32_t mode, uint32_t s, uint32_t ns) {
    return NfsStatus(Call(nfs_port_, CallHeaderSys(xid, kNfs, 3, kSetattr) + Opaque(fh) +
                                         ModeSattr(mode) + U32(1) + U32(s) + U32(ns)));
  };
  EXPECT_EQ(setattr(81, 0600, ctime_s - 1, ctime_ns), kNotSync);
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("g").c_str(), &st), 0);
  EXPECT_EQ(st.nfs_mode & 07777, 0644u) << "NOT_SYNC changed nothing";
  EXPECT_EQ(setattr(82, 0600, ctime_s, ctime_ns), kOk);
  ASSERT_EQ(nfs_stat64(nfs_, P("g").c_str(), &st), 0);
  EXPECT_EQ(st.nfs_mode & 07777, 0600u);
}

TEST_F(NfsTest, UnstableWritesAndCommitCarryOneWriteVerifier) {
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  std::string r = Call(nfs_port_, CallHeader(90, kNfs, 3, kCreate) + Opaque(dir) + Opaque("w") +
                                      U32(0) + ModeSattr(0644));
  XdrReader c(r);
  ASSERT_EQ(c.U32(), kOk);
  ASSERT_EQ(c.U32(), 1u);
  const std::string fh = c.Opaque();
  auto write = [&](uint32_t xid, uint64_t offset, const std::string& data, uint32_t stable) {
    XdrReader x(Call(nfs_port_, CallHeader(xid, kNfs, 3, kWrite) + Opaque(fh) + U64(offset) +
                                    U32(static_cast<uint32_t>(data.size())) + U32(stable) +
                                    Opaque(data)));
    const uint32_t st = x.U32();
    x.Wcc();
    const uint32_t count = x.U32(), committed = x.U32();
    const std::string verf = x.Fixed(8);
    EXPECT_EQ(st, kOk);
    EXPECT_EQ(count, data.size());
    EXPECT_TRUE(x.ok);
    return std::make_pair(committed, verf);
  };
  const auto w1 = write(91, 0, "hello ", 0);  // UNSTABLE
  const auto w2 = write(92, 6, "world", 0);
  EXPECT_EQ(w1.second, w2.second) << "one verifier while nfsd runs";
  XdrReader commit(
      Call(nfs_port_, CallHeader(93, kNfs, 3, kCommit) + Opaque(fh) + U64(0) + U32(0)));
  ASSERT_EQ(commit.U32(), kOk);
  commit.Wcc();
  EXPECT_EQ(commit.Fixed(8), w1.second) << "COMMIT's verifier matches: nothing to resend";
  const auto w3 = write(94, 11, "!", 2);  // FILE_SYNC
  EXPECT_EQ(w3.first, 2u) << "FILE_SYNC asked, FILE_SYNC done";
  EXPECT_EQ(ReadFile(nfs_, P("w")), "hello world!");
}

TEST_F(NfsTest, ReaddirWithATinyCountOverAChangingDirectoryMissesAndRepeatsNothing) {
  const std::string dir = LookupHandle(nfs_port_, MountHandle(mount_port_, "/"), dir_.substr(1));
  std::vector<nfsfh*> open;
  for (int i = 0; i < 40; ++i) {
    for (const char* prefix : {"keep-", "gone-"}) {
      nfsfh* fh = nullptr;
      ASSERT_EQ(nfs_creat(nfs_, P(prefix + std::to_string(i)).c_str(), 0644, &fh), 0);
      nfs_close(nfs_, fh);
    }
  }
  // Too small for one entry: TOOSMALL.
  const std::string zero_verf(8, '\0');
  EXPECT_EQ(NfsStatus(Call(nfs_port_, CallHeader(100, kNfs, 3, kReaddir) + Opaque(dir) + U64(0) +
                                          zero_verf + U32(60))),
            kTooSmall);
  std::vector<std::string> names;
  uint64_t cookie = 0;
  std::string verf = zero_verf;
  bool eof = false;
  int pages = 0;
  for (uint32_t xid = 101; !eof && pages < 1000; ++xid, ++pages) {
    XdrReader x(Call(nfs_port_, CallHeader(xid, kNfs, 3, kReaddir) + Opaque(dir) + U64(cookie) +
                                    verf + U32(256)));
    ASSERT_EQ(x.U32(), kOk) << "page " << pages;
    x.PostOpAttr();
    const std::string page_verf = x.Fixed(8);
    if (pages > 0) EXPECT_EQ(page_verf, verf) << "the cookie verifier never changes";
    verf = page_verf;
    size_t in_page = 0;
    while (x.U32() == 1) {
      x.U64();  // fileid
      names.push_back(x.Opaque());
      cookie = x.U64();
      ++in_page;
    }
    eof = x.U32() == 1;
    ASSERT_TRUE(x.ok);
    ASSERT_GT(in_page + (eof ? 1 : 0), 0u) << "a page without entries and without eof";
    // Between pages another client changes the directory.
    const int k = pages;
    if (k < 40) {
      nfsfh* fh = nullptr;
      ASSERT_EQ(nfs_creat(nfs_, P("new-" + std::to_string(k)).c_str(), 0644, &fh), 0);
      nfs_close(nfs_, fh);
      ASSERT_EQ(nfs_unlink(nfs_, P("gone-" + std::to_string(k)).c_str()), 0);
    }
  }
  ASSERT_TRUE(eof);
  EXPECT_GT(pages, 10) << "a count of 256 bytes takes many pages";
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end()) << "an entry came twice";
  for (int i = 0; i < 40; ++i) {
    EXPECT_TRUE(std::binary_search(names.begin(), names.end(), "keep-" + std::to_string(i)))
        << "keep-" << i << " was there all along";
  }
}

TEST_F(NfsTest, UdpCarriesCallsWithRepliesThatFitADatagram) {
  std::string data(100 << 10, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  ASSERT_NO_FATAL_FAILURE(WriteFile("u", data));
  std::string r = CallUdp(nfs_port_, CallHeader(110, kNfs, 3, 0));
  ASSERT_EQ(r.size(), 24u) << "NULL over UDP";
  EXPECT_EQ(WordAt(r, 0), 110u);
  // MOUNT and the portmapper answer over UDP too.
  r = CallUdp(mount_port_, CallHeader(111, kMount, 3, 1) + Opaque("/"));
  ASSERT_GE(r.size(), 32u);
  ASSERT_EQ(WordAt(r, 6), 0u) << "MNT3_OK";
  const std::string root = r.substr(32, WordAt(r, 7));
  r = CallUdp(portmap_port_, CallHeader(112, 100000, 2, 3) + U32(kNfs) + U32(3) + U32(17) + U32(0));
  ASSERT_GE(r.size(), 28u);
  EXPECT_EQ(WordAt(r, 6), nfs_port_) << "GETPORT NFS over UDP";
  // FSINFO offers 32 KiB over UDP, 1 MiB over TCP.
  XdrReader udp_info(CallUdp(nfs_port_, CallHeader(113, kNfs, 3, kFsinfo) + Opaque(root)));
  ASSERT_EQ(udp_info.U32(), kOk);
  udp_info.PostOpAttr();
  EXPECT_EQ(udp_info.U32(), 32u << 10) << "rtmax over UDP";
  XdrReader tcp_info(Call(nfs_port_, CallHeader(114, kNfs, 3, kFsinfo) + Opaque(root)));
  ASSERT_EQ(tcp_info.U32(), kOk);
  tcp_info.PostOpAttr();
  EXPECT_EQ(tcp_info.U32(), 1u << 20) << "rtmax over TCP";
  // A READ of 1 MiB over UDP gets 32 KiB (what fits), not a lost reply.
  r = CallUdp(nfs_port_, CallHeader(115, kNfs, 3, kLookup) + Opaque(root) + Opaque(dir_.substr(1)));
  XdrReader l(r);
  ASSERT_EQ(l.U32(), kOk);
  const std::string dir = l.Opaque();
  const std::string fh = LookupHandle(nfs_port_, dir, "u");
  ASSERT_FALSE(fh.empty());
  XdrReader rd(
      CallUdp(nfs_port_, CallHeader(116, kNfs, 3, kRead) + Opaque(fh) + U64(1000) + U32(1u << 20)));
  ASSERT_EQ(rd.U32(), kOk);
  rd.PostOpAttr();
  EXPECT_EQ(rd.U32(), 32u << 10) << "count";
  EXPECT_EQ(rd.U32(), 0u) << "not eof";
  EXPECT_EQ(rd.Opaque(), data.substr(1000, 32 << 10));
}

TEST_F(NfsTest, ExportsBoundMountsLookupsAndHandlesOnEveryNfsd) {
  ASSERT_EQ(nfs_mkdir(nfs_, "/private"), 0) << nfs_get_error(nfs_);
  ASSERT_EQ(nfs_mkdir(nfs_, "/readonly"), 0) << nfs_get_error(nfs_);
  // This nfsd: "/private" is for 10.0.0.0/8 only, though "/" is ours: the
  // most specific export decides, for MNT and for LOOKUP into it.
  uint32_t st = 0;
  EXPECT_EQ(MountHandle(mount_port_, "/private", &st), "");
  EXPECT_EQ(st, 13u) << "MNT3ERR_ACCES";
  const std::string root = MountHandle(mount_port_, "/");
  ASSERT_FALSE(root.empty());
  LookupHandle(nfs_port_, root, "private", &st);
  EXPECT_EQ(st, kAcces) << "LOOKUP does not lead into an export refused to the client";
  // A read-only export refuses changes and makes none, also when reached
  // by LOOKUP from "/".
  const std::string ro = MountHandle(mount_port_, "/readonly", &st);
  ASSERT_FALSE(ro.empty()) << st;
  EXPECT_EQ(LookupHandle(nfs_port_, root, "readonly"), ro) << "the same handle both ways";
  EXPECT_EQ(NfsStatus(Call(nfs_port_, CallHeaderSys(120, kNfs, 3, kCreate) + Opaque(ro) +
                                          Opaque("f") + U32(0) + NoSattr())),
            kRofs);
  LookupHandle(nfs_port_, ro, "f", &st);
  EXPECT_EQ(st, kNoent);
  // Another nfsd over the same cluster, where "/private" is open to us.
  Nfsd other = StartNfsd(kOtherExports);
  ASSERT_NE(other.nfs, 0);
  const std::string priv = MountHandle(other.mount, "/private", &st);
  ASSERT_FALSE(priv.empty()) << st;
  EXPECT_EQ(NfsStatus(Call(other.nfs, CallHeader(121, kNfs, 3, kGetattr) + Opaque(priv))), kOk);
  // Its handle of export 1 is signed by the cluster's key, but here export
  // 1 is not this client's: ACCES, never data.
  EXPECT_EQ(NfsStatus(Call(nfs_port_, CallHeader(122, kNfs, 3, kGetattr) + Opaque(priv))), kAcces);
  // Handles of an export both allow work on either nfsd (fail-over).
  ASSERT_NO_FATAL_FAILURE(WriteFile("both", "either nfsd"));
  const std::string dir = LookupHandle(nfs_port_, root, dir_.substr(1));
  const std::string fh = LookupHandle(nfs_port_, dir, "both");
  ASSERT_FALSE(fh.empty());
  XdrReader rd(Call(other.nfs, CallHeader(123, kNfs, 3, kRead) + Opaque(fh) + U64(0) + U32(100)));
  ASSERT_EQ(rd.U32(), kOk);
  rd.PostOpAttr();
  rd.Words(2);
  EXPECT_EQ(rd.Opaque(), "either nfsd");
  // A made-up handle: the export id of "/" with another inode number.
  std::string made_up = fh;
  made_up[11] = static_cast<char>(made_up[11] ^ 2);
  EXPECT_EQ(NfsStatus(Call(other.nfs, CallHeader(124, kNfs, 3, kGetattr) + Opaque(made_up))),
            kBadHandle);
  EXPECT_EQ(nfs_rmdir(nfs_, "/private"), 0);
  EXPECT_EQ(nfs_rmdir(nfs_, "/readonly"), 0);
}

TEST_F(NfsTest, FilesReadTheSameThroughFuseAndNfs) {
  std::string data(2 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13 + i / 999);
  ASSERT_NO_FATAL_FAILURE(WriteFile("from-nfs", data));
  EXPECT_EQ(Slurp(work_ + "/from-nfs"), data) << "written through NFS, read through FUSE";
  {
    std::ofstream out(work_ + "/from-fuse", std::ios::binary);
    out << "written through FUSE";
  }
  EXPECT_EQ(ReadFile(nfs_, P("from-fuse")), "written through FUSE");
  // A rename through one is seen by the other, though both had the old name.
  struct stat st;
  ASSERT_EQ(::stat((work_ + "/from-nfs").c_str(), &st), 0);
  ASSERT_EQ(nfs_rename(nfs_, P("from-nfs").c_str(), P("renamed-by-nfs").c_str()), 0);
  auto seen_by_fuse = [&] {
    return ::stat((work_ + "/renamed-by-nfs").c_str(), &st) == 0 &&
           ::stat((work_ + "/from-nfs").c_str(), &st) != 0;
  };
  for (int i = 0; i < 100 && !seen_by_fuse(); ++i) usleep(10'000);
  EXPECT_TRUE(seen_by_fuse()) << "FUSE sees NFS's rename";
  nfs_stat_64 nst;
  ASSERT_EQ(nfs_stat64(nfs_, P("from-fuse").c_str(), &nst), 0);
  ASSERT_EQ(::rename((work_ + "/from-fuse").c_str(), (work_ + "/renamed-by-fuse").c_str()), 0);
  auto seen_by_nfs = [&] {
    return nfs_stat64(nfs_, P("renamed-by-fuse").c_str(), &nst) == 0 &&
           nfs_stat64(nfs_, P("from-fuse").c_str(), &nst) == -ENOENT;
  };
  for (int i = 0; i < 100 && !seen_by_nfs(); ++i) usleep(10'000);
  EXPECT_TRUE(seen_by_nfs()) << "NFS sees FUSE's rename";
  EXPECT_EQ(ReadFile(nfs_, P("renamed-by-fuse")), "written through FUSE");
  // Deleted through FUSE: gone through NFS.
  ASSERT_EQ(::unlink((work_ + "/renamed-by-nfs").c_str()), 0);
  for (int i = 0; i < 100 && nfs_stat64(nfs_, P("renamed-by-nfs").c_str(), &nst) == 0; ++i) {
    usleep(10'000);
  }
  EXPECT_EQ(nfs_stat64(nfs_, P("renamed-by-nfs").c_str(), &nst), -ENOENT);
}

TEST_F(NfsTest, NfsUtilsCopyListAndCat) {
  const std::string url = "nfs://127.0.0.1" + dir_ +
                          "/%s?version=3&nfsport=" + std::to_string(nfs_port_) +
                          "&mountport=" + std::to_string(mount_port_);
  auto u = [&](const std::string& name) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), url.c_str(), name.c_str());
    return std::string(buf);
  };
  const std::string src = tmp_->path() + "/" + name_ + ".src";
  std::string body(300'000, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  std::ofstream(src, std::ios::binary) << body;
  std::string out;
  ASSERT_EQ(Sh("nfs-cp " + ShellQuote(src) + " " + ShellQuote(u("copied")) + " 2>&1", &out), 0)
      << out;
  ASSERT_EQ(Sh("nfs-cat " + ShellQuote(u("copied")) + " 2>&1", &out), 0);
  EXPECT_EQ(out, body) << "nfs-cat";
  const std::string back = tmp_->path() + "/" + name_ + ".back";
  ASSERT_EQ(Sh("nfs-cp " + ShellQuote(u("copied")) + " " + ShellQuote(back) + " 2>&1", &out), 0)
      << out;
  EXPECT_EQ(Slurp(back), body) << "nfs-cp back";
  const std::string dir_url = "nfs://127.0.0.1" + dir_ +
                              "?version=3&nfsport=" + std::to_string(nfs_port_) +
                              "&mountport=" + std::to_string(mount_port_);
  ASSERT_EQ(Sh("nfs-ls " + ShellQuote(dir_url) + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("copied"), std::string::npos) << out;
  EXPECT_NE(out.find("300000"), std::string::npos) << "nfs-ls shows the size: " << out;
  EXPECT_EQ(Slurp(work_ + "/copied"), body) << "and FUSE reads it";
}

}  // namespace
}  // namespace needlefs::integration
