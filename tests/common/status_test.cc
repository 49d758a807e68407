#include "common/status.h"

#include <gtest/gtest.h>

namespace needlefs {
namespace {

TEST(StatusTest, OkIsCheapAndEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.posix_errno(), 0);
}

TEST(StatusTest, CarriesCodeMessageAndErrno) {
  Status s(StatusCode::kFailedPrecondition, "directory not empty", ENOTEMPTY);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.posix_errno(), ENOTEMPTY);
  EXPECT_EQ(s.ToString(), "FailedPrecondition: directory not empty");
  Status copy = s;
  EXPECT_EQ(copy, s);
  EXPECT_EQ(s.WithContext("rmdir /a").message(), "rmdir /a: directory not empty");
}

TEST(StatusTest, IOErrorMapsNoSpaceToResourceExhausted) {
  EXPECT_EQ(Status::IOError("write", ENOSPC).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Status::IOError("write", EIO).code(), StatusCode::kInternal);
  EXPECT_EQ(Status::IOError("write", EIO).posix_errno(), EIO);
}

StatusOr<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  NEEDLEFS_ASSIGN_OR_RETURN(int h, Half(x));
  NEEDLEFS_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::OK();
}

TEST(StatusTest, StatusOrAndMacrosPropagate) {
  int q = 0;
  EXPECT_TRUE(Quarter(8, &q).ok());
  EXPECT_EQ(q, 2);
  Status s = Quarter(6, &q);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*Half(4), 2);
}

}  // namespace
}  // namespace needlefs
