// swtpm control-channel codec (control-channel.md §2-§6): bytes <-> structs.
// Pure: no I/O, no engine. All integers big-endian. The transport uses
// `frame_size` to know when a message is complete (the protocol has no length
// prefix), then `decode_request`; handlers build responses with the encoders.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::ctrl {

enum class Cmd : uint32_t {
    GetCapability = 0x01,
    Init = 0x02,
    Shutdown = 0x03,
    GetTpmEstablished = 0x04,
    SetLocality = 0x05,
    HashStart = 0x06,
    HashData = 0x07,
    HashEnd = 0x08,
    CancelTpmCmd = 0x09,
    StoreVolatile = 0x0a,
    ResetTpmEstablished = 0x0b,
    GetStateBlob = 0x0c,
    SetStateBlob = 0x0d,
    Stop = 0x0e,
    GetConfig = 0x0f,
    SetDataFd = 0x10,
    SetBufferSize = 0x11,
    GetInfo = 0x12,
    LockStorage = 0x13,
    /// Our vendor command (not swtpm's): one TPM command from the host's
    /// identity tools, answered between the guest's commands.
    VtpmTpmCommand = 0x76540001,
    /// Our vendor command for patched QEMU (qemu-patches/): QEMU's own
    /// digest of guest RAM for the next save or restore.
    VtpmRamDigest = 0x76540002,
    /// Our vendor command: make a snapshot record now (the caller has paused
    /// the VM) and return it.
    VtpmSnapshot = 0x76540003,
    /// Our vendor command: check guest RAM now against the record of the
    /// restore just loaded, before any vCPU runs (a paused-restore driver
    /// on the admin socket, or a patched QEMU's phase-3 digest).
    VtpmVerifyRam = 0x76540004,
};

/// Name of a command for logs ("CMD_INIT"), or "unknown".
std::string_view cmd_name(uint32_t code);

/// PTM_CAP_* bits.
namespace cap {
inline constexpr uint64_t kInit = 1u << 0, kShutdown = 1u << 1, kGetTpmEstablished = 1u << 2,
    kSetLocality = 1u << 3, kHashing = 1u << 4, kCancelTpmCmd = 1u << 5, kStoreVolatile = 1u << 6,
    kResetTpmEstablished = 1u << 7, kGetStateBlob = 1u << 8, kSetStateBlob = 1u << 9, kStop = 1u << 10,
    kGetConfig = 1u << 11, kSetDataFd = 1u << 12, kSetBufferSize = 1u << 13, kGetInfo = 1u << 14,
    kSendCommandHeader = 1u << 15, kLockStorage = 1u << 16;
/// CMD_VTPM_TPM_COMMAND, far from swtpm's bits; QEMU ignores it.
inline constexpr uint64_t kVtpmTpmCommand = 1u << 31;
/// CMD_VTPM_RAM_DIGEST: a patched QEMU sends its RAM digest only when set.
inline constexpr uint64_t kVtpmRamDigest = 1u << 30;
/// CMD_VTPM_SNAPSHOT.
inline constexpr uint64_t kVtpmSnapshot = 1u << 29;
/// CMD_VTPM_VERIFY_RAM (and phase 3 of CMD_VTPM_RAM_DIGEST).
inline constexpr uint64_t kVtpmVerifyRam = 1u << 28;
}

inline constexpr uint32_t kInitFlagDeleteVolatile = 1;
inline constexpr uint32_t kConfigFlagFileKey = 1, kConfigFlagMigrationKey = 2;
/// Largest SET_STATEBLOB payload accepted (a TPM 2 permall is ~6-60 KiB).
inline constexpr uint32_t kMaxStateBlob = 2u << 20;
/// Largest TPM command/response carried by CMD_VTPM_TPM_COMMAND.
inline constexpr uint32_t kMaxVendorTpmCommand = 8192;
/// Largest text in a CMD_VTPM_VERIFY_RAM answer.
inline constexpr uint32_t kMaxVendorText = 4096;

/// Framing: given the bytes received so far for one message (starting with
/// the 4-byte code), how many bytes swtpm waits for before it takes the
/// message (ctrl/framer.hpp): 4 for most codes and unknown ones, 8 for
/// INIT, 5 for SET_LOCALITY and RESET_TPMESTABLISHED, 16 for GET_STATEBLOB,
/// header plus announced length for HASH_DATA and SET_STATEBLOB. The message
/// is then everything its read brought. std::nullopt while fewer than needed
/// to tell (< 4 bytes, or a SET_STATEBLOB/HASH_DATA header not complete).
/// `vendor`: the CMD_VTPM_* commands are enabled (else their codes are unknown).
std::optional<size_t> frame_size(ByteView prefix, bool vendor = false);

// ---- decoded requests ----
struct GetCapabilityReq {};
struct InitReq { uint32_t flags = 0; };
struct ShutdownReq {};
struct GetTpmEstablishedReq {};
struct SetLocalityReq { uint8_t locality = 0; };
struct HashStartReq {};
struct HashDataReq { ByteView data; };  // view into the input message
struct HashEndReq {};
struct CancelTpmCmdReq {};
struct StoreVolatileReq {};
struct ResetTpmEstablishedReq { uint8_t locality = 0; };
struct GetStateBlobReq { uint32_t state_flags = 0, type = 0, offset = 0; };
struct SetStateBlobReq { uint32_t state_flags = 0, type = 0; ByteView data; };  // view into input
struct StopReq {};
struct GetConfigReq {};
struct SetDataFdReq {};
struct SetBufferSizeReq { uint32_t buffersize = 0; };
struct GetInfoReq { uint64_t flags = 0; uint32_t offset = 0; };
struct LockStorageReq { uint32_t retries = 0; };
/// CMD_VTPM_TPM_COMMAND: u32 length + TPM command. Answer: u32 result,
/// u32 length, TPM response.
struct VendorTpmCommandReq { ByteView command; };  // view into input
/// CMD_VTPM_RAM_DIGEST: u32 phase (1 save, 2 restore, 3 incoming stream
/// complete: check it now), u32 hash_alg (0x000B), u32 page_size (4096),
/// u64 page_count, u8[32] Merkle root. Answer: u32 result.
struct VendorRamDigestReq {
    uint32_t phase = 0, hash_alg = 0, page_size = 0;
    uint64_t page_count = 0;
    std::array<uint8_t, 32> root{};
};
inline constexpr size_t kRamDigestBody = 52;
/// CMD_VTPM_SNAPSHOT: no body. Answer: u32 result, u32 length, the record.
struct VendorSnapshotReq {};
/// CMD_VTPM_VERIFY_RAM: no body. Answer: u32 result, u32 length, that many
/// bytes of text (on failure: why, naming the first differing pages).
struct VendorVerifyRamReq {};

using Request = std::variant<GetCapabilityReq, InitReq, ShutdownReq, GetTpmEstablishedReq, SetLocalityReq,
                             HashStartReq, HashDataReq, HashEndReq, CancelTpmCmdReq, StoreVolatileReq,
                             ResetTpmEstablishedReq, GetStateBlobReq, SetStateBlobReq, StopReq, GetConfigReq,
                             SetDataFdReq, SetBufferSizeReq, GetInfoReq, LockStorageReq,
                             VendorTpmCommandReq, VendorRamDigestReq, VendorSnapshotReq, VendorVerifyRamReq>;

/// Decode one complete message (4-byte code + body). Errors follow swtpm:
/// unknown code -> rc::kBadOrdinal; a body too short, or longer than an
/// exact-size command takes -> rc::kBadParameter (GET_CAPABILITY,
/// SET_LOCALITY, RESET_TPMESTABLISHED, GET_STATEBLOB, SET_DATAFD,
/// SET_BUFFERSIZE and GET_INFO ignore extra bytes)
/// (message says which command and what size was expected);
/// SET_STATEBLOB length > kMaxStateBlob -> rc::kFail.
/// `lock_storage_supported`=false makes code 0x13 unknown (swtpm 0.7.1).
/// `vendor_supported`=false makes the CMD_VTPM_* commands unknown.
Result<Request> decode_request(ByteView msg, bool lock_storage_supported = true, bool vendor_supported = false);

// ---- responses ----
/// 4-byte result (also every error response).
Bytes encode_result(uint32_t result);
/// GET_CAPABILITY: 8 bytes, u32 0 + u32 mask (identical to 0.7.1's u64 form).
Bytes encode_capability(uint64_t caps);
/// GET_TPMESTABLISHED: result, bit, 3 zero bytes.
Bytes encode_tpm_established(uint32_t result, bool established);
/// GET_CONFIG: result, flags.
Bytes encode_config(uint32_t result, uint32_t flags);
/// SET_BUFFERSIZE: result, buffersize, minsize, maxsize.
Bytes encode_buffersize(uint32_t result, uint32_t size, uint32_t min, uint32_t max);
/// GET_STATEBLOB (socket form): result, state_flags, totlength, length, data
/// from `offset` to the end (empty when offset >= blob size).
Bytes encode_stateblob(uint32_t result, uint32_t state_flags, ByteView blob, uint32_t offset);
/// GET_INFO: result, totlength (strlen+1), length (min(tot-offset, 3072)),
/// then that many bytes of info (NUL-terminated string) from offset.
/// Caller has already checked offset < strlen(info).
Bytes encode_info(std::string_view info, uint32_t offset);
/// CMD_VTPM_TPM_COMMAND and CMD_VTPM_SNAPSHOT: result, length, payload
/// (nothing after a non-zero result).
Bytes encode_vendor_tpm_response(uint32_t result, ByteView response);
/// Client side of the same: the payload length announced by the 8-byte
/// head (result, length) of a CMD_VTPM_TPM_COMMAND or CMD_VTPM_SNAPSHOT
/// answer. Errors: a non-zero result (its code), a length over
/// kMaxVendorTpmCommand, a head shorter than 8 bytes.
Result<uint32_t> vendor_response_length(ByteView head);
/// CMD_VTPM_VERIFY_RAM: result, length, text (also after a non-zero result;
/// cut at kMaxVendorText).
Bytes encode_vendor_text_response(uint32_t result, std::string_view text);
/// Client side of the same: the result and text length announced by the
/// 8-byte head. Errors: a head shorter than 8 bytes, a length over
/// kMaxVendorText.
struct VendorTextHead {
    uint32_t result = 0, length = 0;
};
Result<VendorTextHead> vendor_text_head(ByteView head);

// ---- request encoders (clients: tests, benchmarks, vtpm tools) ----
Bytes encode_request(const Request& req);

}  // namespace vtpm::ctrl
