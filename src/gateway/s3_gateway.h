// The S3 API over the file-system layer (client/file_system.h): a bucket is
// a top-level directory, key "a/b/c.txt" of bucket "photos" is the file
// /photos/a/b/c.txt (docs/s3.md states every rule). S3Gateway turns one
// parsed request (with a body to pull) into one response (with a body to
// push); the HTTP transport (s3_server.cc) only moves bytes, so Beast stays
// out of this header.
//
// Done: SigV4 (header, presigned, the aws-chunked payload modes with chunk
// signatures and checksum trailers), ListBuckets, CreateBucket,
// DeleteBucket, HeadBucket, GetBucketLocation, PutObject (streamed, atomic
// replace, Content-MD5, x-amz-content-sha256, If-None-Match: *),
// GetObject/HeadObject (one Range, If-Match, If-None-Match,
// If-Modified-Since, If-Unmodified-Since), DeleteObject, DeleteObjects,
// ListObjects v1 and v2 (prefix, delimiter, max-keys, continuation-token,
// start-after, marker, encoding-type=url), tagging, ListObjectVersions,
// multipart. The plain REST face: the same paths with `Authorization:
// Bearer <token>`, errors and listings as text instead of XML. Everything
// else is NotImplemented.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace needlefs {
class FileSystem;
}

namespace needlefs::gateway {

/// One access key: who it is in the namespace and what it may reach.
struct S3Identity {
  std::string name;
  std::string access_key;
  std::string secret_key;  ///< never logged
  /// Bearer token of the plain REST interface (`Authorization: Bearer
  /// <token>`); "" = none. Never logged.
  std::string token;
  uint32_t uid = 0;  ///< files are created and checked as uid/gid
  uint32_t gid = 0;
  std::vector<std::string> buckets{"*"};  ///< buckets it may use ("*": all)
};

/// The identities of a gateway, from a JSON file:
///   {"identities": [{"name": "admin", "access_key": "...", "secret_key": "...",
///                    "token": "...", "uid": 0, "gid": 0, "buckets": ["*"]}]}
struct S3Identities {
  std::vector<S3Identity> list;
  /// Errors: kNotFound (no file), kInvalidArgument (the message names the
  /// field; never a secret).
  static StatusOr<S3Identities> Load(const std::string& path);
  /// Writes `path` (mode 0600) with one new identity "admin" of random
  /// keys, and `credentials_path` (when not "") as an AWS shared-credentials
  /// file ([default] aws_access_key_id / aws_secret_access_key).
  static StatusOr<S3Identities> Create(const std::string& path,
                                       const std::string& credentials_path);
  /// An identity `name` with new random keys (uid/gid 0, every bucket).
  static S3Identity NewIdentity(const std::string& name);
  /// Writes the list to `path` (mode 0600, atomically: temporary file and
  /// rename). Errors: kIOError-like (errno).
  Status Save(const std::string& path) const;
  const S3Identity* Find(const std::string& access_key) const;
  /// The identity whose bearer token is `token` (compared in constant time).
  const S3Identity* FindToken(const std::string& token) const;
};

/// A request as the transport parsed it.
struct S3Request {
  std::string method;
  std::string raw_path;                        ///< as sent, percent-encoded
  std::string raw_query;                       ///< after '?', as sent
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string remote;                          ///< peer "ip:port"
  std::optional<uint64_t> content_length;
  /// Pulls the body: fills *piece and returns OK; an empty piece at the end.
  std::function<Status(std::string* piece)> body;
};

/// A response: headers and either `body` or `stream` (which writes
/// `stream_length` bytes through the writer it is given).
struct S3Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::function<Status(const std::function<Status(std::string_view)>& write)> stream;
  uint64_t stream_length = 0;
  /// The body was not read to its end: the connection must close after.
  bool close = false;
};

/// The xattr of a bucket's directory that sets the mode of the files S3
/// writes into it: octal text, as `needlefs admin s3.bucket.mode` writes it.
/// Without it, S3GatewayOptions::file_mode.
inline constexpr const char* kBucketFileModeXattr = "user.s3.file-mode";

/// Parses an octal file mode ("640" or "0640"): permission bits only, at
/// most 0777 (S3 never makes set-id files). Errors: kInvalidArgument.
StatusOr<uint32_t> ParseFileMode(std::string_view text);

struct S3GatewayOptions {
  /// Region reported by GetBucketLocation (any region is accepted in
  /// signatures). Default: "us-east-1".
  std::string region = "us-east-1";
  /// Virtual-hosted-style requests: "<bucket>.<domain>" in Host. "" = path
  /// style only.
  std::string domain;
  /// Mode of files and directories S3 creates (a bucket's
  /// kBucketFileModeXattr overrides file_mode for its files).
  uint32_t file_mode = 0644;
  uint32_t dir_mode = 0755;
  /// The object cache (headers of objects, and the bytes of those up to 64
  /// KiB), checked against meta's attributes at every request; bytes of
  /// bodies held at most. 0: off. Default: 32 MiB.
  uint64_t object_cache_bytes = 32ull << 20;
};

class S3Gateway {
 public:
  /// `fs` (not owned) must outlive the gateway.
  S3Gateway(FileSystem* fs, S3Identities identities, S3GatewayOptions options);
  ~S3Gateway();
  /// Runs one request. Never throws; every failure is an S3 error response.
  S3Response Handle(S3Request& request);
  /// Replaces the identities (the server reloads its file when it changes).
  void SetIdentities(S3Identities identities);
  /// Prometheus text of requests by operation and status class, and
  /// seconds by operation.
  std::string MetricsText() const;
  /// Requests and errors so far (for /metrics).
  uint64_t requests() const;
  uint64_t errors() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs::gateway
