#include "objstore/index_file.h"

#include "common/endian.h"

namespace needlefs {

void EncodeIndexEntry(const IndexEntry& e, char* out) {
  EncodeFixed64(out, e.key.value);
  EncodeFixed32(out + 8, e.offset_units);
  EncodeFixed32(out + 12, e.size);
}

IndexEntry DecodeIndexEntry(const char* p) {
  return IndexEntry{NeedleKey(DecodeFixed64(p)), DecodeFixed32(p + 8), DecodeFixed32(p + 12)};
}

}  // namespace needlefs
