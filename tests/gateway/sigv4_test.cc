// SigV4 against the worked examples of the S3 documentation
// ("Signature Calculations for the Authorization Header" and "Signature
// Calculation: Transfer Payload in Multiple Chunks"), plus the failures a
// server must catch: a wrong secret, an unknown key, a stale date, an
// expired presigned URL, a corrupted chunk, a bad trailer signature.
#include "gateway/sigv4.h"

#include <gtest/gtest.h>

namespace needlefs::gateway {
namespace {

constexpr const char* kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const int64_t kWhen = 1369353600;  // 20130524T000000Z

std::optional<std::string> Secrets(const std::string& ak) {
  if (ak == kAccessKey) return std::string(kSecret);
  return std::nullopt;
}

SignedRequest GetObjectExample(const std::string& signature) {
  SignedRequest r;
  r.method = "GET";
  r.raw_path = "/test.txt";
  r.headers["host"] = "examplebucket.s3.amazonaws.com";
  r.headers["range"] = "bytes=0-9";
  r.headers["x-amz-content-sha256"] =
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  r.headers["x-amz-date"] = "20130524T000000Z";
  r.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=" +
      signature;
  return r;
}

TEST(SigV4Test, TheDocumentedGetObjectExampleVerifies) {
  bool anonymous = true;
  auto v =
      Verify(GetObjectExample("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
             Secrets, kWhen, &anonymous);
  ASSERT_TRUE(std::holds_alternative<Authenticated>(v)) << std::get<AuthError>(v).message;
  EXPECT_FALSE(anonymous);
  EXPECT_EQ(std::get<Authenticated>(v).access_key, kAccessKey);
  EXPECT_EQ(std::get<Authenticated>(v).payload, PayloadMode::kSha256);
}

TEST(SigV4Test, WrongSignaturesKeysAndDatesAreRefused) {
  bool anonymous = false;
  auto v =
      Verify(GetObjectExample("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42"),
             Secrets, kWhen, &anonymous);
  ASSERT_TRUE(std::holds_alternative<AuthError>(v));
  EXPECT_EQ(std::get<AuthError>(v).code, "SignatureDoesNotMatch");
  EXPECT_EQ(std::get<AuthError>(v).http_status, 403);
  // A header changed after signing.
  SignedRequest tampered =
      GetObjectExample("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  tampered.headers["range"] = "bytes=0-99";
  v = Verify(tampered, Secrets, kWhen, &anonymous);
  EXPECT_EQ(std::get<AuthError>(v).code, "SignatureDoesNotMatch");
  // Unknown key.
  v = Verify(
      GetObjectExample("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
      [](const std::string&) { return std::nullopt; }, kWhen, &anonymous);
  EXPECT_EQ(std::get<AuthError>(v).code, "InvalidAccessKeyId");
  // 16 minutes late.
  v = Verify(GetObjectExample("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
             Secrets, kWhen + 16 * 60, &anonymous);
  EXPECT_EQ(std::get<AuthError>(v).code, "RequestTimeTooSkewed");
  // No signature at all: anonymous.
  SignedRequest none;
  none.method = "GET";
  none.raw_path = "/x";
  v = Verify(none, Secrets, kWhen, &anonymous);
  EXPECT_TRUE(anonymous);
  EXPECT_EQ(std::get<AuthError>(v).code, "AccessDenied");
}

TEST(SigV4Test, TheDocumentedPresignedUrlVerifiesAndExpires) {
  SignedRequest r;
  r.method = "GET";
  r.raw_path = "/test.txt";
  r.raw_query =
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-"
      "1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders="
      "host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
  r.headers["host"] = "examplebucket.s3.amazonaws.com";
  bool anonymous = false;
  auto v = Verify(r, Secrets, kWhen + 3600, &anonymous);
  ASSERT_TRUE(std::holds_alternative<Authenticated>(v)) << std::get<AuthError>(v).message;
  EXPECT_EQ(std::get<Authenticated>(v).payload, PayloadMode::kUnsigned);
  v = Verify(r, Secrets, kWhen + 86401, &anonymous);
  ASSERT_TRUE(std::holds_alternative<AuthError>(v));
  EXPECT_EQ(std::get<AuthError>(v).message, "Request has expired");
}

/// The documented chunked PUT: 66,560 bytes of 'a' in chunks of 65,536 and
/// 1,024, then the final empty chunk.
SignedRequest ChunkedExample() {
  SignedRequest r;
  r.method = "PUT";
  r.raw_path = "/examplebucket/chunkObject.txt";
  r.headers["host"] = "s3.amazonaws.com";
  r.headers["x-amz-date"] = "20130524T000000Z";
  r.headers["x-amz-storage-class"] = "REDUCED_REDUNDANCY";
  r.headers["x-amz-content-sha256"] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
  r.headers["content-encoding"] = "aws-chunked";
  r.headers["x-amz-decoded-content-length"] = "66560";
  r.headers["content-length"] = "66824";
  r.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
      "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
      "x-amz-decoded-content-length;x-amz-storage-class,Signature="
      "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
  return r;
}

std::string ChunkedBody(char corrupt_at_65000 = 'a') {
  std::string first(65536, 'a');
  first[65000] = corrupt_at_65000;
  return "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
         "\r\n" +
         first +
         "\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
         "\r\n" +
         std::string(1024, 'a') +
         "\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
         "\r\n\r\n";
}

/// Decodes `body` fed in pieces of `step` bytes; the data, or the error.
StatusOr<std::string> Decode(const Authenticated& a, const std::string& body, size_t step) {
  size_t at = 0;
  AwsChunkedDecoder d(a, [&](std::string* piece) {
    *piece = body.substr(at, step);
    at += piece->size();
    return Status::OK();
  });
  std::string out, piece;
  for (;;) {
    Status s = d.Next(&piece);
    if (!s.ok()) return s;
    if (piece.empty()) return out;
    out += piece;
  }
}

TEST(SigV4Test, TheDocumentedChunkedUploadDecodesWithEveryChunkVerified) {
  bool anonymous = false;
  auto v = Verify(ChunkedExample(), Secrets, kWhen, &anonymous);
  ASSERT_TRUE(std::holds_alternative<Authenticated>(v)) << std::get<AuthError>(v).message;
  const Authenticated& a = std::get<Authenticated>(v);
  EXPECT_EQ(a.payload, PayloadMode::kStreamingSigned);
  for (size_t step : {1u, 7u, 4096u, 1u << 20}) {
    auto data = Decode(a, ChunkedBody(), step);
    ASSERT_TRUE(data.ok()) << step << ": " << data.status().ToString();
    EXPECT_EQ(*data, std::string(66560, 'a'));
  }
  // One byte changed inside the first chunk: its signature fails.
  auto bad = Decode(a, ChunkedBody('b'), 4096);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("SignatureDoesNotMatch"), std::string::npos);
  // Cut short: IncompleteBody, never a silent end.
  const std::string body = ChunkedBody();
  auto cut = Decode(a, body.substr(0, 30000), 4096);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("IncompleteBody"), std::string::npos);
}

TEST(SigV4Test, UnsignedTrailerBodiesCarryTheirChecksum) {
  Authenticated a;
  a.payload = PayloadMode::kStreamingUnsignedTrailer;
  const std::string body =
      "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
  size_t at = 0;
  AwsChunkedDecoder d(a, [&](std::string* piece) {
    *piece = body.substr(at, 3);
    at += piece->size();
    return Status::OK();
  });
  std::string out, piece;
  for (;;) {
    ASSERT_TRUE(d.Next(&piece).ok());
    if (piece.empty()) break;
    out += piece;
  }
  EXPECT_EQ(out, "hello world");
  EXPECT_EQ(d.trailers().at("x-amz-checksum-crc32"), "DUoRhQ==");
  // A malformed size line is refused.
  const std::string junk = "zz\r\nhello\r\n";
  at = 0;
  AwsChunkedDecoder j(a, [&](std::string* p) {
    *p = junk.substr(at, 100);
    at += p->size();
    return Status::OK();
  });
  EXPECT_FALSE(j.Next(&piece).ok());
}

TEST(SigV4Test, UriEncodingFollowsSigV4) {
  EXPECT_EQ(UriEncode("a b+c/d~e_f.g-h", true), "a%20b%2Bc/d~e_f.g-h");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(UriEncode("\xc3\xbc", false), "%C3%BC");
}

}  // namespace
}  // namespace needlefs::gateway
