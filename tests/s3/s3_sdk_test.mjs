// The current AWS SDK for JavaScript v3 (@aws-sdk/client-s3, lib-storage)
// against the NeedleFS S3 gateway, run by tests/integration/s3_test.sh. The
// SDK sends aws-chunked bodies with a CRC32 trailer by default: the
// gateway must decode them (no framing inside the object), verify and keep
// the checksum, and return it with x-amz-checksum-mode: ENABLED.
//
//   node s3_sdk_test.mjs ENDPOINT ACCESS_KEY SECRET_KEY FUSE_MOUNTPOINT
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
         ListObjectsV2Command, DeleteObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Readable } from "node:stream";

const [endpoint, accessKeyId, secretAccessKey, mnt] = process.argv.slice(2);
let fails = 0;
const check = (name, ok, detail = "") => {
  console.log(`CHECK ${name} ${ok ? "ok" : "FAIL " + detail}`);
  if (!ok) fails++;
};
const s3 = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true,
                          credentials: { accessKeyId, secretAccessKey } });
const text = async (body) => Buffer.from(await body.transformToByteArray());
const code = async (p) => { try { await p; return "no error"; } catch (e) { return e.name; } };

await code(s3.send(new CreateBucketCommand({ Bucket: "sdk" })));  // made by an earlier run: fine
const body = Buffer.alloc(200_000, 7).map((_, i) => (i * 31) % 251);
let sent;
const s3seen = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true,
                              credentials: { accessKeyId, secretAccessKey } });
s3seen.middlewareStack.add((next) => async (args) => {
  sent = { ...args.request.headers };
  return next(args);
}, { step: "finalizeRequest", priority: "low" });
const put = await s3seen.send(new PutObjectCommand({ Bucket: "sdk", Key: "a/crc.bin", Body: body }));
console.log("SDK sent x-amz-content-sha256:", sent["x-amz-content-sha256"],
            "trailer:", sent["x-amz-trailer"] ?? "-");
check("put_default_checksum", put.ETag === `"${createHash("md5").update(body).digest("hex")}"`, put.ETag);
check("no_chunk_framing_in_object", Buffer.compare(readFileSync(`${mnt}/sdk/a/crc.bin`), body) === 0);
const got = await s3.send(new GetObjectCommand({ Bucket: "sdk", Key: "a/crc.bin", ChecksumMode: "ENABLED" }));
check("get_round_trip", Buffer.compare(await text(got.Body), body) === 0);
check("checksum_returned", typeof got.ChecksumCRC32 === "string" && got.ChecksumCRC32.length > 0,
      JSON.stringify(got.ChecksumCRC32));
for (const algo of ["CRC32C", "SHA1", "SHA256", "CRC64NVME"]) {
  const key = `algo/${algo}`;
  const r = await code(s3.send(new PutObjectCommand({ Bucket: "sdk", Key: key, Body: body,
                                                      ChecksumAlgorithm: algo })));
  const back = r === "no error"
      ? await s3.send(new GetObjectCommand({ Bucket: "sdk", Key: key, ChecksumMode: "ENABLED" })) : {};
  check(`put_${algo}`, r === "no error" && back[`Checksum${algo}`] !== undefined, r);
}
// A stream body: the SDK sends it aws-chunked with the checksum as a trailer.
sent = {};
const streamed = Buffer.alloc(300_000).map((_, i) => (i * 13) % 249);
await s3seen.send(new PutObjectCommand({ Bucket: "sdk", Key: "stream.bin", ContentLength: streamed.length,
                                         Body: Readable.from([streamed.subarray(0, 100_000),
                                                              streamed.subarray(100_000)]) }));
console.log("SDK sent x-amz-content-sha256:", sent["x-amz-content-sha256"],
            "trailer:", sent["x-amz-trailer"] ?? "-");
check("stream_sent_aws_chunked", String(sent["x-amz-content-sha256"]).startsWith("STREAMING-"),
      String(sent["x-amz-content-sha256"]));
check("stream_no_framing_in_object", Buffer.compare(readFileSync(`${mnt}/sdk/stream.bin`), streamed) === 0);
const sg = await s3.send(new GetObjectCommand({ Bucket: "sdk", Key: "stream.bin", ChecksumMode: "ENABLED" }));
check("stream_checksum_kept", sg.ChecksumCRC32 !== undefined || sg.ChecksumCRC64NVME !== undefined,
      JSON.stringify(sg.ChecksumCRC32));
// lib-storage: a multipart upload with parts in flight at once.
const big = Buffer.alloc(12 << 20).map((_, i) => (i * 7) % 253);
await new Upload({ client: s3, params: { Bucket: "sdk", Key: "big.bin", Body: big },
                   partSize: 5 << 20, queueSize: 3 }).done();
check("lib_storage_multipart", Buffer.compare(readFileSync(`${mnt}/sdk/big.bin`), big) === 0);
const head = await s3.send(new HeadObjectCommand({ Bucket: "sdk", Key: "big.bin" }));
check("multipart_etag_suffix", /-3"$/.test(head.ETag), head.ETag);
const list = await s3.send(new ListObjectsV2Command({ Bucket: "sdk" }));
check("list", list.KeyCount === 7, String(list.KeyCount));
await s3.send(new DeleteObjectCommand({ Bucket: "sdk", Key: "big.bin" }));
check("delete", (await code(s3.send(new HeadObjectCommand({ Bucket: "sdk", Key: "big.bin" })))) === "NotFound");
console.log(`RESULT checks_failed=${fails}`);
process.exit(fails);
