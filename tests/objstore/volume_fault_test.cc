// Disk faults on the volume write path (issue 13), injected through the
// volume's Env (tests/objstore/fault_env.h): ENOSPC, EIO and torn writes of
// the data file, a failed cut of a torn write, a failed index-log write, a
// failed fdatasync and a failed delete. Each case checks the error the
// caller gets, what the volume does next, that every needle acknowledged
// before the fault reads back byte-exact, and that after a restart (reopen
// from disk with the plain POSIX Env) the acknowledged needles are all there
// and no half needle is.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "objstore/fault_env.h"
#include "objstore/volume.h"
#include "test_util.h"

namespace needlefs {
namespace {

namespace fs = std::filesystem;
using Fault = FaultEnv::Fault;
using Op = FaultEnv::Op;

constexpr uint32_t kCookie = 0x5eed;

/// Binary, key-dependent data of `size` bytes (every byte value occurs).
std::string Data(uint64_t key, size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((key * 131 + i * 7) & 0xff);
  return s;
}

Needle MakeNeedle(uint64_t key, size_t size) {
  Needle n;
  n.key = NeedleKey(key);
  n.cookie = Cookie(kCookie);
  n.data = Data(key, size);
  return n;
}

class VolumeFaultTest : public ::testing::TestWithParam<IndexMode> {
 protected:
  /// `env` null: the plain POSIX Env (a restart).
  VolumeOptions Options(Env* env) {
    VolumeOptions o;
    o.dir = dir_.path();
    o.id = VolumeId(7);
    o.index_mode = GetParam();
    o.durability = Durability::kGroup;  // the default: every write fdatasyncs
    o.env = env ? env : Env::Default();
    return o;
  }
  /// Creates the volume over the fault-injecting Env.
  std::unique_ptr<Volume> Create() {
    auto v = Volume::Open(Options(&env_), /*create=*/true);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(v).value() : nullptr;
  }
  /// Reopens it from disk with the POSIX Env, as after a restart.
  std::unique_ptr<Volume> Restart() {
    auto v = Volume::Open(Options(nullptr), /*create=*/false);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(v).value() : nullptr;
  }
  std::string Dat() const { return dir_.path() + "/7.dat"; }
  uint64_t DatSize() const { return fs::file_size(Dat()); }

  /// Writes needle `key` (`size` data bytes) and remembers it as acknowledged.
  void WriteAcked(Volume* v, uint64_t key, size_t size) {
    auto w = v->Write(MakeNeedle(key, size));
    ASSERT_TRUE(w.ok()) << "needle " << key << ": " << w.status().ToString();
    acked_[key] = Data(key, size);
  }
  /// Needles 1..5 of varied sizes, all acknowledged.
  void WriteFive(Volume* v) {
    for (uint64_t k = 1; k <= 5; ++k) WriteAcked(v, k, 100 * k + k);
  }
  /// Every acknowledged needle reads back byte-exact.
  void ExpectAckedReadable(const Volume& v) {
    for (const auto& [key, data] : acked_) {
      auto r = v.Read(NeedleKey(key), Cookie(kCookie));
      ASSERT_TRUE(r.ok()) << "needle " << key << ": " << r.status().ToString();
      EXPECT_EQ(r->data, data) << "needle " << key;
    }
  }
  void ExpectAbsent(const Volume& v, uint64_t key) {
    auto r = v.Read(NeedleKey(key), Cookie(kCookie));
    EXPECT_TRUE(r.status().IsNotFound()) << "needle " << key << ": " << r.status().ToString();
  }
  /// The append failed with `err`: its code, errno, strerror and file.
  static void ExpectIoError(const Status& s, int err, StatusCode code) {
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_EQ(s.posix_errno(), err) << s.ToString();
    EXPECT_NE(s.message().find(std::strerror(err)), std::string_view::npos) << s.ToString();
    EXPECT_NE(s.message().find("7.dat"), std::string_view::npos) << s.ToString();
  }

  TempDir dir_;
  FaultEnv env_;
  std::map<uint64_t, std::string> acked_;
};

INSTANTIATE_TEST_SUITE_P(IndexModes, VolumeFaultTest,
                         ::testing::Values(IndexMode::kMemory, IndexMode::kRocksDb),
                         [](const auto& info) {
                           return info.param == IndexMode::kMemory ? "Memory" : "RocksDb";
                         });

// A full disk: part of the record is written, then ENOSPC (as write(2) does
// when space runs out mid-write). The partial bytes are cut and the volume
// keeps taking writes.
TEST_P(VolumeFaultTest, NoSpaceFailsTheAppendAndTheVolumeStaysWritable) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  const uint64_t good_size = DatSize();
  env_.Inject(
      Fault{.op = Op::kWrite, .path_suffix = ".dat", .error = ENOSPC, .written_bytes = 300});

  auto w = v->Write(MakeNeedle(6, 2000));
  ASSERT_FALSE(w.ok());
  ExpectIoError(w.status(), ENOSPC, StatusCode::kResourceExhausted);
  EXPECT_EQ(env_.failures(), 1);
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(DatSize(), good_size);  // the 300 bytes were cut
  EXPECT_EQ(v->Stats().data_bytes, good_size);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);

  WriteAcked(v.get(), 7, 500);  // space came back
  ExpectAckedReadable(*v);

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(DatSize(), v->Stats().data_bytes);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
}

// EIO with nothing written: the volume turns read-only (its state on disk
// is unknown) until it is reopened, when recovery checks the files again.
TEST_P(VolumeFaultTest, IoErrorFailsTheAppendAndTurnsTheVolumeReadOnly) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  const uint64_t good_size = DatSize();
  env_.Inject(Fault{.op = Op::kWrite, .path_suffix = ".dat", .error = EIO});

  auto w = v->Write(MakeNeedle(6, 2000));
  ASSERT_FALSE(w.ok());
  ExpectIoError(w.status(), EIO, StatusCode::kInternal);
  EXPECT_TRUE(v->read_only());
  const VolumeStats st = v->Stats();
  EXPECT_NE(st.read_only_reason.find("data write failed"), std::string::npos)
      << st.read_only_reason;
  EXPECT_NE(st.read_only_reason.find(std::strerror(EIO)), std::string::npos) << st.read_only_reason;
  EXPECT_EQ(DatSize(), good_size);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
  // Further writes and deletes are refused, and change nothing.
  auto again = v->Write(MakeNeedle(7, 10));
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition) << again.status().ToString();
  EXPECT_NE(again.status().message().find("read-only"), std::string_view::npos);
  EXPECT_EQ(v->Delete(NeedleKey(1), Cookie(kCookie)).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(DatSize(), good_size);
  ExpectAckedReadable(*v);

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->read_only());  // the read-only state was not persisted
  EXPECT_EQ(DatSize(), good_size);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
  WriteAcked(v.get(), 7, 10);
  ExpectAckedReadable(*v);
}

// A torn write: the first 1000 bytes of a 4 KB record reach the file, then
// EIO. The volume cuts them right away, so no half needle is ever on disk.
TEST_P(VolumeFaultTest, TornWriteIsCutAndTurnsTheVolumeReadOnly) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  const uint64_t good_size = DatSize();
  env_.Inject(Fault{.op = Op::kWrite, .path_suffix = ".dat", .error = EIO, .written_bytes = 1000});

  auto w = v->Write(MakeNeedle(6, 4096));
  ASSERT_FALSE(w.ok());
  ExpectIoError(w.status(), EIO, StatusCode::kInternal);
  EXPECT_TRUE(v->read_only());
  EXPECT_EQ(DatSize(), good_size);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(DatSize(), good_size);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
}

// A torn write whose cut fails too (the disk is going): the half needle
// stays in the data file, invisible to reads, and recovery cuts it at the
// next open (the torn-tail rule of docs/formats.md#recovery).
TEST_P(VolumeFaultTest, TornWriteThatCannotBeCutIsTruncatedOnReopen) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  const uint64_t good_size = DatSize();
  env_.Inject(Fault{.op = Op::kWrite, .path_suffix = ".dat", .error = EIO, .written_bytes = 1000});
  env_.Inject(Fault{.op = Op::kTruncate, .path_suffix = ".dat", .error = EIO});

  auto w = v->Write(MakeNeedle(6, 4096));
  ASSERT_FALSE(w.ok());
  ExpectIoError(w.status(), EIO, StatusCode::kInternal);
  EXPECT_EQ(env_.failures(), 2);
  EXPECT_TRUE(v->read_only());
  EXPECT_EQ(DatSize(), good_size + 1000);  // the half needle is on disk
  EXPECT_EQ(v->Stats().data_bytes, good_size);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(DatSize(), good_size);  // recovery cut the torn tail
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
  WriteAcked(v.get(), 7, 50);
  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
}

// A full disk whose cut fails: the volume stays writable, the next (shorter)
// append overwrites the start of the partial bytes, and recovery cuts the
// rest at the next open.
TEST_P(VolumeFaultTest, NoSpaceLeftoverIsOverwrittenAndCutOnReopen) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  const uint64_t good_size = DatSize();
  env_.Inject(
      Fault{.op = Op::kWrite, .path_suffix = ".dat", .error = ENOSPC, .written_bytes = 3000});
  env_.Inject(Fault{.op = Op::kTruncate, .path_suffix = ".dat", .error = EIO});

  auto w = v->Write(MakeNeedle(6, 4096));
  ASSERT_FALSE(w.ok());
  ExpectIoError(w.status(), ENOSPC, StatusCode::kResourceExhausted);
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(DatSize(), good_size + 3000);
  ExpectAbsent(*v, 6);

  WriteAcked(v.get(), 7, 100);
  EXPECT_EQ(DatSize(), good_size + 3000);  // needle 7 lies inside the leftover
  EXPECT_LT(v->Stats().data_bytes, good_size + 3000);
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->read_only());
  EXPECT_EQ(DatSize(), v->Stats().data_bytes);  // the leftover was cut
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);
}

// The needle is written but its index-log entry is not: the write fails and
// the volume turns read-only. The whole needle is in the data file, which is
// the durable truth, so recovery indexes it at the next open (a failed write
// may be there after a reopen, never half of it).
TEST_P(VolumeFaultTest, FailedIndexWriteLeavesTheNeedleToRecovery) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  env_.Inject(Fault{.op = Op::kWrite, .path_suffix = ".idx", .error = EIO, .written_bytes = 7});

  auto w = v->Write(MakeNeedle(6, 2000));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInternal) << w.status().ToString();
  EXPECT_EQ(w.status().posix_errno(), EIO);
  EXPECT_NE(w.status().message().find("7.idx"), std::string_view::npos);
  EXPECT_TRUE(v->read_only());
  ExpectAckedReadable(*v);
  ExpectAbsent(*v, 6);  // never made visible before the restart

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->read_only());
  ExpectAckedReadable(*v);
  auto r = v->Read(NeedleKey(6), Cookie(kCookie));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data, Data(6, 2000));
}

// fdatasync fails after the append: the write is not acknowledged, the
// volume turns read-only and later syncs keep failing (a failed fsync is
// sticky); what was acknowledged before is untouched.
TEST_P(VolumeFaultTest, FailedSyncFailsTheWriteAndTurnsTheVolumeReadOnly) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  env_.Inject(Fault{.op = Op::kSync, .path_suffix = ".dat", .error = EIO});

  auto w = v->Write(MakeNeedle(6, 2000));
  ASSERT_FALSE(w.ok());
  ExpectIoError(w.status(), EIO, StatusCode::kInternal);
  EXPECT_NE(w.status().message().find("fdatasync"), std::string_view::npos);
  EXPECT_TRUE(v->read_only());
  EXPECT_EQ(v->SyncAppends().code(), StatusCode::kInternal);
  ExpectAckedReadable(*v);

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  ExpectAckedReadable(*v);
  // Its fate is open; if it is there, it is whole.
  auto r = v->Read(NeedleKey(6), Cookie(kCookie));
  if (r.ok()) {
    EXPECT_EQ(r->data, Data(6, 2000));
  } else {
    EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  }
}

// A delete whose tombstone cannot be written deletes nothing.
TEST_P(VolumeFaultTest, FailedDeleteKeepsTheNeedle) {
  auto v = Create();
  ASSERT_NE(v, nullptr);
  WriteFive(v.get());
  const uint64_t good_size = DatSize();
  env_.Inject(Fault{.op = Op::kWrite, .path_suffix = ".dat", .error = ENOSPC, .written_bytes = 10});

  auto d = v->Delete(NeedleKey(3), Cookie(kCookie));
  ASSERT_FALSE(d.ok());
  ExpectIoError(d.status(), ENOSPC, StatusCode::kResourceExhausted);
  EXPECT_EQ(DatSize(), good_size);
  ExpectAckedReadable(*v);  // needle 3 included

  v.reset();
  v = Restart();
  ASSERT_NE(v, nullptr);
  ExpectAckedReadable(*v);
}

}  // namespace
}  // namespace needlefs
