#include "objstore/needle.h"

#include <gtest/gtest.h>

#include "objstore/index_file.h"
#include "objstore/superblock.h"

namespace needlefs {
namespace {

Needle Sample() {
  Needle n;
  n.cookie = Cookie(0x637037d6);
  n.key = NeedleKey(0x01);
  n.data = "hello";
  n.name = "a.txt";
  n.mime = "text/plain";
  n.last_modified_s = 1700000000;
  n.ttl = *Ttl::Parse("3d");
  n.append_at_ns = 1700000000123456789ull;
  return n;
}

TEST(NeedleTest, RoundTripKeepsEveryField) {
  Needle n = Sample();
  auto rec = EncodeNeedle(n);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->size() % 8, 0u);
  auto d = DecodeNeedle(*rec);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->cookie, n.cookie);
  EXPECT_EQ(d->key, n.key);
  EXPECT_EQ(d->data, "hello");
  EXPECT_EQ(d->name, "a.txt");
  EXPECT_EQ(d->mime, "text/plain");
  EXPECT_EQ(d->last_modified_s, 1700000000u);
  EXPECT_EQ(Ttl::ToString(d->ttl), "3d");
  EXPECT_EQ(d->append_at_ns, n.append_at_ns);
  EXPECT_EQ(d->data_crc, n.data_crc);
}

// Golden bytes: the on-disk format is frozen. If this test fails, the format
// changed: bump kSuperBlockVersion and write a migration instead.
TEST(NeedleTest, GoldenBytes) {
  Needle n;
  n.cookie = Cookie(0x637037d6);
  n.key = NeedleKey(0x0102030405060708ull);
  n.data = "abc";
  n.append_at_ns = 0x1122334455667788ull;
  auto rec = EncodeNeedle(n);
  ASSERT_TRUE(rec.ok());
  const unsigned char want[] = {
      0xd6, 0x37, 0x70, 0x63,                          // cookie
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // key
      0x08, 0x00, 0x00, 0x00,                          // body size = 4 + 3 + 1
      0x03, 0x00, 0x00, 0x00, 'a',  'b',  'c',         // data size, data
      0x00,                                            // flags
      0xb7, 0x3f, 0x4b, 0x36,                          // crc32c("abc") = 0x364b3fb7
      0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // append_at_ns
  };
  ASSERT_EQ(rec->size(), 40u);  // 16 + 8 + 16, already 8-aligned
  EXPECT_EQ(std::string(rec->data(), sizeof(want)),
            std::string(reinterpret_cast<const char*>(want), sizeof(want)));
  n.data = "abcd";  // one byte more needs 7 bytes of zero padding
  rec = EncodeNeedle(n);
  ASSERT_EQ(rec->size(), 48u);
  EXPECT_EQ(rec->substr(41), std::string(7, '\0'));
}

TEST(NeedleTest, EveryFlippedByteIsDetected) {
  Needle n = Sample();
  auto rec = EncodeNeedle(n);
  ASSERT_TRUE(rec.ok());
  size_t unpadded =
      kNeedleHeaderSize + DecodeNeedleHeader(rec->data()).body_size + kNeedleTrailerSize;
  for (size_t i = 0; i < unpadded; ++i) {
    std::string bad = *rec;
    bad[i] ^= 0x40;
    EXPECT_FALSE(DecodeNeedle(bad).ok()) << "flip at byte " << i << " went unnoticed";
  }
}

TEST(NeedleTest, TruncatedRecordIsCorruption) {
  Needle n = Sample();
  auto rec = EncodeNeedle(n);
  ASSERT_TRUE(rec.ok());
  for (size_t len : {size_t{0}, size_t{10}, rec->size() / 2, rec->size() - 12}) {
    EXPECT_TRUE(DecodeNeedle(std::string_view(*rec).substr(0, len)).status().IsCorruption());
  }
}

TEST(NeedleTest, TombstoneHasFixedSize) {
  Needle t;
  t.key = NeedleKey(9);
  t.flags = kFlagDeleted;
  auto rec = EncodeNeedle(t);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(DecodeNeedleHeader(rec->data()).body_size, kTombstoneBodySize);
  EXPECT_TRUE(DecodeNeedle(*rec)->deleted());
}

TEST(NeedleTest, RejectsOverlongName) {
  Needle n = Sample();
  n.name = std::string(256, 'x');
  EXPECT_EQ(EncodeNeedle(n).status().code(), StatusCode::kInvalidArgument);
}

TEST(NeedleTest, TtlParsing) {
  EXPECT_EQ(Ttl::Seconds(*Ttl::Parse("3m")), 180u);
  EXPECT_EQ(Ttl::Seconds(*Ttl::Parse("2h")), 7200u);
  EXPECT_EQ(*Ttl::Parse(""), 0);
  EXPECT_FALSE(Ttl::Parse("5x").ok());
  EXPECT_FALSE(Ttl::Parse("h").ok());
  EXPECT_FALSE(Ttl::Parse("300d").ok());
}

TEST(SuperBlockTest, RoundTripAndGoldenBytes) {
  SuperBlock sb;
  sb.replica_placement = *ReplicaPlacement::Parse("012");
  sb.ttl = 0x0103;
  sb.compaction_revision = 7;
  std::string b = sb.Encode();
  ASSERT_EQ(b.size(), kSuperBlockSize);
  EXPECT_EQ(b.substr(0, 4), "NDLV");
  EXPECT_EQ(b[4], 1);
  EXPECT_EQ(b[5], 12);
  auto d = SuperBlock::Decode(b);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->replica_placement.ToString(), "012");
  EXPECT_EQ(d->compaction_revision, 7);
  b[9] ^= 1;
  EXPECT_TRUE(SuperBlock::Decode(b).status().IsCorruption());
}

TEST(ReplicaPlacementTest, ParsesXyz) {
  auto p = ReplicaPlacement::Parse("102");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->diff_dc, 1);
  EXPECT_EQ(p->same_rack, 2);
  EXPECT_EQ(p->CopyCount(), 4);
  EXPECT_FALSE(ReplicaPlacement::Parse("01").ok());
  EXPECT_FALSE(ReplicaPlacement::Parse("0a1").ok());
}

TEST(IndexEntryTest, GoldenBytes) {
  char b[16];
  EncodeIndexEntry({NeedleKey(0x0102), 3, 0xFFFFFFFF}, b);
  EXPECT_EQ(std::string(b, 16), std::string("\x02\x01\0\0\0\0\0\0\x03\0\0\0\xff\xff\xff\xff", 16));
  IndexEntry e = DecodeIndexEntry(b);
  EXPECT_TRUE(e.tombstone());
  EXPECT_EQ(e.offset_bytes(), 24u);
}

}  // namespace
}  // namespace needlefs
