// What nfsd exports to whom: paths of the namespace, the clients allowed
// (host address, CIDR, "*"), rw/ro, identity squashing and the source-port
// rule, as exports(5) has them. Loaded from YAML:
//
//   exports:
//     - path: /projects          # a directory of the namespace
//       clients: [10.0.0.0/8, 192.168.1.7, "::1"]   # or ["*"]
//       access: rw               # rw (default) | ro
//       squash: root_squash      # root_squash (default) | no_root_squash | all_squash
//       anonuid: 65534           # the squashed identity (default 65534)
//       anongid: 65534
//       secure: false            # true: source port below 1024 only
//
// Without a file, Default() exports "/" read-write to loopback clients only
// (127.0.0.0/8, ::1) with no_root_squash: a local root is root already.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "metadata/namespace_types.h"

namespace needlefs::nfsd {

enum class Squash { kRootSquash, kNoRootSquash, kAllSquash };

/// An address block a client address must fall in.
struct ClientMatch {
  bool any = false;  ///< "*"
  bool v6 = false;
  uint8_t addr[16] = {};  ///< network address (IPv4 in the first 4 bytes)
  int prefix = 0;         ///< bits

  /// Parses "10.0.0.0/8", "192.168.1.7", "::1", "fe80::/10", "*".
  /// Errors: kInvalidArgument.
  static StatusOr<ClientMatch> Parse(const std::string& s);
  /// Whether `address` ("127.0.0.1", "::1"; an IPv4-mapped IPv6 address
  /// counts as IPv4) is in the block.
  bool Matches(const std::string& address) const;
};

struct Export {
  std::string path = "/";  ///< in the namespace
  std::vector<ClientMatch> clients;
  std::vector<std::string> client_specs;  ///< as written (MOUNT EXPORT lists them)
  bool read_only = false;
  Squash squash = Squash::kRootSquash;
  uint32_t anon_uid = 65534;
  uint32_t anon_gid = 65534;
  bool secure = false;

  bool Allows(const std::string& address, uint16_t port) const;
  /// The identity a call with AUTH_SYS `uid`/`gid`/`gids` runs as
  /// (squashing applied); AUTH_NONE calls pass the anonymous identity.
  RequestContext Identity(uint32_t uid, uint32_t gid, const std::vector<uint32_t>& gids) const;
};

struct Exports {
  std::vector<Export> list;  ///< export id = index (at most 255)

  /// "/" rw to 127.0.0.0/8 and ::1, no_root_squash.
  static Exports Default();
  /// Errors: kNotFound (no file), kInvalidArgument (the message names the
  /// bad field).
  static StatusOr<Exports> Load(const std::string& yaml_path);
};

}  // namespace needlefs::nfsd
