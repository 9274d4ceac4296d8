// TPM 2.0 commands used to manufacture a vTPM (EK, SPK, NV certificates,
// PCR banks), marshalled with tss2-mu, and the response fields read back.
// Pure: bytes in, bytes out; executed by Tpm2Client.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::setup::tpm2 {

/// Standard handles and NV indices (TCG EK Credential Profile 2.0 / swtpm).
inline constexpr uint32_t kEkRsa2048Handle = 0x81010001;
inline constexpr uint32_t kEkEccP256Handle = 0x81010002;
inline constexpr uint32_t kEkRsa3072Handle = 0x8101001c;
inline constexpr uint32_t kSpkHandle = 0x81000001;
inline constexpr uint32_t kNvRsa2048EkCert = 0x01c00002;
inline constexpr uint32_t kNvRsa2048EkTemplate = 0x01c00004;
inline constexpr uint32_t kNvEccP256EkCert = 0x01c0000a;
inline constexpr uint32_t kNvEccP256EkTemplate = 0x01c0000c;
inline constexpr uint32_t kNvRsa3072EkCert = 0x01c0001c;
inline constexpr uint32_t kNvRsa3072EkTemplate = 0x01c0001d;
inline constexpr uint32_t kNvPlatformCert = 0x01c08000;
/// Attributes of the certificate indices: platform-created, readable by
/// owner and with auth, written with platform auth, lockable until the next
/// definition (WRITEDEFINE), no dictionary-attack accounting.
inline constexpr uint32_t kNvCertAttributes = TPMA_NV_PLATFORMCREATE | TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD |
                                              TPMA_NV_PPREAD | TPMA_NV_PPWRITE | TPMA_NV_NO_DA |
                                              TPMA_NV_WRITEDEFINE;
/// The largest NV_Write/NV_Read chunk libtpms accepts.
inline constexpr uint16_t kNvChunk = 1024;

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
/// Marshalled TPMT_PUBLIC (what swtpm stores as the EK template in NV).
Bytes marshal_public(const TPMT_PUBLIC& pub);

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
Bytes pcr_allocate(const TPML_PCR_SELECTION& sel);
Bytes shutdown(uint16_t su);
/// TPM2_PCR_Read of `sel` (the TPM answers at most 8 digests per call).
Bytes pcr_read(const TPML_PCR_SELECTION& sel);
/// TPM2_PCR_Extend of one PCR in every bank of `digests` (empty password).
Bytes pcr_extend(uint32_t pcr, const TPML_DIGEST_VALUES& digests);
/// TPM2_Quote by `key` (empty password, the key's own scheme).
Bytes quote(uint32_t key, ByteView qualifying, const TPML_PCR_SELECTION& sel);

/// Response code (0xffffffff if shorter than a header).
uint32_t response_code(ByteView rsp);

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
/// GetCapability(TPM_CAP_PCRS) response.
Result<TPML_PCR_SELECTION> parse_pcr_capability(ByteView rsp);
/// GetCapability(TPM_CAP_HANDLES) response.
Result<std::vector<uint32_t>> parse_handles_capability(ByteView rsp);

}  // namespace vtpm::setup::tpm2
