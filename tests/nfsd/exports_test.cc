// Unit tests of the export rules (nfsd/exports.h) and file handles.
#include "nfsd/exports.h"

#include <gtest/gtest.h>

#include <fstream>

#include "nfsd/file_handle.h"
#include "test_util.h"

namespace needlefs::nfsd {
namespace {

TEST(ClientMatchTest, AddressesBlocksAndAny) {
  auto net = ClientMatch::Parse("10.1.0.0/16");
  ASSERT_TRUE(net.ok());
  EXPECT_TRUE(net->Matches("10.1.200.3"));
  EXPECT_FALSE(net->Matches("10.2.0.1"));
  EXPECT_TRUE(net->Matches("::ffff:10.1.0.9")) << "IPv4-mapped IPv6 is IPv4";
  EXPECT_FALSE(net->Matches("::1"));
  auto host = ClientMatch::Parse("192.168.1.7");
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE(host->Matches("192.168.1.7"));
  EXPECT_FALSE(host->Matches("192.168.1.8"));
  auto v6 = ClientMatch::Parse("fe80::/10");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Matches("fe80::1"));
  EXPECT_FALSE(v6->Matches("2001:db8::1"));
  EXPECT_TRUE(ClientMatch::Parse("*")->Matches("203.0.113.5"));
  EXPECT_FALSE(ClientMatch::Parse("10.0.0.0/33").ok());
  EXPECT_FALSE(ClientMatch::Parse("not-an-address").ok());
  EXPECT_FALSE(ClientMatch::Parse("10.0.0.0/x").ok());
}

TEST(ExportsTest, DefaultIsLoopbackOnlyWithoutSquash) {
  Exports e = Exports::Default();
  ASSERT_EQ(e.list.size(), 1u);
  const Export& x = e.list[0];
  EXPECT_EQ(x.path, "/");
  EXPECT_TRUE(x.Allows("127.0.0.1", 40000));
  EXPECT_TRUE(x.Allows("127.8.9.10", 40000));
  EXPECT_TRUE(x.Allows("::1", 40000));
  EXPECT_FALSE(x.Allows("10.0.2.15", 700));
  EXPECT_FALSE(x.read_only);
  EXPECT_EQ(x.Identity(0, 0, {}).uid, 0u);
}

TEST(ExportsTest, SquashingRules) {
  Export x;
  x.squash = Squash::kRootSquash;
  RequestContext root = x.Identity(0, 0, {1, 2});
  EXPECT_EQ(root.uid, 65534u);
  EXPECT_EQ(root.gid, 65534u);
  EXPECT_TRUE(root.groups.empty());
  RequestContext user = x.Identity(1000, 100, {5});
  EXPECT_EQ(user.uid, 1000u);
  EXPECT_EQ(user.gid, 100u);
  EXPECT_EQ(user.groups, std::vector<uint32_t>{5});
  x.squash = Squash::kAllSquash;
  x.anon_uid = 42;
  x.anon_gid = 43;
  user = x.Identity(1000, 100, {5});
  EXPECT_EQ(user.uid, 42u);
  EXPECT_EQ(user.gid, 43u);
  x.secure = true;
  x.clients.push_back(*ClientMatch::Parse("*"));
  EXPECT_TRUE(x.Allows("10.0.0.1", 800));
  EXPECT_FALSE(x.Allows("10.0.0.1", 40000)) << "secure: source port below 1024 only";
}

TEST(ExportsTest, LoadsYamlAndRejectsBadFiles) {
  TempDir dir;
  const std::string good = dir.path() + "/exports.yaml";
  std::ofstream(good) << "exports:\n"
                         "  - path: /projects\n"
                         "    clients: [10.0.0.0/8, \"::1\"]\n"
                         "    access: ro\n"
                         "    squash: all_squash\n"
                         "    anonuid: 7\n"
                         "    anongid: 8\n"
                         "  - path: /\n"
                         "    clients: [\"*\"]\n";
  auto e = Exports::Load(good);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ASSERT_EQ(e->list.size(), 2u);
  EXPECT_EQ(e->list[0].path, "/projects");
  EXPECT_TRUE(e->list[0].read_only);
  EXPECT_EQ(e->list[0].squash, Squash::kAllSquash);
  EXPECT_EQ(e->list[0].anon_uid, 7u);
  EXPECT_TRUE(e->list[0].Allows("10.9.9.9", 5000));
  EXPECT_FALSE(e->list[0].Allows("192.168.0.1", 5000));
  EXPECT_EQ(e->list[1].squash, Squash::kRootSquash) << "root_squash is the default";
  for (const char* bad :
       {"exports: 3\n", "exports:\n  - path: relative\n    clients: [\"*\"]\n",
        "exports:\n  - path: /\n",
        "exports:\n  - path: /\n    clients: [\"*\"]\n"
        "    access: maybe\n",
        "exports:\n  - path: /\n    clients: [\"1.2.3.4/99\"]\n", "[unclosed\n"}) {
    const std::string f = dir.path() + "/bad.yaml";
    std::ofstream(f) << bad;
    auto r = Exports::Load(f);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(Exports::Load(dir.path() + "/none.yaml").status().code(), StatusCode::kNotFound);
}

TEST(FileHandleTest, RoundTripsAndRefusesForeignOrForgedBytes) {
  const FileHandleCodec codec(std::string(kFileHandleKeyBytes, 'k'));
  FileHandle h;
  h.export_id = 3;
  h.ino = InodeId(0x0102030405060708ull);
  h.generation = Generation(99);
  const std::string b = codec.Encode(h);
  EXPECT_EQ(b.size(), kFileHandleBytes);
  auto back = codec.Decode(b);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->export_id, 3);
  EXPECT_EQ(back->ino, h.ino);
  EXPECT_EQ(back->generation, h.generation);
  EXPECT_FALSE(codec.Decode(b.substr(0, kFileHandleBytes - 1))) << "short";
  std::string other_version = b;
  other_version[0] = 1;
  EXPECT_FALSE(codec.Decode(other_version)) << "unknown version";
  // Every field is signed: another export, inode or generation written
  // into a real handle does not verify.
  for (size_t at : {1u, 4u, 11u, 12u, 19u, 20u, 27u}) {
    std::string forged = b;
    forged[at] = static_cast<char>(forged[at] ^ 1);
    EXPECT_FALSE(codec.Decode(forged)) << "byte " << at << " changed";
  }
  // Another cluster's key: not ours.
  EXPECT_FALSE(FileHandleCodec(std::string(kFileHandleKeyBytes, 'o')).Decode(b));
  FileHandle zero = h;
  zero.ino = InodeId(0);
  EXPECT_FALSE(codec.Decode(codec.Encode(zero))) << "inode 0";
}

}  // namespace
}  // namespace needlefs::nfsd
