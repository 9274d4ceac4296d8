// TPM 2.0 object arithmetic a verifier needs without a TPM: object names,
// the PolicyPCR digest, the PCR digest a quote signs, the user binding
// H(certuser || nonce), and checking TPMS_ATTEST signatures with OpenSSL.
// Pure: bytes in, results out.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <string>
#include <string_view>
#include <vector>

#include "util/ossl.hpp"
#include "util/sha256.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::tpm {

/// One PCR's value as read from a TPM.
struct PcrValue {
    uint16_t alg = 0;
    uint8_t index = 0;
    Bytes digest;
};

/// Name of an object: nameAlg (2 bytes) || H_nameAlg(marshalled TPMT_PUBLIC).
Result<Bytes> object_name(const TPMT_PUBLIC& pub);

/// Marshalled TPM2B_PUBLIC <-> TPMT_PUBLIC. Without `consumed` the input
/// must be exactly one TPM2B_PUBLIC; with it, a prefix (as in a response)
/// and `consumed` says how long it was.
Result<Bytes> marshal_public(const TPMT_PUBLIC& pub);
Result<TPMT_PUBLIC> unmarshal_public(ByteView tpm2b_public, size_t* consumed = nullptr);

/// Marshalled TPML_PCR_SELECTION <-> structure.
Result<Bytes> marshal_pcr_selection(const TPML_PCR_SELECTION& sel);
Result<TPML_PCR_SELECTION> unmarshal_pcr_selection(ByteView data);

/// A selection of one bank.
TPML_PCR_SELECTION pcr_selection(TPMI_ALG_HASH bank, const std::vector<unsigned>& pcrs);
/// The PCR indices selected in one bank of `sel` ("0,1,7").
std::vector<unsigned> selected_pcrs(const TPML_PCR_SELECTION& sel, TPMI_ALG_HASH bank);
std::string pcr_list_text(const std::vector<unsigned>& pcrs);
/// "0,1,7" -> {0, 1, 7}; the error names a token that is not a PCR (0-23).
Result<std::vector<unsigned>> parse_pcr_list(std::string_view text);

/// SHA-256 policy digest after PolicyPCR(sel, pcr_digest) from an empty
/// policy: H(0^32 || TPM_CC_PolicyPCR || sel || pcr_digest).
Result<Bytes> policy_pcr_digest(const TPML_PCR_SELECTION& sel, ByteView pcr_digest);

/// The AuthKey's policy: usable for TPM2_Sign or TPM2_Certify only, only
/// while the host PCRs hold the values digested in `pcr_digest`, and only by
/// whoever knows its auth value (a secret sealed to the host TPM that only
/// vtpm-hostd unseals, so raw access to the TPM device is not enough):
///   cc(c)      = H(PolicyPCR digest || TPM_CC_PolicyCommandCode || c)
///   branch(c)  = H(cc(c) || TPM_CC_PolicyAuthValue)
///   policy     = H(0^32 || TPM_CC_PolicyOR || branch(Sign) || branch(Certify))
/// (Certify needs the ADMIN role, which adminWithPolicy ties to a command code.)
struct AuthKeyPolicy {
    Bytes branch_sign, branch_certify, digest;
};
Result<AuthKeyPolicy> authkey_policy(const TPML_PCR_SELECTION& sel, ByteView pcr_digest);

/// Host PCR policies go through TPM2_PolicyAuthorize so an OS update is
/// re-authorised by the host owner instead of re-provisioning: an object's
/// authPolicy names the owner's policy key and a policyRef, and a session
/// satisfies it with any policy the owner signed. The refs keep an approval
/// for one purpose from serving the other.
inline constexpr std::string_view kAuthKeyPolicyRef = "libvtpm authkey policy v1";
inline constexpr std::string_view kUnsealPolicyRef = "libvtpm unseal policy v1";

/// authPolicy after PolicyAuthorize(keySign = `signer_name`, policyRef) from
/// an empty policy: H(H(0^32 || TPM_CC_PolicyAuthorize || name) || ref).
Result<Bytes> policy_authorize_digest(ByteView signer_name, std::string_view policy_ref);

/// What the owner signs to approve `approved` for `policy_ref`:
/// the message approved || ref, whose SHA-256 is TPM2_PolicyAuthorize's aHash.
Bytes approval_message(ByteView approved, std::string_view policy_ref);

/// The policy the owner approves for unsealing a host secret while the host
/// PCRs hold the values digested in `pcr_digest`:
///   H(PolicyPCR digest || TPM_CC_PolicyCommandCode || TPM_CC_Unseal).
Result<Bytes> unseal_policy(const TPML_PCR_SELECTION& sel, ByteView pcr_digest);

/// H(certuser DER || nonce): what CertAuthKey and CertvAIK are bound to.
Bytes user_binding(ByteView user_cert_der, ByteView nonce);

/// Digest length of a TPM hash algorithm (0 if unknown) and its OpenSSL name.
size_t hash_size(TPMI_ALG_HASH alg);
const EVP_MD* hash_md(TPMI_ALG_HASH alg);

/// Unmarshal the bytes of a TPM2B_ATTEST's buffer.
Result<TPMS_ATTEST> parse_attest(ByteView attest);
/// Marshalled TPMT_SIGNATURE -> structure.
Result<TPMT_SIGNATURE> unmarshal_signature(ByteView data);
Result<Bytes> marshal_signature(const TPMT_SIGNATURE& sig);

/// Check `sig` (ECDSA or RSASSA/RSAPSS, SHA-256/384) over `data` with `key`.
/// The error says why (scheme, hash, or bad signature).
Result<void> verify_signature(EVP_PKEY* key, ByteView data, const TPMT_SIGNATURE& sig);

/// ECDSA (r, s) from a TPM as a DER Ecdsa-Sig-Value (what X.509 carries).
Result<Bytes> ecdsa_der(const TPMS_SIGNATURE_ECC& sig);

}  // namespace vtpm::tpm
