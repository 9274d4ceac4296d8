// The permanent-state journal's on-disk format (pure codec, no I/O).
//
// Why a journal: libtpms stores the whole permanent blob after every NV
// change. Writing it crash-safely as a new file costs two flushes (the file,
// then its directory for the rename). Appending the blob to a preallocated
// journal costs one fdatasync of blocks that already exist; the state file
// itself (swtpm's tpm2-00.permall) is brought up to date later, durably,
// off the command path (a checkpoint), and after a power cut from the
// journal.
//
// Layout, all integers big-endian:
//   header, kHeaderSize bytes at offset 0:
//     magic "VTPMJNL1" | u32 version=1 | u32 slot_size | u64 epoch |
//     u8 base_present | base digest[32] | sha256 of everything before it
//   slot i (0, 1) at kSlotsOffset + i * slot_size, records alternate by seq:
//     magic "VTPMREC1" | u64 epoch | u64 seq | u32 length |
//     sha256(epoch | seq | length | data) | data
// The base is the digest of the state file's bytes when the epoch began
// (absent: no file): the journal applies only to that file. A record of
// another epoch, or whose digest fails (torn by a crash), is ignored.
#pragma once

#include <cstdint>
#include <optional>

#include "util/bytes.hpp"
#include "util/sha256.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store::journal {

inline constexpr size_t kHeaderSize = 512;    // one sector: written whole
inline constexpr size_t kSlotsOffset = 4096;  // slots start on their own page
inline constexpr size_t kRecordHeader = 8 + 8 + 8 + 4 + 32;
// A fresh TPM 2 state is 1–2 KB and grows with NV indices and persistent
// objects; a larger state rebuilds the journal once per doubling.
inline constexpr size_t kMinSlotSize = 16 * 1024;
inline constexpr size_t kMaxSlotSize = 16 * 1024 * 1024;

struct Header {
    uint32_t slot_size = 0;
    uint64_t epoch = 0;
    /// Digest of the state file the epoch's records apply to; nullopt: no file.
    std::optional<Digest> base;
};

struct Record {
    uint64_t epoch = 0;
    uint64_t seq = 0;
    ByteView data;  // views the parsed bytes
};

/// kHeaderSize bytes.
Bytes encode_header(const Header& h);
/// rc::kFail naming what is wrong (short, magic, version, slot size, digest).
Result<Header> decode_header(ByteView bytes);

/// Record bytes for slot `seq % 2`; the caller checks they fit slot_size.
Bytes encode_record(uint64_t epoch, uint64_t seq, ByteView data);
/// The record in `slot` (a whole slot's bytes) if it is intact and of
/// `epoch`; nullopt otherwise (empty, torn, stale).
std::optional<Record> decode_record(ByteView slot, uint64_t epoch);

/// Offset of the slot a record with `seq` goes to.
inline uint64_t slot_offset(const Header& h, uint64_t seq) { return kSlotsOffset + (seq % 2) * uint64_t{h.slot_size}; }
/// Size of the whole journal file.
inline uint64_t file_size(const Header& h) { return kSlotsOffset + 2 * uint64_t{h.slot_size}; }
/// Slot size that holds a record of `data_size` bytes with room to grow.
size_t slot_size_for(size_t data_size);

/// What a journal file says: its header and newest intact record of the
/// header's epoch, if any.
struct View {
    Header header;
    std::optional<Record> latest;
};
/// Parse a whole journal file. rc::kFail when the header is damaged.
Result<View> parse(ByteView file);

}  // namespace vtpm::store::journal
