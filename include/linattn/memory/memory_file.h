// The memory file format (.lam), version 2 (version 1 files are read too: they are version 2
// with byte 72 zero). Every number little-endian.
//
//   offset size  field
//        0    8  magic "LINATTNM"
//        8    4  u32 format version (2; 1 is read)
//       12    4  u32 byte-order mark 0x01020304 (reads 04 03 02 01 on disk)
//       16    4  u32 header size (128)
//       20    1  u8 dtype (0 f32, 1 bf16)
//       21    1  u8 layout (0 full, 1 packed symmetric, 2 low rank)
//       22    1  u8 feature map (0 identity, 1 elu+1, 2 relu)
//       23    1  u8 flags: bit 0 normalize, bit 1 gated, bit 2 symmetric; others 0
//       24    8  i64 dk            32  8  i64 dv        40  8  i64 rank (low rank; else 0)
//       48    8  i64 tokens        56  8  u64 payload bytes
//       64    8  f64 compression error (low rank: ||M - M_r||_F / ||M||_F; else 0)
//       72    1  u8 kind (0 linear, 1 galerkin, 2 content lambda, 3 K-slot; version 2)
//       73   47  reserved, zero
//      120    8  u64 checksum: XXH3-64 of bytes [0, 120) followed by the payload
//      128       payload: the state (dtype; full dk*dv, packed d(d+1)/2, low rank U [d, rank]),
//                then, each at the next multiple of 64 bytes, z (f32 [dk], when normalize; a
//                content lambda's exp-sums and channel maxima, f32 [2 dk]) and lambda (f32
//                [rank], low rank)
//
// A reader checks, before touching the payload: the size (truncation), magic, version, byte
// order, every enum and flag, sizes within bounds (no allocation follows from a declared size),
// payload size = the size the dims imply, then the checksum. Any failure: FormatError naming
// the source and the problem.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "linattn/memory/memory.h"

namespace linattn {

inline constexpr int64_t kMemoryHeaderBytes = 128;
inline constexpr uint32_t kMemoryFormatVersion = 2;  // the version written

// The stored form of a memory (its configured dtype; packed when symmetric).
std::vector<std::byte> serialize(const Memory& memory);
// The stored form of a low-rank memory: u [d, rank] (fp32, converted to info.config.dtype),
// lambda [rank]; info describes it (layout low_rank).
std::vector<std::byte> serialize_low_rank(const MemoryInfo& info, std::span<const float> u,
                                          std::span<const float> lambda,
                                          std::span<const float> normalizer);

// Validates `bytes` as a memory and views it in place (no copy). `bytes` must stay valid as long
// as `keepalive` does; `source` names it in errors (a path, "bank entry 3", ...).
// verify_checksum = false skips only the checksum (every structural check still runs).
MemoryView parse_memory(std::span<const std::byte> bytes, std::shared_ptr<const void> keepalive,
                        const std::string& source, bool verify_checksum = true);
// The total size (header + payload) a valid header declares; throws FormatError otherwise.
// Reads only the first kMemoryHeaderBytes bytes, checks no checksum.
int64_t declared_memory_size(std::span<const std::byte> header, const std::string& source);

// A memory held in an owned buffer.
MemoryView view_of_bytes(std::vector<std::byte> bytes, const std::string& source);

// Writes atomically: a temporary file beside `path`, fsync, rename, fsync of the directory. A
// crash leaves either the old file or the new one, never a half-written one.
// (linattn/core/file_io.h does the same for any bytes.)
void save_memory(const Memory& memory, const std::string& path);

// Maps the file read-only and validates it; lookups read the mapped bytes.
MemoryView open_memory(const std::string& path);

}  // namespace linattn
