// swtpm's blob container: a 10-byte big-endian header followed by TLV
// records (state-format.md §2). Pure codec, no I/O, no crypto.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store {

inline constexpr uint8_t kBlobVersion = 2;
inline constexpr uint8_t kBlobMinVersion = 1;
inline constexpr uint16_t kBlobHeaderSize = 10;

/// Header flag bits.
inline constexpr uint16_t kFlagEncrypted = 0x01;
inline constexpr uint16_t kFlagMigrationEncrypted = 0x02;
inline constexpr uint16_t kFlagMigrationData = 0x04;
inline constexpr uint16_t kFlagEncrypted256 = 0x08;
inline constexpr uint16_t kFlagMigration256 = 0x10;

/// TLV tags.
enum Tag : uint16_t {
    kTagData = 1,
    kTagEncryptedData = 2,
    kTagHmac = 3,
    kTagMigrationData = 4,
    kTagEncryptedMigrationData = 5,
    kTagIvEncryptedData = 6,
    kTagIvEncryptedMigrationData = 7,
};

struct BlobHeader {
    uint8_t version = kBlobVersion;
    uint8_t min_version = kBlobMinVersion;
    uint16_t hdrsize = kBlobHeaderSize;
    uint16_t flags = 0;
    uint32_t totlen = 0;
};

/// Check and decode the header of a complete blob: totlen must equal
/// blob.size(), min_version <= 2 (else rc::kBadVersion), hdrsize == 10 (else
/// rc::kBadDataSize), at least 10 bytes (else rc::kBadParameter).
Result<BlobHeader> parse_header(ByteView blob);

/// Header + payload, totlen filled in.
Bytes make_blob(uint16_t flags, ByteView payload);

/// Append one TLV record.
void append_tlv(Bytes& out, uint16_t tag, ByteView value);

/// Append one TLV record to a complete blob and fix its totlen (records
/// readers that look up other tags, like swtpm, pass over).
void append_blob_tlv(Bytes& blob, uint16_t tag, ByteView value);
/// First record with `tag` after the header of a complete, valid blob.
std::optional<ByteView> find_blob_tlv(ByteView blob, uint16_t tag);

/// First record with `tag` in a TLV stream; a record running past the end
/// stops the scan (as in swtpm).
std::optional<ByteView> find_tlv(ByteView stream, uint16_t tag);

}  // namespace vtpm::store
