// Conversions between the metadata domain types (src/metadata/namespace_types.h)
// and their proto/meta.proto messages, shared by the meta service and the
// meta client so both sides of the wire agree by construction. Include only
// from transport .cc files.
#pragma once

#include "meta.pb.h"
#include "metadata/namespace_types.h"

namespace needlefs {

RequestContext FromPb(const meta::Caller& c);
void ToPb(const RequestContext& ctx, meta::Caller* out);
InodeAttr FromPb(const meta::Attr& a);
void ToPb(const InodeAttr& a, meta::Attr* out);
/// Errors: kInvalidArgument (the file id does not parse).
StatusOr<Chunk> FromPb(const meta::Chunk& c);
/// The Wcc halves present in `c` (has_before / has_after) become set.
ChangeInfo FromPb(const meta::ChangeInfo& c);
void ToPb(const ChangeInfo& c, meta::ChangeInfo* out);
void ToPb(const Chunk& c, meta::Chunk* out);
/// The changes of a SetAttrRequest message (its caller and ino aside).
SetAttrRequest FromPb(const meta::SetAttrRequest& r);
/// Sets the change fields of `out` from `sa` (not its caller or ino).
void ToPb(const SetAttrRequest& sa, meta::SetAttrRequest* out);

/// True for the ops a BatchRead call carries (Lookup and GetAttr): the
/// client picks BatchRead by it, the server refuses any other op there.
bool IsBatchReadOp(const meta::BatchOp& op);

}  // namespace needlefs
