#include "nfsd/exports.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <filesystem>

namespace needlefs::nfsd {
namespace {

/// `address` as 16 bytes (IPv4 and IPv4-mapped IPv6 in the first 4).
bool ParseAddress(const std::string& address, bool* v6, uint8_t out[16]) {
  std::memset(out, 0, 16);
  in_addr a4;
  if (inet_pton(AF_INET, address.c_str(), &a4) == 1) {
    *v6 = false;
    std::memcpy(out, &a4, 4);
    return true;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, address.c_str(), &a6) == 1) {
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a6.s6_addr, kMapped, 12) == 0) {
      *v6 = false;
      std::memcpy(out, a6.s6_addr + 12, 4);
    } else {
      *v6 = true;
      std::memcpy(out, a6.s6_addr, 16);
    }
    return true;
  }
  return false;
}

}  // namespace

StatusOr<ClientMatch> ClientMatch::Parse(const std::string& s) {
  ClientMatch m;
  if (s == "*") {
    m.any = true;
    return m;
  }
  std::string addr = s;
  int prefix = -1;
  if (size_t slash = s.find('/'); slash != std::string::npos) {
    addr = s.substr(0, slash);
    try {
      size_t used = 0;
      prefix = std::stoi(s.substr(slash + 1), &used);
      if (used != s.size() - slash - 1) prefix = -2;
    } catch (const std::exception&) {
      prefix = -2;
    }
  }
  if (!ParseAddress(addr, &m.v6, m.addr) || prefix == -2) {
    return Status::InvalidArgument("bad client address " + s);
  }
  const int max = m.v6 ? 128 : 32;
  if (prefix > max || prefix < -1) return Status::InvalidArgument("bad prefix in " + s);
  m.prefix = prefix == -1 ? max : prefix;
  return m;
}

bool ClientMatch::Matches(const std::string& address) const {
  if (any) return true;
  bool is_v6;
  uint8_t a[16];
  if (!ParseAddress(address, &is_v6, a) || is_v6 != v6) return false;
  int bits = prefix;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (addr[i] & mask)) return false;
  }
  return true;
}

bool Export::Allows(const std::string& address, uint16_t port) const {
  if (secure && port >= 1024) return false;
  for (const ClientMatch& m : clients) {
    if (m.Matches(address)) return true;
  }
  return false;
}

RequestContext Export::Identity(uint32_t uid, uint32_t gid,
                                const std::vector<uint32_t>& gids) const {
  RequestContext ctx;
  const bool squashed = squash == Squash::kAllSquash || (squash == Squash::kRootSquash && uid == 0);
  if (squashed) {
    ctx.uid = anon_uid;
    ctx.gid = anon_gid;
    return ctx;
  }
  ctx.uid = uid;
  ctx.gid = (squash == Squash::kRootSquash && gid == 0) ? anon_gid : gid;
  ctx.groups = gids;
  return ctx;
}

Exports Exports::Default() {
  Exports e;
  Export x;
  x.path = "/";
  for (const char* c : {"127.0.0.0/8", "::1"}) {
    x.clients.push_back(*ClientMatch::Parse(c));
    x.client_specs.emplace_back(c);
  }
  x.squash = Squash::kNoRootSquash;
  e.list.push_back(std::move(x));
  return e;
}

StatusOr<Exports> Exports::Load(const std::string& path) {
  if (!std::filesystem::exists(path)) return Status::NotFound("no exports file " + path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  if (!root["exports"] || !root["exports"].IsSequence()) {
    return Status::InvalidArgument(path + ": needs an 'exports:' list");
  }
  Exports out;
  try {
    for (const YAML::Node& n : root["exports"]) {
      Export x;
      x.path = n["path"] ? n["path"].as<std::string>() : "";
      if (x.path.empty() || x.path[0] != '/') {
        return Status::InvalidArgument(path + ": export path must start with /");
      }
      if (!n["clients"] || !n["clients"].IsSequence() || n["clients"].size() == 0) {
        return Status::InvalidArgument(path + ": export " + x.path + " needs a clients list");
      }
      for (const YAML::Node& c : n["clients"]) {
        auto m = ClientMatch::Parse(c.as<std::string>());
        if (!m.ok())
          return Status::InvalidArgument(path + ": " + std::string(m.status().message()));
        x.clients.push_back(*m);
        x.client_specs.push_back(c.as<std::string>());
      }
      const std::string access = n["access"] ? n["access"].as<std::string>() : "rw";
      if (access != "rw" && access != "ro") {
        return Status::InvalidArgument(path + ": access must be rw or ro");
      }
      x.read_only = access == "ro";
      const std::string squash = n["squash"] ? n["squash"].as<std::string>() : "root_squash";
      if (squash == "root_squash") {
        x.squash = Squash::kRootSquash;
      } else if (squash == "no_root_squash") {
        x.squash = Squash::kNoRootSquash;
      } else if (squash == "all_squash") {
        x.squash = Squash::kAllSquash;
      } else {
        return Status::InvalidArgument(path +
                                       ": squash must be root_squash, no_root_squash or "
                                       "all_squash");
      }
      if (n["anonuid"]) x.anon_uid = n["anonuid"].as<uint32_t>();
      if (n["anongid"]) x.anon_gid = n["anongid"].as<uint32_t>();
      if (n["secure"]) x.secure = n["secure"].as<bool>();
      out.list.push_back(std::move(x));
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  if (out.list.empty() || out.list.size() > 255) {
    return Status::InvalidArgument(path + ": 1 to 255 exports");
  }
  return out;
}

}  // namespace needlefs::nfsd
