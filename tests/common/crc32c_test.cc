#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace needlefs {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 B.4 and the common check value.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, ChainsAcrossPieces) {
  std::string s = "hello, needle world";
  uint32_t whole = Crc32c(s);
  uint32_t part = Crc32c(s.substr(0, 7));
  EXPECT_EQ(Crc32c(s.substr(7), part), whole);
}

}  // namespace
}  // namespace needlefs
