// The one TPM command layer: TPM 2.0 (and the few TPM 1.2) commands the
// project builds — to manufacture a vTPM, to issue its identity, to record
// and taint its PCRs, to start and stop libtpms — marshalled with tss2-mu,
// and the response fields read back. Pure: bytes in, bytes out; whoever
// holds a TPM (the engine, a channel to a bridge) executes them.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "tpm/handles.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::tpm {

/// Which EK: RSA 2048 (template L-1), ECC NIST P-256 (L-2), RSA 3072 (H-class).
enum class EkKind { Rsa2048, EccP256, Rsa3072 };

struct EkLayout {
    uint32_t handle, cert_index, template_index;
    const char* description;  // "rsa2048", "secp256r1", "rsa3072"
};
EkLayout ek_layout(EkKind kind);

/// The EK template; non-standard attributes with allow_signing.
TPMT_PUBLIC ek_template(EkKind kind, bool allow_signing, bool decryption);
/// Storage primary key template (restricted decrypt, AES-CFB).
TPMT_PUBLIC spk_template(bool ecc, unsigned rsa_bits);
/// Marshalled TPMT_PUBLIC, no size prefix (what swtpm stores as the EK template in NV).
Bytes marshal_tpmt_public(const TPMT_PUBLIC& pub);

Bytes create_primary(uint32_t hierarchy, const TPMT_PUBLIC& tmpl);
Bytes evict_control(uint32_t object, uint32_t persistent);
Bytes flush_context(uint32_t handle);
/// `auth`: the hierarchy authorising (platform at manufacturing; owner
/// for indices the host adds to a running vTPM, whose platform auth the
/// guest firmware has changed).
Bytes nv_define_space(uint32_t index, uint32_t attributes, uint16_t size, uint32_t auth = TPM2_RH_PLATFORM);
Bytes nv_write(uint32_t index, ByteView data, uint16_t offset, uint32_t auth = TPM2_RH_PLATFORM);
Bytes nv_undefine_space(uint32_t index, uint32_t auth);
Bytes nv_write_lock(uint32_t index);
Bytes nv_read_public(uint32_t index);
Bytes nv_read(uint32_t index, uint16_t size, uint16_t offset);
Bytes read_public(uint32_t handle);
Bytes get_capability(uint32_t cap, uint32_t property, uint32_t count);
/// TPM2_GetRandom(bytesRequested).
Bytes get_random(uint16_t bytes);
Bytes pcr_allocate(const TPML_PCR_SELECTION& sel);
/// TPM2_Shutdown(shutdownType): 0 = SU_CLEAR, 1 = SU_STATE.
Bytes shutdown(uint16_t su);
/// TPM2_PCR_Read of `sel` (the TPM answers at most 8 digests per call).
Bytes pcr_read(const TPML_PCR_SELECTION& sel);
/// TPM2_PCR_Extend of one PCR in every bank of `digests` (empty password).
Bytes pcr_extend(uint32_t pcr, const TPML_DIGEST_VALUES& digests);
/// TPM2_Quote by `key` (empty password, the key's own scheme).
Bytes quote(uint32_t key, ByteView qualifying, const TPML_PCR_SELECTION& sel);
/// TPM2_StartAuthSession of an unbound, unsalted SHA-256 policy session
/// (`nonce_caller`: 16 to 32 bytes).
Bytes start_policy_session(ByteView nonce_caller);
/// TPM2_PolicySecret(TPM_RH_ENDORSEMENT) on `session`, empty endorsement
/// auth: the TCG default EK policy.
Bytes policy_secret_endorsement(uint32_t session);
/// TPM2_ActivateCredential: `activate` (empty auth) with the key `key`
/// authorised by the policy session `session`; the session ends with it.
Bytes activate_credential(uint32_t activate, uint32_t key, uint32_t session, ByteView credential_blob,
                          ByteView encrypted_secret);

/// The TCG/mssim "send command" prefix (u32 8, u8 locality, u32 length)
/// that some clients put before a TPM 2 command on the data channel.
inline constexpr size_t kSendCommandPrefix = 9;
bool has_send_command_prefix(ByteView buffered);
/// Data-channel framing: the size of the first command in `buffered`
/// (prefix included), nullopt while too little has arrived to tell. A
/// command size that cannot be right (under 10, or over `max`, the TPM's
/// buffer size) frames what has arrived, so that libtpms answers with its
/// own size error, as with swtpm, instead of a wait for bytes that QEMU,
/// which sends at most `max`, will never send.
std::optional<size_t> command_frame_size(ByteView buffered, bool tpm2, size_t max);

/// Response code of a complete response (0xffffffff if shorter than a header).
uint32_t response_code(ByteView rsp);
/// Command code of a command (0 if shorter than a header).
uint32_t command_code(ByteView cmd);
/// A bare 10-byte response header with the given tag and code.
Bytes response_header(uint16_t tag, uint32_t rc);

/// TPM2_Startup(startupType): 0 = SU_CLEAR, 1 = SU_STATE.
Bytes startup(uint16_t su);
/// TPM 1.2 TPM_Startup(type): 1 clear, 2 state, 3 deactivated.
Bytes tpm12_startup(uint16_t type);

/// CreatePrimary response: object handle and public area.
struct CreatedPrimary {
    uint32_t handle = 0;
    TPMT_PUBLIC pub{};
};
Result<CreatedPrimary> parse_create_primary(ByteView rsp);
/// ReadPublic response.
Result<TPMT_PUBLIC> parse_read_public(ByteView rsp);
/// NV_ReadPublic response.
Result<TPMS_NV_PUBLIC> parse_nv_read_public(ByteView rsp);
/// NV_Read response (session-tagged).
Result<Bytes> parse_nv_read(ByteView rsp);
/// PCR_Read response: what was read, and the values in selection order.
struct PcrReadResult {
    TPML_PCR_SELECTION selected{};
    TPML_DIGEST values{};
};
Result<PcrReadResult> parse_pcr_read(ByteView rsp);
/// Quote response: the TPMS_ATTEST bytes and the signature.
struct QuoteResult {
    Bytes attest;
    TPMT_SIGNATURE signature{};
};
Result<QuoteResult> parse_quote(ByteView rsp);
/// GetRandom response: the random bytes.
Result<Bytes> parse_get_random(ByteView rsp);
/// The session handle TPM2_StartAuthSession returned.
Result<uint32_t> parse_start_auth_session(ByteView rsp);
/// The certInfo TPM2_ActivateCredential returned.
Result<Bytes> parse_activate_credential(ByteView rsp);
/// GetCapability(TPM_CAP_PCRS) response.
Result<TPML_PCR_SELECTION> parse_pcr_capability(ByteView rsp);
/// GetCapability(TPM_CAP_HANDLES) response.
Result<std::vector<uint32_t>> parse_handles_capability(ByteView rsp);

}  // namespace vtpm::tpm
