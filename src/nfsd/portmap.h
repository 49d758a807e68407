// A built-in portmapper (PMAP version 2, RFC 1833 section 3): on a machine
// without rpcbind, clients that ask port 111 where NFS and MOUNT listen
// (`mount -t nfs -o vers=3 host:/ /mnt` with no port options) get nfsd's
// ports. Answers NULL, SET, UNSET, GETPORT and DUMP over TCP; the mappings
// are nfsd's own plus what others SET (in memory only).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "nfsd/rpc_server.h"

namespace needlefs::nfsd {

inline constexpr uint32_t kPortmapProgram = 100000;
inline constexpr uint32_t kPortmapVersion = 2;
inline constexpr uint32_t kProtoTcp = 6;
inline constexpr uint32_t kProtoUdp = 17;

class Portmapper {
 public:
  /// Maps (prog, vers, prot) to `port`.
  void Set(uint32_t prog, uint32_t vers, uint32_t prot, uint32_t port);
  /// One RPC record for program 100000: the reply (PROG_UNAVAIL for
  /// another program, PROG_MISMATCH for another version).
  std::optional<std::string> Handle(std::string_view record, const Peer& peer);

 private:
  std::mutex mu_;
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, uint32_t> map_;  // GUARDED_BY(mu_)
};

}  // namespace needlefs::nfsd
