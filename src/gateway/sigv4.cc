#include "gateway/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "common/http.h"

namespace needlefs::gateway {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr int64_t kMaxSkewSeconds = 15 * 60;
/// A chunk is held whole until its signature is checked: bounded.
constexpr size_t kMaxChunkBytes = 16u << 20;

std::string Trim(std::string_view v) {
  // Leading/trailing spaces removed, inner runs of spaces made one.
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (;;) {
    const size_t next = s.find(sep, at);
    out.emplace_back(s.substr(at, next == std::string_view::npos ? s.npos : next - at));
    if (next == std::string_view::npos) return out;
    at = next + 1;
  }
}

/// Query parameters decoded (name -> value), in order.
std::vector<std::pair<std::string, std::string>> QueryParams(std::string_view raw) {
  std::vector<std::pair<std::string, std::string>> out;
  if (raw.empty()) return out;
  for (const std::string& part : Split(raw, '&')) {
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    out.emplace_back(PercentDecode(part.substr(0, eq)),
                     eq == std::string::npos ? "" : PercentDecode(part.substr(eq + 1)));
  }
  return out;
}

/// "20261207T120000Z" -> seconds since the epoch; -1 when malformed.
int64_t ParseAmzDate(const std::string& d) {
  std::tm tm{};
  if (d.size() != 16 || d[8] != 'T' || d[15] != 'Z') return -1;
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(d[i]))) return -1;
  }
  tm.tm_year = std::stoi(d.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(d.substr(4, 2)) - 1;
  tm.tm_mday = std::stoi(d.substr(6, 2));
  tm.tm_hour = std::stoi(d.substr(9, 2));
  tm.tm_min = std::stoi(d.substr(11, 2));
  tm.tm_sec = std::stoi(d.substr(13, 2));
  return static_cast<int64_t>(timegm(&tm));
}

AuthError Error(int status, std::string code, std::string message) {
  return AuthError{status, std::move(code), std::move(message)};
}

std::string SigningKey(const std::string& secret, const std::string& date,
                       const std::string& region, const std::string& service) {
  std::string k = HmacSha256("AWS4" + secret, date);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

}  // namespace

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string Sha256(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof(md));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char* kDigits = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 15]);
    }
  }
  return out;
}

std::variant<Authenticated, AuthError> Verify(const SignedRequest& r, const SecretLookup& secrets,
                                              int64_t now_unix, bool* anonymous) {
  *anonymous = false;
  auto header = [&](const std::string& name) -> std::string {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? "" : it->second;
  };
  const auto params = QueryParams(r.raw_query);
  auto param = [&](const std::string& name) -> std::optional<std::string> {
    for (const auto& [k, v] : params) {
      if (k == name) return v;
    }
    return std::nullopt;
  };
  std::string credential, signed_headers, signature, amz_date;
  const bool presigned = param("X-Amz-Signature").has_value();
  const std::string authorization = header("authorization");
  int64_t expires = 0;
  if (presigned) {
    if (param("X-Amz-Algorithm").value_or("") != kAlgorithm) {
      return Error(400, "AuthorizationQueryParametersError",
                   "X-Amz-Algorithm must be " + std::string(kAlgorithm));
    }
    credential = param("X-Amz-Credential").value_or("");
    signed_headers = param("X-Amz-SignedHeaders").value_or("");
    signature = *param("X-Amz-Signature");
    amz_date = param("X-Amz-Date").value_or("");
    const std::string e = param("X-Amz-Expires").value_or("");
    if (e.empty() || e.size() > 6 || !std::all_of(e.begin(), e.end(), ::isdigit)) {
      return Error(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be 1-604800");
    }
    expires = std::stoll(e);
    if (expires < 1 || expires > 604800) {
      return Error(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be 1-604800");
    }
  } else if (!authorization.empty()) {
    if (authorization.rfind(std::string(kAlgorithm) + " ", 0) != 0) {
      return Error(400, "InvalidArgument",
                   "only AWS4-HMAC-SHA256 (Signature Version 4) is supported");
    }
    for (std::string part : Split(authorization.substr(kAlgorithm.size() + 1), ',')) {
      part = Trim(part);
      const size_t eq = part.find('=');
      if (eq == std::string::npos) continue;
      const std::string k = part.substr(0, eq), v = part.substr(eq + 1);
      if (k == "Credential") credential = v;
      if (k == "SignedHeaders") signed_headers = v;
      if (k == "Signature") signature = v;
    }
    amz_date = header("x-amz-date");
  } else if (param("AWSAccessKeyId") || param("Signature")) {
    return Error(400, "InvalidRequest",
                 "Signature Version 2 is not supported: sign with AWS4-HMAC-SHA256 (s3v4)");
  } else {
    *anonymous = true;
    return Error(403, "AccessDenied", "anonymous access is not allowed here");
  }
  // Credential: AKID/yyyymmdd/region/service/aws4_request.
  const std::vector<std::string> cred = Split(credential, '/');
  if (cred.size() != 5 || cred[4] != "aws4_request" || cred[3] != "s3" || signed_headers.empty() ||
      signature.size() != 64) {
    return Error(400, "AuthorizationHeaderMalformed",
                 "the Credential, SignedHeaders or Signature is malformed");
  }
  const std::optional<std::string> secret = secrets(cred[0]);
  if (!secret) {
    return Error(403, "InvalidAccessKeyId", "the access key does not exist in our records");
  }
  const int64_t t = ParseAmzDate(amz_date);
  if (t < 0 || amz_date.substr(0, 8) != cred[1]) {
    return Error(403, "AccessDenied", "X-Amz-Date is missing, malformed or not the scope's date");
  }
  if (presigned) {
    if (now_unix > t + expires) return Error(403, "AccessDenied", "Request has expired");
    if (t - now_unix > kMaxSkewSeconds) {
      return Error(403, "RequestTimeTooSkewed", "the request time is in the future");
    }
  } else if (std::llabs(now_unix - t) > kMaxSkewSeconds) {
    return Error(403, "RequestTimeTooSkewed",
                 "the difference between the request time and the server's time is too large");
  }
  // The canonical request.
  std::string canonical = r.method + "\n";
  canonical += UriEncode(PercentDecode(r.raw_path.empty() ? "/" : r.raw_path), true) + "\n";
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [k, v] : params) {
    if (presigned && k == "X-Amz-Signature") continue;
    encoded.emplace_back(UriEncode(k, false), UriEncode(v, false));
  }
  std::sort(encoded.begin(), encoded.end());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (i) canonical += "&";
    canonical += encoded[i].first + "=" + encoded[i].second;
  }
  canonical += "\n";
  bool has_host = false;
  for (const std::string& name : Split(signed_headers, ';')) {
    if (name == "host") has_host = true;
    auto it = r.headers.find(name);
    canonical += name + ":" + (it == r.headers.end() ? "" : Trim(it->second)) + "\n";
  }
  if (!has_host) {
    return Error(400, "AuthorizationHeaderMalformed", "SignedHeaders must include host");
  }
  // Every x-amz-* header the request carries must be signed (as S3 wants),
  // so a presigned URL cannot be stretched with a copy source, metadata or
  // attributes its signer never saw. The body's hash is the one exception
  // of a presigned request (it is not known when the URL is made).
  {
    const std::vector<std::string> signed_list = Split(signed_headers, ';');
    for (const auto& [name, value] : r.headers) {
      (void)value;
      if (name.rfind("x-amz-", 0) != 0) continue;
      if (presigned && name == "x-amz-content-sha256") continue;
      if (std::find(signed_list.begin(), signed_list.end(), name) == signed_list.end()) {
        return Error(403, "AccessDenied",
                     "There were headers present in the request which were not signed: " + name);
      }
    }
  }
  canonical += "\n" + signed_headers + "\n";
  std::string payload = header("x-amz-content-sha256");
  if (presigned && payload.empty()) payload = "UNSIGNED-PAYLOAD";
  if (payload.empty()) {
    return Error(400, "InvalidRequest", "x-amz-content-sha256 is required (Signature Version 4)");
  }
  canonical += payload;
  const std::string scope = cred[1] + "/" + cred[2] + "/" + cred[3] + "/" + cred[4];
  const std::string to_sign =
      std::string(kAlgorithm) + "\n" + amz_date + "\n" + scope + "\n" + Hex(Sha256(canonical));
  const std::string key = SigningKey(*secret, cred[1], cred[2], cred[3]);
  const std::string expected = Hex(HmacSha256(key, to_sign));
  if (!ConstantTimeEqual(expected, signature)) {
    return Error(403, "SignatureDoesNotMatch",
                 "The request signature we calculated does not match the signature you provided. "
                 "Check your key and signing method.");
  }
  Authenticated a;
  a.access_key = cred[0];
  a.signing_key = key;
  a.amz_date = amz_date;
  a.scope = scope;
  a.seed_signature = signature;
  if (payload == "UNSIGNED-PAYLOAD") {
    a.payload = PayloadMode::kUnsigned;
  } else if (payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
    a.payload = PayloadMode::kStreamingSigned;
  } else if (payload == "STREAMING-UNSIGNED-PAYLOAD-TRAILER") {
    a.payload = PayloadMode::kStreamingUnsignedTrailer;
  } else if (payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER") {
    a.payload = PayloadMode::kStreamingSignedTrailer;
  } else if (payload.size() == 64 && std::all_of(payload.begin(), payload.end(), [](char c) {
               return HexDigit(c) >= 0 && !std::isupper(static_cast<unsigned char>(c));
             })) {
    a.payload = PayloadMode::kSha256;
    a.payload_sha256_hex = payload;
  } else {
    return Error(400, "InvalidArgument", "x-amz-content-sha256 has an unknown value");
  }
  return a;
}

// ---- aws-chunked ----

AwsChunkedDecoder::AwsChunkedDecoder(const Authenticated& auth,
                                     std::function<Status(std::string*)> raw)
    : auth_(auth), raw_(std::move(raw)), prev_signature_(auth.seed_signature) {}

Status AwsChunkedDecoder::Fill(size_t want) {
  while (buffer_.size() - at_ < want) {
    if (raw_end_) return Status::InvalidArgument("IncompleteBody: the aws-chunked body ends early");
    std::string piece;
    NEEDLEFS_RETURN_IF_ERROR(raw_(&piece));
    if (piece.empty()) {
      raw_end_ = true;
      continue;
    }
    if (at_ > 0) {
      buffer_.erase(0, at_);
      at_ = 0;
    }
    buffer_ += piece;
  }
  return Status::OK();
}

StatusOr<std::string> AwsChunkedDecoder::Line() {
  for (;;) {
    const size_t eol = buffer_.find("\r\n", at_);
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(at_, eol - at_);
      at_ = eol + 2;
      return line;
    }
    if (buffer_.size() - at_ > 4096) {
      return Status::InvalidArgument("InvalidRequest: an aws-chunked header line is too long");
    }
    NEEDLEFS_RETURN_IF_ERROR(Fill(buffer_.size() - at_ + 1));
  }
}

Status AwsChunkedDecoder::Next(std::string* piece) {
  piece->clear();
  if (done_) return Status::OK();
  const bool signed_chunks = auth_.payload == PayloadMode::kStreamingSigned ||
                             auth_.payload == PayloadMode::kStreamingSignedTrailer;
  auto header = Line();
  if (!header.ok()) return header.status();
  // "<hex>[;chunk-signature=<64 hex>]"
  const size_t semi = header->find(';');
  const std::string size_text = header->substr(0, semi);
  if (size_text.empty() || size_text.size() > 8 ||
      !std::all_of(size_text.begin(), size_text.end(), [](char c) { return HexDigit(c) >= 0; })) {
    return Status::InvalidArgument("InvalidRequest: a malformed aws-chunked chunk size");
  }
  const size_t size = std::stoul(size_text, nullptr, 16);  // at most 8 hex digits: no throw
  if (size > kMaxChunkBytes) {
    return Status::InvalidArgument("InvalidRequest: an aws-chunked chunk over 16 MiB");
  }
  std::string signature;
  if (semi != std::string::npos) {
    const std::string ext = header->substr(semi + 1);
    if (ext.rfind("chunk-signature=", 0) == 0) signature = ext.substr(16);
  }
  if (signed_chunks && signature.size() != 64) {
    return Status::InvalidArgument("SignatureDoesNotMatch: a chunk without its signature");
  }
  NEEDLEFS_RETURN_IF_ERROR(Fill(size + (size > 0 ? 2 : 0)));
  std::string data = buffer_.substr(at_, size);
  at_ += size;
  if (size > 0) {
    if (buffer_.compare(at_, 2, "\r\n") != 0) {
      return Status::InvalidArgument("IncompleteBody: a chunk is not followed by CRLF");
    }
    at_ += 2;
  }
  if (signed_chunks) {
    const std::string to_sign = "AWS4-HMAC-SHA256-PAYLOAD\n" + auth_.amz_date + "\n" + auth_.scope +
                                "\n" + prev_signature_ + "\n" + Hex(Sha256("")) + "\n" +
                                Hex(Sha256(data));
    const std::string expected = Hex(HmacSha256(auth_.signing_key, to_sign));
    if (!ConstantTimeEqual(expected, signature)) {
      return Status::InvalidArgument("SignatureDoesNotMatch: a chunk signature does not match");
    }
    prev_signature_ = signature;
  }
  if (size > 0) {
    *piece = std::move(data);
    return Status::OK();
  }
  // The last chunk; then trailers (for the *-TRAILER modes) and an empty line.
  std::string trailer_text;
  std::string trailer_signature;
  for (;;) {
    auto line = Line();
    if (!line.ok()) {
      // A plain STREAMING-AWS4-HMAC-SHA256-PAYLOAD body may end right after
      // the last chunk's CRLF.
      if (auth_.payload == PayloadMode::kStreamingSigned && raw_end_) break;
      return line.status();
    }
    if (line->empty()) break;
    const size_t colon = line->find(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("InvalidRequest: a malformed trailer");
    }
    std::string name = line->substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    const std::string value = Trim(line->substr(colon + 1));
    if (name == "x-amz-trailer-signature") {
      trailer_signature = value;
    } else {
      trailers_[name] = value;
      trailer_text += name + ":" + value + "\n";
    }
  }
  if (auth_.payload == PayloadMode::kStreamingSignedTrailer) {
    const std::string to_sign = "AWS4-HMAC-SHA256-TRAILER\n" + auth_.amz_date + "\n" + auth_.scope +
                                "\n" + prev_signature_ + "\n" + Hex(Sha256(trailer_text));
    if (!ConstantTimeEqual(Hex(HmacSha256(auth_.signing_key, to_sign)), trailer_signature)) {
      return Status::InvalidArgument("SignatureDoesNotMatch: the trailer signature does not match");
    }
  }
  done_ = true;
  return Status::OK();
}

}  // namespace needlefs::gateway
