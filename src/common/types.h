// Strong types for the identifiers that cross module APIs (STYLE §12): a bare
// integer never stands for a volume, a needle key or a cookie.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace needlefs {

/// A strongly typed integer id. `Tag` makes distinct types.
template <typename Tag, typename Rep>
struct StrongId {
  Rep value = 0;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : value(v) {}
  constexpr auto operator<=>(const StrongId&) const = default;
};

/// Volume id: unique within a cluster (32-bit, as SeaweedFS).
using VolumeId = StrongId<struct VolumeIdTag, uint32_t>;
/// Needle key: unique within a volume (64-bit).
using NeedleKey = StrongId<struct NeedleKeyTag, uint64_t>;
/// Random 32-bit needle cookie that defeats guessing of file ids.
using Cookie = StrongId<struct CookieTag, uint32_t>;

/// Inode number in the namespace (64-bit; root is 1).
using InodeId = StrongId<struct InodeIdTag, uint64_t>;
/// Inode generation: changes when an inode number is reused, so (ino,
/// generation) names one file for its whole life (NFS handles, FUSE).
/// Never 0 for a live inode (0 means "no check" where one is optional).
using Generation = StrongId<struct GenerationTag, uint64_t>;

}  // namespace needlefs

template <typename Tag, typename Rep>
struct std::hash<needlefs::StrongId<Tag, Rep>> {
  size_t operator()(const needlefs::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>()(id.value);
  }
};
