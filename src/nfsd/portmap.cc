#include "nfsd/portmap.h"

#include "nfsd/rpc.h"

namespace needlefs::nfsd {
namespace {

enum PmapProc : uint32_t { kNull = 0, kSet = 1, kUnset = 2, kGetPort = 3, kDump = 4 };

bool Get32(std::string_view b, size_t i, uint32_t* v) {
  if (b.size() < 4 * (i + 1)) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + 4 * i);
  *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  return true;
}

void Put32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

}  // namespace

void Portmapper::Set(uint32_t prog, uint32_t vers, uint32_t prot, uint32_t port) {
  std::lock_guard<std::mutex> g(mu_);
  map_[{prog, vers, prot}] = port;
}

std::optional<std::string> Portmapper::Handle(std::string_view record, const Peer&) {
  RpcCall call;
  if (CallProblem p = ParseCall(record, &call); p != CallProblem::kNone) {
    return RefusedCallReply(p, call.xid);
  }
  if (call.prog != kPortmapProgram) return AcceptedReply(call.xid, kProgUnavail);
  if (call.vers != kPortmapVersion) {
    return ProgMismatchReply(call.xid, kPortmapVersion, kPortmapVersion);
  }
  std::string out = AcceptedReply(call.xid, kSuccess);
  // struct mapping { prog, vers, prot, port } (RFC 1833 section 3.1).
  uint32_t prog, vers, prot, port;
  const bool mapping = Get32(call.args, 0, &prog) && Get32(call.args, 1, &vers) &&
                       Get32(call.args, 2, &prot) && Get32(call.args, 3, &port);
  std::lock_guard<std::mutex> g(mu_);
  switch (call.proc) {
    case kNull:
      return out;
    case kSet: {
      if (!mapping) return AcceptedReply(call.xid, kGarbageArgs);
      const bool fresh = map_.emplace(std::make_tuple(prog, vers, prot), port).second;
      Put32(&out, fresh ? 1 : 0);
      return out;
    }
    case kUnset: {
      if (!mapping) return AcceptedReply(call.xid, kGarbageArgs);
      bool any = false;
      for (auto it = map_.begin(); it != map_.end();) {
        if (std::get<0>(it->first) == prog && std::get<1>(it->first) == vers) {
          it = map_.erase(it);
          any = true;
        } else {
          ++it;
        }
      }
      Put32(&out, any ? 1 : 0);
      return out;
    }
    case kGetPort: {
      if (!mapping) return AcceptedReply(call.xid, kGarbageArgs);
      auto it = map_.find({prog, vers, prot});
      Put32(&out, it == map_.end() ? 0 : it->second);
      return out;
    }
    case kDump:
      // pmaplist: a value-follows flag before each mapping, FALSE at the end.
      for (const auto& [k, p] : map_) {
        Put32(&out, 1);
        Put32(&out, std::get<0>(k));
        Put32(&out, std::get<1>(k));
        Put32(&out, std::get<2>(k));
        Put32(&out, p);
      }
      Put32(&out, 0);
      return out;
    default:
      return AcceptedReply(call.xid, kProcUnavail);
  }
}

}  // namespace needlefs::nfsd
