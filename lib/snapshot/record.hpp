// The snapshot record (docs/architecture.md §2.1): what a save binds
// together so that a restore can tell whether the vPCRs still describe the
// guest memory they come back with. Pure codec: bytes <-> struct.
//
// Wire form, all integers big-endian, every field at a fixed place or with
// an explicit length (the parser checks every length and every count):
//   body:
//     "VTPMSNAP" u16 version=1 u16 flags=0
//     u8[16] vm_uuid  u64 generation  u64 created (Unix seconds)
//     u8 digest_source  u32 page_size  u64 page_count  u8[32] merkle_root
//     u32 block_pages  u32 n_blocks  n_blocks * u8[32] block roots
//     u8[32] SHA-256(plain permanent blob)  u8[32] SHA-256(plain volatile blob)
//     u16 n_banks, per bank: u16 hashAlg  u8 n_pcrs  n_pcrs * digest
//     u16+bytes host key name   (TPM name of the signing key)
//     u16+bytes vAIK public     (marshalled TPM2B_PUBLIC, empty without vAIK)
//     u16+bytes quote attest    (TPMS_ATTEST by the vAIK, empty without vAIK)
//     u16+bytes quote signature (marshalled TPMT_SIGNATURE)
//   u16+bytes host signature    (marshalled TPMT_SIGNATURE over signed_message)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "merkle/merkle.hpp"
#include "util/bytes.hpp"
#include "util/uuid.hpp"
#include "vtpm/result.hpp"

namespace vtpm::snapshot {

inline constexpr uint16_t kRecordVersion = 1;
/// TLV tag of the record in the volatile state blob's outer layer. swtpm
/// looks its records up by tag, so it reads such a blob unchanged.
inline constexpr uint16_t kTagSnapshotRecord = 0x7601;

/// Where the Merkle root came from.
enum class DigestSource : uint8_t {
    MappedMemory = 1,  // the bridge hashed guest RAM through a shared mapping
    Qemu = 2,          // a patched QEMU handed its digest over (CMD_VTPM_RAM_DIGEST)
};

struct PcrBank {
    uint16_t hash_alg = 0;
    std::vector<Bytes> values;  // PCR 0..n-1
};

struct SnapshotRecord {
    std::array<uint8_t, 16> vm_uuid{};
    uint64_t generation = 0;
    uint64_t created = 0;
    DigestSource source = DigestSource::MappedMemory;
    uint32_t page_size = 4096;
    uint64_t page_count = 0;
    Digest root{};
    uint32_t block_pages = 0;
    std::vector<Digest> block_roots;  // Merkle roots of consecutive runs of block_pages pages
    Digest permanent_digest{}, volatile_digest{};
    std::vector<PcrBank> banks;
    Bytes host_key_name;
    Bytes vaik_public, quote_attest, quote_signature;
    Bytes host_signature;
};

/// Encode everything but the host signature (what that signature covers).
Bytes encode_record_body(const SnapshotRecord& r);
/// The whole record.
Bytes encode_record(const SnapshotRecord& r);
/// Parse and check the structure (not the signatures); the error names the
/// field that is wrong.
Result<SnapshotRecord> parse_record(ByteView bytes);

/// What the host key signs (TPM2_Sign over its SHA-256):
/// "libvtpm snapshot record v1" 0x00 || body.
Bytes signed_message(const SnapshotRecord& r);
/// The vAIK quote's qualifyingData: SHA-256("libvtpm snapshot quote v1" 0x00
/// || vm_uuid || generation || page_count || root), binding the quote to
/// this memory image and this save.
Digest quote_qualifying_data(const SnapshotRecord& r);
/// SHA-256 over all PCR values, bank by bank, in PCR order: what a vAIK
/// quote over every PCR of every bank carries as pcrDigest.
Digest pcr_values_digest(const SnapshotRecord& r);


}  // namespace vtpm::snapshot
