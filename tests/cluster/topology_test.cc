#include "cluster/topology.h"

#include <gtest/gtest.h>

#include <set>

namespace needlefs {
namespace {

NodeInfo Node(const std::string& id, const std::string& dc, const std::string& rack, int max = 4) {
  NodeInfo n;
  n.id = id;
  n.data_center = dc;
  n.rack = rack;
  n.max_volumes = max;
  return n;
}

VolumeReport Vol(uint32_t id, const std::string& rp, uint64_t size = 0, bool ro = false) {
  VolumeReport v;
  v.id = VolumeId(id);
  v.replica_placement = *ReplicaPlacement::Parse(rp);
  v.size_bytes = size;
  v.read_only = ro;
  return v;
}

// dc1: r1 {a, b}, r2 {c}; dc2: r1 {d}
class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topo_.UpdateNode(Node("a:1", "dc1", "r1"), {}, 0);
    topo_.UpdateNode(Node("b:1", "dc1", "r1"), {}, 0);
    topo_.UpdateNode(Node("c:1", "dc1", "r2"), {}, 0);
    topo_.UpdateNode(Node("d:1", "dc2", "r1"), {}, 0);
  }
  std::string DcOf(const std::string& id) { return id == "d:1" ? "dc2" : "dc1"; }
  std::string RackOf(const std::string& id) { return id == "c:1" ? "r2" : "r1"; }
  Topology topo_{1000};
};

TEST_F(TopologyTest, PlacesEveryCodeTheTopologyAllows) {
  auto p000 = topo_.PlaceVolume(*ReplicaPlacement::Parse("000"));
  ASSERT_TRUE(p000.ok());
  EXPECT_EQ(p000->size(), 1u);

  auto p001 = topo_.PlaceVolume(*ReplicaPlacement::Parse("001"));
  ASSERT_TRUE(p001.ok()) << p001.status().ToString();
  ASSERT_EQ(p001->size(), 2u);
  EXPECT_EQ(std::set<std::string>(p001->begin(), p001->end()),
            (std::set<std::string>{"a:1", "b:1"}));  // the only rack with two servers

  auto p010 = topo_.PlaceVolume(*ReplicaPlacement::Parse("010"));
  ASSERT_TRUE(p010.ok()) << p010.status().ToString();
  ASSERT_EQ(p010->size(), 2u);
  EXPECT_EQ(DcOf((*p010)[0]), DcOf((*p010)[1]));
  EXPECT_NE(RackOf((*p010)[0]), RackOf((*p010)[1]));

  auto p100 = topo_.PlaceVolume(*ReplicaPlacement::Parse("100"));
  ASSERT_TRUE(p100.ok()) << p100.status().ToString();
  ASSERT_EQ(p100->size(), 2u);
  EXPECT_NE(DcOf((*p100)[0]), DcOf((*p100)[1]));

  auto p011 = topo_.PlaceVolume(*ReplicaPlacement::Parse("011"));
  ASSERT_TRUE(p011.ok()) << p011.status().ToString();
  EXPECT_EQ(std::set<std::string>(p011->begin(), p011->end()),
            (std::set<std::string>{"a:1", "b:1", "c:1"}));

  auto p111 = topo_.PlaceVolume(*ReplicaPlacement::Parse("111"));
  ASSERT_TRUE(p111.ok()) << p111.status().ToString();
  EXPECT_EQ(p111->size(), 4u);
}

TEST_F(TopologyTest, RefusesCodesTheTopologyCannotSatisfyAndSaysWhy) {
  auto p200 = topo_.PlaceVolume(*ReplicaPlacement::Parse("200"));
  EXPECT_EQ(p200.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p200.status().message().find("3 data centers"), std::string::npos)
      << p200.status().message();
  auto p002 = topo_.PlaceVolume(*ReplicaPlacement::Parse("002"));
  EXPECT_EQ(p002.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p002.status().message().find("needs 3"), std::string::npos) << p002.status().message();
  auto p020 = topo_.PlaceVolume(*ReplicaPlacement::Parse("020"));
  EXPECT_EQ(p020.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p020.status().message().find("racks"), std::string::npos) << p020.status().message();
}

TEST_F(TopologyTest, PinsDataCenterAndRackAndSkipsFullServers) {
  auto p = topo_.PlaceVolume(*ReplicaPlacement::Parse("000"), "dc2");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)[0], "d:1");
  p = topo_.PlaceVolume(*ReplicaPlacement::Parse("000"), "dc1", "r2");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)[0], "c:1");
  // Fill b: 001 in dc1/r1 becomes impossible.
  topo_.UpdateNode(Node("b:1", "dc1", "r1", 2), {Vol(1, "000"), Vol(2, "000")}, 0);
  EXPECT_EQ(topo_.FreeSlots("b:1"), 0);
  EXPECT_FALSE(topo_.PlaceVolume(*ReplicaPlacement::Parse("001")).ok());
  // The emptiest server gets the next single copy.
  topo_.UpdateNode(Node("a:1", "dc1", "r1"), {Vol(3, "000"), Vol(4, "000")}, 0);
  p = topo_.PlaceVolume(*ReplicaPlacement::Parse("000"), "dc1");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)[0], "c:1");
}

TEST_F(TopologyTest, WritableNeedsEveryReplicaAndRoom) {
  LayoutKey layout{"", ReplicaPlacement::Parse("001")->ToByte(), 0};
  EXPECT_FALSE(topo_.PickWritable(layout).has_value());
  topo_.AddVolume(Vol(7, "001"), {"a:1", "b:1"});
  EXPECT_EQ(topo_.PickWritable(layout), VolumeId(7));
  EXPECT_EQ(topo_.Lookup(VolumeId(7)).size(), 2u);
  EXPECT_EQ(topo_.MaxVolumeId(), VolumeId(7));

  // A replica goes away: not writable, under-replicated.
  ASSERT_TRUE(topo_.RemoveNode("b:1"));
  EXPECT_FALSE(topo_.PickWritable(layout).has_value());
  auto under = topo_.UnderReplicated();
  ASSERT_EQ(under.count(VolumeId(7)), 1u);
  EXPECT_EQ(under[VolumeId(7)], std::vector<std::string>{"a:1"});

  // Read-only or full volumes are not writable either.
  topo_.UpdateNode(Node("b:1", "dc1", "r1"), {Vol(7, "001", 0, /*ro=*/true)}, 0);
  EXPECT_FALSE(topo_.PickWritable(layout).has_value());
  topo_.UpdateNode(Node("b:1", "dc1", "r1"), {Vol(7, "001", 5000)}, 0);
  EXPECT_FALSE(topo_.PickWritable(layout).has_value());
  topo_.UpdateNode(Node("b:1", "dc1", "r1"), {Vol(7, "001")}, 0);
  EXPECT_EQ(topo_.PickWritable(layout), VolumeId(7));
  EXPECT_EQ(topo_.WritableCount(layout), 1u);
  // Another layout does not see it.
  EXPECT_FALSE(topo_.PickWritable(LayoutKey{"pics", layout.replica_placement, 0}).has_value());
}

TEST_F(TopologyTest, DeadNodesAreRemovedAfterTheTimeout) {
  topo_.UpdateNode(Node("a:1", "dc1", "r1"), {Vol(9, "000")}, 10'000);
  auto dead = topo_.RemoveDeadNodes(15'000, 10'000);
  EXPECT_EQ(std::set<std::string>(dead.begin(), dead.end()),
            (std::set<std::string>{"b:1", "c:1", "d:1"}));
  EXPECT_EQ(topo_.Lookup(VolumeId(9)).size(), 1u);
  EXPECT_EQ(topo_.FreeSlots("b:1"), -1);
}

TEST_F(TopologyTest, DeltaHeartbeatsChangeOnlyWhatTheyName) {
  topo_.UpdateNode(Node("a:1", "dc1", "r1"), {Vol(1, "000"), Vol(2, "000"), Vol(3, "000")}, 0);
  EXPECT_TRUE(topo_.ApplyDelta(Node("a:1", "dc1", "r1"),
                               {Vol(2, "000", 0, /*ro=*/true), Vol(4, "000")}, {VolumeId(3)}, 5));
  EXPECT_EQ(topo_.Lookup(VolumeId(1)).size(), 1u) << "unnamed volumes stay";
  EXPECT_TRUE(topo_.Lookup(VolumeId(3)).empty()) << "deleted";
  EXPECT_EQ(topo_.Lookup(VolumeId(4)).size(), 1u) << "added";
  const LayoutKey layout{"", ReplicaPlacement::Parse("000")->ToByte(), 0};
  EXPECT_EQ(topo_.WritableCount(layout), 2u) << "volume 2 turned read-only";
  // A node dropped as dead is not revived by a delta: it must send it all.
  EXPECT_TRUE(topo_.RemoveNode("a:1"));
  EXPECT_FALSE(topo_.ApplyDelta(Node("a:1", "dc1", "r1"), {Vol(5, "000")}, {}, 9));
  EXPECT_TRUE(topo_.Lookup(VolumeId(5)).empty());
}

TEST_F(TopologyTest, RemembersTheLargestReportedFileKey) {
  VolumeReport v = Vol(4, "000");
  v.max_file_key = 700;
  topo_.UpdateNode(Node("a:1", "dc1", "r1"), {v}, 0);
  v.max_file_key = 90;
  topo_.UpdateNode(Node("b:1", "dc1", "r1"), {v}, 0);
  EXPECT_EQ(topo_.MaxFileKey(), 700u);
  EXPECT_TRUE(topo_.RemoveNode("a:1"));
  EXPECT_EQ(topo_.MaxFileKey(), 700u) << "a departed server's keys stay taken";
}

TEST(PlacementFitsTest, CountsCopiesPerDataCenterRackAndServer) {
  auto rp = [](const char* c) { return *ReplicaPlacement::Parse(c); };
  const ReplicaSite a{"dc1", "r1"}, a2{"dc1", "r1"}, c{"dc1", "r2"}, c2{"dc1", "r3"},
      d{"dc2", "r1"};
  EXPECT_TRUE(PlacementFits(rp("000"), {a}, true));
  EXPECT_FALSE(PlacementFits(rp("000"), {a, a2}, false));
  EXPECT_TRUE(PlacementFits(rp("001"), {a, a2}, true));
  EXPECT_FALSE(PlacementFits(rp("001"), {a, c}, false)) << "001 wants the same rack";
  EXPECT_TRUE(PlacementFits(rp("010"), {a, c}, true));
  EXPECT_TRUE(PlacementFits(rp("010"), {c}, false)) << "one copy can still grow into 010";
  EXPECT_FALSE(PlacementFits(rp("010"), {c}, true));
  EXPECT_TRUE(PlacementFits(rp("020"), {a, c, c2}, true));
  EXPECT_FALSE(PlacementFits(rp("020"), {a, c, c}, false)) << "y copies in different racks";
  EXPECT_TRUE(PlacementFits(rp("100"), {d, a}, true)) << "any replica may be the main one";
  EXPECT_TRUE(PlacementFits(rp("110"), {a, c, d}, true));
  EXPECT_FALSE(PlacementFits(rp("110"), {a, a2, d}, false));
}

TEST_F(TopologyTest, PlaceReplicaKeepsThePlacementAndPrefersFreeSlots) {
  // Volume 1 (010) lost its copy in r2: only c (dc1/r2) fits.
  topo_.UpdateNode(Node("a:1", "dc1", "r1"), {Vol(1, "010")}, 0);
  auto t = topo_.PlaceReplica(VolumeId(1));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t, "c:1");
  // Volume 2 (001) on a: b is the only other server of rack r1.
  topo_.UpdateNode(Node("a:1", "dc1", "r1"), {Vol(1, "010"), Vol(2, "001")}, 0);
  EXPECT_EQ(*topo_.PlaceReplica(VolumeId(2)), "b:1");
  // Volume 3 (100) on d: a, b or c; the emptiest (b and c have 4 free, a 2) wins.
  topo_.UpdateNode(Node("d:1", "dc2", "r1"), {Vol(3, "100")}, 0);
  auto t3 = topo_.PlaceReplica(VolumeId(3));
  ASSERT_TRUE(t3.ok());
  EXPECT_TRUE(*t3 == "b:1" || *t3 == "c:1") << *t3;
  // Nothing fits (d is alone in dc2): a clear error naming the volume and its code.
  topo_.UpdateNode(Node("d:1", "dc2", "r1"), {Vol(3, "100"), Vol(4, "001")}, 0);
  auto none = topo_.PlaceReplica(VolumeId(4));
  ASSERT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("volume 4"), std::string::npos);
  EXPECT_NE(none.status().message().find("001"), std::string::npos);
  EXPECT_EQ(topo_.PlaceReplica(VolumeId(99)).status().code(), StatusCode::kNotFound);
}

TEST_F(TopologyTest, PlanBalanceEvensCountsWithoutBreakingPlacement) {
  // Four 001 volumes on a and b (rack r1); c (r2) and d (dc2) are empty but
  // may not take them (001 keeps both copies in one rack): nothing to move.
  std::vector<VolumeReport> vols{Vol(1, "001"), Vol(2, "001"), Vol(3, "001"), Vol(4, "001")};
  topo_.UpdateNode(Node("a:1", "dc1", "r1", 8), vols, 0);
  topo_.UpdateNode(Node("b:1", "dc1", "r1", 8), vols, 0);
  EXPECT_TRUE(topo_.PlanBalance().empty());
  // A third server in r1: it takes volumes from a and b until even (3/3/2).
  topo_.UpdateNode(Node("e:1", "dc1", "r1", 8), {}, 0);
  auto moves = topo_.PlanBalance();
  ASSERT_EQ(moves.size(), 2u);
  std::set<std::string> from;
  for (const auto& m : moves) {
    EXPECT_EQ(m.to, "e:1");
    from.insert(m.from);
  }
  EXPECT_EQ(from, (std::set<std::string>{"a:1", "b:1"}));
  EXPECT_NE(moves[0].volume, moves[1].volume) << "never two copies on one server";
  EXPECT_EQ(topo_.PlanBalance(1).size(), 1u);
}

}  // namespace
}  // namespace needlefs
