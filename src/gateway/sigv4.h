// AWS Signature Version 4 as an S3 server checks it
// (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html):
// the Authorization header and presigned URLs (X-Amz-* query parameters),
// the canonical request, the signing key, and the payload modes that
// x-amz-content-sha256 announces: a hex SHA-256 of the body,
// UNSIGNED-PAYLOAD, and aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD
// with a signature per chunk, STREAMING-UNSIGNED-PAYLOAD-TRAILER and
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER with a checksum trailer),
// decoded by AwsChunkedDecoder. No I/O here; secrets never reach a log.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace needlefs::gateway {

/// Lower-case hex of `bytes`.
std::string Hex(std::string_view bytes);
/// SHA-256 of `data` (32 raw bytes).
std::string Sha256(std::string_view data);
/// HMAC-SHA256(key, data) (32 raw bytes).
std::string HmacSha256(std::string_view key, std::string_view data);
/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters
/// (A-Z a-z 0-9 - . _ ~) as they are, everything else %XX (upper case);
/// '/' kept when `keep_slash`.
std::string UriEncode(std::string_view s, bool keep_slash);

/// What a request carries for SigV4, as received.
struct SignedRequest {
  std::string method;
  std::string raw_path;   ///< the request-target's path as sent (percent-encoded)
  std::string raw_query;  ///< after '?', as sent ("" when none)
  /// Header names in lower case; values as sent.
  std::map<std::string, std::string> headers;
};

/// How the body is protected (x-amz-content-sha256).
enum class PayloadMode {
  kSha256,                    ///< a hex SHA-256 of the whole body: check it at the end
  kUnsigned,                  ///< UNSIGNED-PAYLOAD
  kStreamingSigned,           ///< STREAMING-AWS4-HMAC-SHA256-PAYLOAD
  kStreamingUnsignedTrailer,  ///< STREAMING-UNSIGNED-PAYLOAD-TRAILER
  kStreamingSignedTrailer,    ///< STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
};

/// A request whose signature verified.
struct Authenticated {
  std::string access_key;
  PayloadMode payload = PayloadMode::kUnsigned;
  std::string payload_sha256_hex;  ///< kSha256: the announced hash
  // For chunk signatures (the streaming modes):
  std::string signing_key;     ///< derived key (raw)
  std::string amz_date;        ///< "20261207T120000Z"
  std::string scope;           ///< "20261207/us-east-1/s3/aws4_request"
  std::string seed_signature;  ///< the request's own signature (hex)
};

/// Why a request does not authenticate: the S3 error code and a message.
struct AuthError {
  int http_status = 403;
  std::string code;  ///< "SignatureDoesNotMatch", "InvalidAccessKeyId", ...
  std::string message;
};

/// The secret of an access key, or nullopt for an unknown key.
using SecretLookup = std::function<std::optional<std::string>(const std::string& access_key)>;

/// Checks the Authorization header or the presigned query (X-Amz-*) of `r`
/// at time `now_unix` (seconds): the signature, the access key, the date
/// (15 minutes of skew; a presigned URL until X-Amz-Expires). A request
/// with neither sets *anonymous and returns AccessDenied (the caller decides
/// whether anonymous access is allowed).
std::variant<Authenticated, AuthError> Verify(const SignedRequest& r, const SecretLookup& secrets,
                                              int64_t now_unix, bool* anonymous);

/// Decodes an aws-chunked body ("<hex size>[;chunk-signature=<sig>]\r\n
/// <data>\r\n ... 0[;...]\r\n[trailers]\r\n") pulled from `raw` (which fills
/// *piece and returns OK; an empty piece is the end), verifying every chunk
/// signature in the signed modes, and hands the data on in pieces.
class AwsChunkedDecoder {
 public:
  AwsChunkedDecoder(const Authenticated& auth, std::function<Status(std::string*)> raw);
  /// The next piece of decoded data ("" at the end, after the trailers were
  /// read). Errors: kInvalidArgument with a message starting with the S3
  /// code ("SignatureDoesNotMatch: ...", "IncompleteBody: ...",
  /// "InvalidRequest: ...").
  Status Next(std::string* piece);
  /// Trailer headers (lower-case names), once Next returned the end.
  const std::map<std::string, std::string>& trailers() const { return trailers_; }

 private:
  Status Fill(size_t want);  // buffer_ has at least `want` bytes, or error
  StatusOr<std::string> Line();

  Authenticated auth_;
  std::function<Status(std::string*)> raw_;
  std::string buffer_;
  size_t at_ = 0;
  bool raw_end_ = false;
  bool done_ = false;
  std::string prev_signature_;
  std::map<std::string, std::string> trailers_;
};

}  // namespace needlefs::gateway
