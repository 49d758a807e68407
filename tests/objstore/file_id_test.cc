#include "common/file_id.h"

#include <gtest/gtest.h>

namespace needlefs {
namespace {

TEST(FileIdTest, ParsesSeaweedFsExample) {
  auto id = FileId::Parse("3,01637037d6");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->volume, VolumeId(3));
  EXPECT_EQ(id->key, NeedleKey(1));
  EXPECT_EQ(id->cookie, Cookie(0x637037d6));
  EXPECT_EQ(id->ToString(), "3,01637037d6");
}

TEST(FileIdTest, AcceptsSlashFormAndExtension) {
  EXPECT_EQ(FileId::Parse("3/01637037d6")->key, NeedleKey(1));
  EXPECT_EQ(FileId::Parse("3,01637037d6.jpg")->cookie, Cookie(0x637037d6));
}

TEST(FileIdTest, RoundTripsLargeKeys) {
  FileId id{VolumeId(4294967295u), NeedleKey(0xfedcba9876543210ull), Cookie(0x1)};
  auto back = FileId::Parse(id.ToString());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, id);
}

TEST(FileIdTest, RejectsMalformed) {
  for (const char* bad :
       {"", "3", ",01637037d6", "3,", "3,637037d6", "x,01637037d6", "3,0g637037d6",
        "99999999999,01637037d6", "3,00112233445566778899aabbccdd"}) {
    EXPECT_EQ(FileId::Parse(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace needlefs
