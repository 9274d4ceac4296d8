// The host daemon's local API (vtpm-hostd): what bridges, vtpm-setup and
// vtpm-attest may ask of the host's hardware root. Pure codec, no I/O.
//
// One request per statement, never "sign these bytes": each kind names what
// the daemon checks and builds itself, and each kind's signed output is
// domain-separated (records start "libvtpm snapshot record v1\0",
// certificates are DER), so one kind cannot be replayed as another.
//
// Frame: u32 length (big-endian, at most kMaxFrame) || body.
//   request body:  u16 version=1  u16 kind           u16 n  n * (u32 len || bytes)
//   response body: u16 version=1  u16 kind  u32 status  u16 n  n * (u32 len || bytes)
// A response with status != 0 carries one field: the reason, as text.
// Integers inside fields are big-endian; UUIDs are 16 raw bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hostapi {

inline constexpr uint16_t kVersion = 1;
/// Largest frame body: a snapshot's page hashes for 16 GiB of RAM fit.
inline constexpr uint32_t kMaxFrame = 160u << 20;
/// Where the daemon listens unless told otherwise.
inline constexpr const char* kDefaultSocket = "/run/libvtpm/hostd.sock";

enum class Kind : uint16_t {
    HostInfo = 1,            // the AuthKey's public area, certificate and chain
    LedgerLatest = 2,        // the last snapshot generation signed for a VM
    SignSnapshotRecord = 3,  // check, commit to the ledger and sign a snapshot record
    KeepLeaves = 4,          // keep a save's page hashes (for naming differing pages)
    LeavesFor = 5,           // the kept page hashes of a save
    IssueTcgCert = 6,        // an EK or platform certificate for a vTPM being manufactured
    IssueVaik = 7,           // a CertvAIK and identity bundle for a VM's vAIK (after VaikChallenge)
    ConfirmVaik = 8,         // the vTPM holds the identity issued: finish its record
    VaikChallenge = 9,       // a credential only the vTPM with this EK can open, for this vAIK
    StateKey = 10,           // a VM's state-at-rest key, sealed to the host TPM (made on first use if asked)
    ExportStateKey = 11,     // the same key for an operator (root only; logged as an export)
    ConsumeGeneration = 12,  // the latest save of a VM was restored and runs: it restores no more
    RevertGeneration = 13,   // an operator's explicit snapshot revert (root only): that save restores again
};
/// "SignSnapshotRecord", or "kind N" for an unknown one.
std::string kind_name(uint16_t kind);

using Uuid = std::array<uint8_t, 16>;
using Digest32 = std::array<uint8_t, 32>;

/// A decoded frame body (request or response).
struct Message {
    uint16_t kind = 0;
    uint32_t status = 0;  // responses only
    std::vector<Bytes> fields;
};

/// Length prefix + body.
Bytes encode_request(Kind kind, const std::vector<Bytes>& fields);
Bytes encode_response(uint16_t kind, uint32_t status, const std::vector<Bytes>& fields);
/// A failed request's response: status (non-zero) and the reason.
Bytes encode_failure(uint16_t kind, uint32_t status, const std::string& reason);
/// The body length a 4-byte prefix announces; an error when over kMaxFrame.
Result<uint32_t> frame_length(ByteView prefix);
/// Decode a body (without its length prefix). Every length and count is
/// checked against what is there; the error names what is wrong.
Result<Message> decode_request(ByteView body);
Result<Message> decode_response(ByteView body);

// ---- Typed statements: each converts to and from a Message's fields. ----

struct HostInfoReply {
    Bytes authkey_public;  // marshalled TPMT_PUBLIC
    Bytes authkey_cert;    // DER, empty before enrollment
    std::vector<Bytes> chain;  // DER, issuer first, up to the root
};

struct LedgerQuery {
    Uuid vm{};
};
struct LedgerReply {
    bool present = false;
    uint64_t generation = 0;
    Digest32 root{};
    bool restored = false;  // that save was restored already (consumed)
};

/// ConsumeGeneration: VM `vm`'s save `generation` with `root` (the latest)
/// was restored and runs. RevertGeneration: make save `generation` (kept in
/// the ledger's history) the latest again, unconsumed; `root` is ignored.
struct GenerationRequest {
    Uuid vm{};
    uint64_t generation = 0;
    Digest32 root{};
};

struct RecordRequest {
    Bytes record;  // an encoded snapshot record whose host signature is empty
};
struct RecordReply {
    Bytes signature;  // marshalled TPMT_SIGNATURE
};

struct LeavesRequest {
    Uuid vm{};
    Digest32 root{};
    Bytes leaves;  // n * 32 bytes (KeepLeaves), empty for LeavesFor
};

struct TcgCertRequest {
    uint8_t kind = 0;  // 0 EK, 1 platform
    Bytes subject_public_key;  // DER SubjectPublicKeyInfo
    bool tpm2 = true, allow_signing = false, decryption = true;
    std::string subject_cn, tpm_manufacturer, tpm_model, tpm_version, spec_family;
    uint64_t spec_level = 0, spec_revision = 0;
    std::string platform_manufacturer, platform_model, platform_version;
    int32_t days = -1;
};

/// VM U's key for its state at rest: 32 random bytes made by the daemon
/// (the TPM's RNG), kept only sealed to the host TPM under the host PCR
/// policy (HOSTDIR/vms/UUID.statekey). `create`: make one when the VM has
/// none yet; otherwise a VM without a key is an error.
struct StateKeyRequest {
    Uuid vm{};
    bool create = false;
};
/// ExportStateKey takes a StateKeyRequest with create = false.
struct StateKeyReply {
    bool created = false;  // made by this request
    Bytes key;             // 32 bytes; wipe after use
};

/// Proof that the vAIK lives in the vTPM: the daemon checks the vTPM's EK
/// certificate and wraps a secret to that EK for the vAIK's name
/// (TPM2_MakeCredential); only TPM2_ActivateCredential in that vTPM, with
/// that vAIK loaded, opens it.
struct VaikChallengeRequest {
    Uuid vm{};
    Bytes vaik_public;  // marshalled TPMT_PUBLIC
    Bytes ek_cert;      // DER, from the vTPM's NV
};
struct VaikChallengeReply {
    std::array<uint8_t, 16> id{};
    Bytes credential_blob;   // marshalled TPM2B_ID_OBJECT
    Bytes encrypted_secret;  // marshalled TPM2B_ENCRYPTED_SECRET
};

struct VaikRequest {
    std::array<uint8_t, 16> challenge{};  // VaikChallengeReply::id
    Bytes activated;                      // what ActivateCredential returned
    Uuid vm{};
    Bytes user_cert;    // DER
    Bytes nonce;
    Bytes vaik_public;  // marshalled TPMT_PUBLIC, as the vTPM holds it
    uint64_t vtpm_generation = 0;  // what the vTPM's NV says
    bool vaik_existed = false;     // the vAIK was there before this request
    uint32_t days = 7;
    bool adopt = false;
};
struct VaikReply {
    Bytes certificate;  // DER
    Bytes bundle;       // encoded identity bundle
    uint64_t generation = 0;
};
struct VaikConfirm {
    Uuid vm{};
    uint64_t generation = 0;
    Bytes vaik_name;
};

std::vector<Bytes> to_fields(const HostInfoReply& m);
std::vector<Bytes> to_fields(const StateKeyRequest& m);
std::vector<Bytes> to_fields(const StateKeyReply& m);
std::vector<Bytes> to_fields(const GenerationRequest& m);
std::vector<Bytes> to_fields(const LedgerQuery& m);
std::vector<Bytes> to_fields(const LedgerReply& m);
std::vector<Bytes> to_fields(const RecordRequest& m);
std::vector<Bytes> to_fields(const RecordReply& m);
std::vector<Bytes> to_fields(const LeavesRequest& m);
std::vector<Bytes> to_fields(const TcgCertRequest& m);
std::vector<Bytes> to_fields(const VaikChallengeRequest& m);
std::vector<Bytes> to_fields(const VaikChallengeReply& m);
std::vector<Bytes> to_fields(const VaikRequest& m);
std::vector<Bytes> to_fields(const VaikReply& m);
std::vector<Bytes> to_fields(const VaikConfirm& m);

/// Each checks the field count and every fixed size; the error names the field.
Result<HostInfoReply> parse_host_info(const std::vector<Bytes>& f);
Result<StateKeyRequest> parse_state_key_request(const std::vector<Bytes>& f);
Result<StateKeyReply> parse_state_key_reply(const std::vector<Bytes>& f);
Result<GenerationRequest> parse_generation_request(const std::vector<Bytes>& f);
Result<LedgerQuery> parse_ledger_query(const std::vector<Bytes>& f);
Result<LedgerReply> parse_ledger_reply(const std::vector<Bytes>& f);
Result<RecordRequest> parse_record_request(const std::vector<Bytes>& f);
Result<RecordReply> parse_record_reply(const std::vector<Bytes>& f);
Result<LeavesRequest> parse_leaves_request(const std::vector<Bytes>& f);
Result<TcgCertRequest> parse_tcg_cert_request(const std::vector<Bytes>& f);
Result<VaikChallengeRequest> parse_vaik_challenge_request(const std::vector<Bytes>& f);
Result<VaikChallengeReply> parse_vaik_challenge_reply(const std::vector<Bytes>& f);
Result<VaikRequest> parse_vaik_request(const std::vector<Bytes>& f);
Result<VaikReply> parse_vaik_reply(const std::vector<Bytes>& f);
Result<VaikConfirm> parse_vaik_confirm(const std::vector<Bytes>& f);

}  // namespace vtpm::hostapi
