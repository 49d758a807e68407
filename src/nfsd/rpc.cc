#include "nfsd/rpc.h"

#include <cstring>

namespace needlefs::nfsd {
namespace {

constexpr uint32_t kCall = 0;
constexpr uint32_t kReply = 1;
constexpr uint32_t kMsgAccepted = 0;
constexpr uint32_t kMsgDenied = 1;
constexpr uint32_t kRpcVersion = 2;
constexpr size_t kMaxAuthBytes = 400;  // opaque_auth body (RFC 5531 section 8.2)

/// A bounds-checked XDR reader over a record.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool U32(uint32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(b_.data() + pos_);
    *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    pos_ += 4;
    return true;
  }
  /// Variable-length opaque of at most `max` bytes (padded to 4).
  bool Opaque(size_t max, std::string_view* out) {
    uint32_t n;
    if (!U32(&n) || n > max) return false;
    const size_t padded = (size_t{n} + 3) & ~size_t{3};
    if (b_.size() - pos_ < padded) return false;
    *out = b_.substr(pos_, n);
    pos_ += padded;
    return true;
  }
  std::string_view Rest() const { return b_.substr(pos_); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

void Put32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

bool ParseAuthSys(std::string_view body, AuthSys* out) {
  Reader r(body);
  std::string_view machine;
  uint32_t n;
  if (!r.U32(&out->stamp) || !r.Opaque(255, &machine) || !r.U32(&out->uid) || !r.U32(&out->gid) ||
      !r.U32(&n) || n > 16) {
    return false;
  }
  out->machine_name.assign(machine);
  out->gids.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (!r.U32(&out->gids[i])) return false;
  }
  return true;
}

std::string DeniedHeader(uint32_t xid) {
  std::string out;
  Put32(&out, xid);
  Put32(&out, kReply);
  Put32(&out, kMsgDenied);
  return out;
}

}  // namespace

CallProblem ParseCall(std::string_view record, RpcCall* call) {
  Reader r(record);
  uint32_t type, rpcvers, cred_flavor, verf_flavor;
  if (!r.U32(&call->xid) || !r.U32(&type) || type != kCall) return CallProblem::kNotACall;
  if (!r.U32(&rpcvers)) return CallProblem::kNotACall;
  if (rpcvers != kRpcVersion) return CallProblem::kRpcMismatch;
  std::string_view cred, verf;
  if (!r.U32(&call->prog) || !r.U32(&call->vers) || !r.U32(&call->proc) || !r.U32(&cred_flavor) ||
      !r.Opaque(kMaxAuthBytes, &cred) || !r.U32(&verf_flavor) || !r.Opaque(kMaxAuthBytes, &verf)) {
    return CallProblem::kBadCred;
  }
  call->flavor = cred_flavor;
  switch (cred_flavor) {
    case kAuthNone:
      break;
    case kAuthSys:
      if (!ParseAuthSys(cred, &call->sys)) return CallProblem::kBadCred;
      break;
    default:
      return CallProblem::kTooWeak;
  }
  call->args = r.Rest();
  return CallProblem::kNone;
}

std::optional<std::string> RefusedCallReply(CallProblem problem, uint32_t xid) {
  switch (problem) {
    case CallProblem::kRpcMismatch:
      return RpcMismatchReply(xid);
    case CallProblem::kBadCred:
      return AuthErrorReply(xid, 1);  // AUTH_BADCRED
    case CallProblem::kTooWeak:
      return AuthErrorReply(xid, 5);  // AUTH_TOOWEAK
    case CallProblem::kNone:
    case CallProblem::kNotACall:
      break;
  }
  return std::nullopt;
}

void AcceptedReplyHeader(uint32_t xid, uint32_t stat, char* out) {
  const uint32_t words[6] = {xid, kReply, kMsgAccepted, kAuthNone, 0, stat};
  for (int i = 0; i < 6; ++i) {
    out[4 * i] = static_cast<char>(words[i] >> 24);
    out[4 * i + 1] = static_cast<char>(words[i] >> 16);
    out[4 * i + 2] = static_cast<char>(words[i] >> 8);
    out[4 * i + 3] = static_cast<char>(words[i]);
  }
}

std::string AcceptedReply(uint32_t xid, AcceptStat stat) {
  std::string out(kAcceptedReplyHeaderBytes, '\0');
  AcceptedReplyHeader(xid, stat, out.data());
  return out;
}

std::string ProgMismatchReply(uint32_t xid, uint32_t low, uint32_t high) {
  std::string out = AcceptedReply(xid, kProgMismatch);
  Put32(&out, low);
  Put32(&out, high);
  return out;
}

std::string RpcMismatchReply(uint32_t xid) {
  std::string out = DeniedHeader(xid);
  Put32(&out, 0);  // RPC_MISMATCH
  Put32(&out, kRpcVersion);
  Put32(&out, kRpcVersion);
  return out;
}

std::string AuthErrorReply(uint32_t xid, uint32_t auth_stat) {
  std::string out = DeniedHeader(xid);
  Put32(&out, 1);  // AUTH_ERROR
  Put32(&out, auth_stat);
  return out;
}

}  // namespace needlefs::nfsd
