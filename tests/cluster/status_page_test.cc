// The master's HTML status page: content, health states and escaping.
#include "cluster/status_page.h"

#include <gtest/gtest.h>

namespace needlefs {
namespace {

NodeSnapshot Node(const std::string& id, const std::string& rack,
                  std::vector<VolumeReport> volumes) {
  NodeSnapshot n;
  n.info.id = id;
  n.info.rack = rack;
  n.info.max_volumes = 8;
  n.info.disk_free_bytes = 3ull << 30;
  n.info.disk_total_bytes = 10ull << 30;
  n.volumes = std::move(volumes);
  n.last_seen_ms = 1000;
  return n;
}

VolumeReport Vol(uint32_t id, const char* rp, uint64_t files, bool ro = false) {
  VolumeReport v;
  v.id = VolumeId(id);
  v.replica_placement = *ReplicaPlacement::Parse(rp);
  v.size_bytes = 4 << 20;
  v.garbage_bytes = 1 << 20;
  v.file_count = files;
  v.read_only = ro;
  return v;
}

TEST(StatusPage, ShowsServersVolumesHealthAndFreeSpace) {
  std::vector<NodeSnapshot> nodes{
      Node("10.0.0.1:8080", "r1", {Vol(1, "010", 7), Vol(2, "000", 3, true)}),
      Node("10.0.0.2:8080", "r2", {Vol(1, "010", 7)})};
  StatusPageInfo info{"10.0.0.9:9333", 2, "010", 1ull << 30, 3500};
  std::string h = RenderStatusPage(nodes, {}, info);
  EXPECT_NE(h.find("<b>2</b> volume servers in 2 racks, 1 data centers"), std::string::npos) << h;
  EXPECT_NE(h.find("<b>2</b> volumes, 13 of 16 slots free"), std::string::npos) << h;
  EXPECT_NE(h.find("disk <b>6.0 GiB</b> free of 20.0 GiB"), std::string::npos) << h;
  EXPECT_NE(h.find("replication healthy"), std::string::npos);
  EXPECT_NE(h.find("10.0.0.1:8080<br>10.0.0.2:8080"), std::string::npos) << h;  // replicas of 1
  EXPECT_NE(h.find("25.0%"), std::string::npos) << h;                           // garbage
  EXPECT_NE(h.find("read-only"), std::string::npos);
  EXPECT_NE(h.find("2.5 s ago"), std::string::npos) << h;
  EXPECT_EQ(h.find("<script"), std::string::npos);
}

TEST(StatusPage, UnderReplicatedVolumesStandOut) {
  std::vector<NodeSnapshot> nodes{Node("10.0.0.1:8080", "r1", {Vol(1, "010", 7)})};
  std::map<VolumeId, std::vector<std::string>> under{{VolumeId(1), {"10.0.0.1:8080"}}};
  std::string h = RenderStatusPage(nodes, under, StatusPageInfo{});
  EXPECT_NE(h.find("1 volumes under-replicated"), std::string::npos) << h;
  EXPECT_NE(h.find("under-replicated: 1 of 2 copies"), std::string::npos) << h;
  EXPECT_EQ(h.find("replication healthy"), std::string::npos);
}

TEST(StatusPage, AVolumeReportedForRepairSaysSo) {
  VolumeReport v = Vol(4, "001", 2);
  v.needs_repair = true;
  std::vector<NodeSnapshot> nodes{Node("10.0.0.1:8080", "r1", {v}),
                                  Node("10.0.0.2:8080", "r1", {Vol(4, "001", 1)})};
  StatusPageInfo info{"10.0.0.9:9333", 2, "001", 1ull << 30, 3500};
  std::string h = RenderStatusPage(nodes, {}, info);
  EXPECT_NE(h.find("needs repair: a replicated write failed"), std::string::npos) << h;
}

TEST(StatusPage, EscapesEverythingFromHeartbeats) {
  std::vector<NodeSnapshot> nodes{Node("10.0.0.1:8080", "<script>alert(1)</script>", {})};
  nodes[0].info.data_center = "a&b\"c'";
  std::string h = RenderStatusPage(nodes, {}, StatusPageInfo{});
  EXPECT_EQ(h.find("<script>"), std::string::npos);
  EXPECT_NE(h.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(h.find("a&amp;b&quot;c&#39;"), std::string::npos);
  EXPECT_EQ(HtmlEscape("<&>"), "&lt;&amp;&gt;");
}

}  // namespace
}  // namespace needlefs
