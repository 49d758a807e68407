// ONC RPC version 2 messages (RFC 5531) as an RPC server sees them: the
// call header parsed from a record (with AUTH_NONE and AUTH_SYS
// credentials), and the reply headers built around a procedure's XDR
// results. The procedures' own arguments and results are XDR encoded by
// the rpcgen routines of xdr/; this file does only the envelope.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace needlefs::nfsd {

/// auth_flavor (RFC 5531 section 8.2).
enum AuthFlavor : uint32_t {
  kAuthNone = 0,
  kAuthSys = 1,
};

/// authsys_parms (RFC 5531 appendix A).
struct AuthSys {
  uint32_t stamp = 0;
  std::string machine_name;  ///< at most 255 bytes
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> gids;  ///< at most 16
};

/// A parsed call_body (RFC 5531 section 9).
struct RpcCall {
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  uint32_t flavor = kAuthNone;  ///< the credential's flavor
  AuthSys sys;                  ///< when flavor == kAuthSys
  std::string_view args;        ///< the procedure's XDR arguments (points into the record)
};

/// Why a record is not a call this server can run.
enum class CallProblem {
  kNone,
  kNotACall,     ///< too short or not a CALL: drop it, no reply is possible
  kRpcMismatch,  ///< rpcvers != 2: MSG_DENIED RPC_MISMATCH
  kBadCred,      ///< malformed credential: MSG_DENIED AUTH_ERROR AUTH_BADCRED
  kTooWeak,      ///< an unknown flavor: MSG_DENIED AUTH_ERROR AUTH_TOOWEAK
};

/// Parses the call header of `record` (one whole RPC record, without the
/// record mark) into `*call` (whose `args` points into `record`). Returns
/// kNone on success; otherwise what is wrong (with `call->xid` set when the
/// record was long enough to carry one).
CallProblem ParseCall(std::string_view record, RpcCall* call);

/// The reply to a record ParseCall refused (`problem` != kNone): MSG_DENIED
/// RPC_MISMATCH or AUTH_ERROR (AUTH_BADCRED, AUTH_TOOWEAK); nullopt for
/// kNotACall (no reply is possible: the transport closes the connection).
std::optional<std::string> RefusedCallReply(CallProblem problem, uint32_t xid);

/// accept_stat (RFC 5531 section 9).
enum AcceptStat : uint32_t {
  kSuccess = 0,
  kProgUnavail = 1,
  kProgMismatch = 2,
  kProcUnavail = 3,
  kGarbageArgs = 4,
  kSystemErr = 5,
};

/// Bytes of an accepted reply's header (xid .. accept_stat), which
/// AcceptedReplyHeader writes: results follow it.
inline constexpr size_t kAcceptedReplyHeaderBytes = 24;
/// Writes an accepted reply header (AUTH_NONE verifier) with `stat` into
/// `out` (at least kAcceptedReplyHeaderBytes).
void AcceptedReplyHeader(uint32_t xid, uint32_t stat, char* out);
/// A whole accepted reply without results: PROG_UNAVAIL, PROC_UNAVAIL,
/// GARBAGE_ARGS, SYSTEM_ERR.
std::string AcceptedReply(uint32_t xid, AcceptStat stat);
/// PROG_MISMATCH with the versions this program supports.
std::string ProgMismatchReply(uint32_t xid, uint32_t low, uint32_t high);
/// MSG_DENIED: RPC_MISMATCH (versions 2..2) or AUTH_ERROR with `auth_stat`
/// (AUTH_BADCRED 1, AUTH_TOOWEAK 5).
std::string RpcMismatchReply(uint32_t xid);
std::string AuthErrorReply(uint32_t xid, uint32_t auth_stat);

}  // namespace needlefs::nfsd
