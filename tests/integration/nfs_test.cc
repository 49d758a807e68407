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
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/http.h"
#include "integration/process.h"

namespace needlefs::integration {
namespace {

std::string Addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

/// The port after `key=IP:` in a ready line.
uint16_t PortIn(const std::string& line, const std::string& key) {
  size_t at = line.find(key + "=");
  if (at == std::string::npos) return 0;
  size_t colon = line.find(':', at);
  return static_cast<uint16_t>(std::stoi(line.substr(colon + 1)));
}

class NfsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir("needlefs-nfs-test-");
    const std::string dir = tmp_->path();
    std::string error;
    auto master = StartDaemon(
        {"master", "-mdir", dir + "/master", "-port", "0", "-grpcPort", "0", "-log.level", "warn"},
        "needlefs master ready", dir, &error, 15'000);
    ASSERT_TRUE(master) << error;
    master_ = new DaemonProcess(std::move(*master));
    auto volume =
        StartDaemon({"volume", "-dir", dir + "/volume", "-port", "0", "-grpcPort", "0", "-max", "8",
                     "-mserver", Addr(master_->http_port), "-mserverGrpcPort",
                     std::to_string(master_->grpc_port), "-log.level", "warn"},
                    "needlefs volume ready", dir, &error, 15'000);
    ASSERT_TRUE(volume) << error;
    volume_ = new DaemonProcess(std::move(*volume));
    auto meta = StartDaemon({"meta", "-dir", dir + "/meta", "-port", "0", "-volumeServers",
                             Addr(volume_->http_port), "-log.level", "warn"},
                            "needlefs meta ready", dir, &error, 15'000);
    ASSERT_TRUE(meta) << error;
    meta_ = new DaemonProcess(std::move(*meta));
    nfsd_ = new ChildProcess({NeedlefsBinary(),
                              "nfsd",
                              "-meta",
                              Addr(meta_->grpc_port),
                              "-master",
                              Addr(master_->http_port),
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
                              "-log.level",
                              "warn"},
                             dir);
    ASSERT_TRUE(nfsd_->Start(&error)) << error;
    auto line = nfsd_->WaitForLine("needlefs nfsd ready", 15'000);
    ASSERT_TRUE(line) << nfsd_->LogTail();
    nfs_port_ = PortIn(*line, "nfs");
    mount_port_ = PortIn(*line, "mount");
    portmap_port_ = PortIn(*line, "portmap");
    http_port_ = PortIn(*line, "http");
    ASSERT_NE(nfs_port_, 0) << *line;
  }

  static void TearDownTestSuite() {
    delete nfsd_;
    delete meta_;
    delete volume_;
    delete master_;
    delete tmp_;
  }

  void SetUp() override {
    ASSERT_NE(nfsd_, nullptr);
    dir_ = "/" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    nfs_ = Connect(0, 0);
    ASSERT_NE(nfs_, nullptr);
    ASSERT_EQ(nfs_mkdir(nfs_, dir_.c_str()), 0) << nfs_get_error(nfs_);
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
    const std::string url = "nfs://127.0.0.1/?version=3&nfsport=" + std::to_string(nfs_port_) +
                            "&mountport=" + std::to_string(mount_port_) +
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

  static TempDir* tmp_;
  static DaemonProcess *master_, *volume_, *meta_;
  static ChildProcess* nfsd_;
  static uint16_t nfs_port_, mount_port_, portmap_port_, http_port_;
  std::string dir_;
  nfs_context* nfs_ = nullptr;
};

TempDir* NfsTest::tmp_ = nullptr;
DaemonProcess* NfsTest::master_ = nullptr;
DaemonProcess* NfsTest::volume_ = nullptr;
DaemonProcess* NfsTest::meta_ = nullptr;
ChildProcess* NfsTest::nfsd_ = nullptr;
uint16_t NfsTest::nfs_port_ = 0;
uint16_t NfsTest::mount_port_ = 0;
uint16_t NfsTest::portmap_port_ = 0;
uint16_t NfsTest::http_port_ = 0;

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

/// Sends one record to the NFS port and returns the reply record ("" when
/// the connection closed without one).
std::string Call(uint16_t port, const std::string& record) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "";
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
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
  size_t found = 0;
  for (size_t w = 6; 4 * w < d.size() && WordAt(d, w) == 1; w += 5) {
    if (WordAt(d, w + 1) == 100003 && WordAt(d, w + 4) == nfs_port_) ++found;
  }
  EXPECT_EQ(found, 1u);
  // Another version of the portmapper (rpcbind v3/v4) is PROG_MISMATCH 2..2.
  d = Call(portmap_port_, CallHeader(32, 100000, 4, 0));
  ASSERT_GE(d.size(), 32u);
  EXPECT_EQ(WordAt(d, 5), 2u);
}

TEST_F(NfsTest, MetricsAndStatusCountCallsAndErrors) {
  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs_, P("absent").c_str(), &st), -ENOENT);
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

}  // namespace
}  // namespace needlefs::integration
