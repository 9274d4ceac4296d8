// Operations on the hardware TPM behind the identity flow: reading host
// PCRs and NV, the EK and its certificate, TPM2_ActivateCredential for
// enrollment, TPM2_Certify by the host AK, and signing with the AuthKey
// through its PCR policy. Each call cleans up every session it starts.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "tpm/objects.hpp"

#include "hosttpm/esys.hpp"
#include "hosttpm/host_policy.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// TCG EK Credential Profile: RSA-2048 EK certificate and EK handle.
inline constexpr uint32_t kEkCertNvRsa = 0x01c00002;
inline constexpr uint32_t kEkHandleRsa = 0x81010001;

/// A TPMS_ATTEST and its signature, as the TPM returned them (marshalled).
struct SignedAttest {
    Bytes attest;     // TPM2B_ATTEST's buffer
    Bytes signature;  // marshalled TPMT_SIGNATURE
};

/// The values of `pcrs` in one bank, ascending.
Result<std::vector<tpm::PcrValue>> read_pcrs(Esys& tpm, TPMI_ALG_HASH bank, const std::vector<unsigned>& pcrs);

/// SHA-256 over the values of the selected PCRs, in selection order.
Result<Bytes> pcr_digest(Esys& tpm, const TPML_PCR_SELECTION& sel);

/// Contents of an NV index (authorised by the index itself, empty auth).
Result<Bytes> read_nv(Esys& tpm, uint32_t index);

/// The RSA EK: the persistent one at kEkHandleRsa, or else created from the
/// TCG default template (template L-1) as a transient primary.
struct EkObject {
    ESYS_TR handle = ESYS_TR_NONE;
    TPM2B_PUBLIC pub{};
    TrHandle persistent;
    FlushedHandle transient;
};
Result<EkObject> load_ek(Esys& tpm);

/// TPM2_ActivateCredential: open a privacy CA's challenge for the key at
/// `key_handle` with the EK (PolicySecret(endorsement) session); the
/// response travels encrypted in a session salted to the EK.
Result<Bytes> activate_credential(Esys& tpm, uint32_t key_handle, const EkObject& ek, const TPM2B_ID_OBJECT& blob,
                                  const TPM2B_ENCRYPTED_SECRET& secret);

/// TPM2_Certify of the AuthKey (authorised through its policy with its auth
/// value `auth`) by the host AK, with `qualifying` as qualifyingData.
Result<SignedAttest> certify_authkey(Esys& tpm, ByteView auth, ByteView qualifying, const HostPolicy& policy);

/// TPM2_Sign of a SHA-256 digest by the AuthKey through its policy, with its
/// auth value `auth`. Only vtpm-hostd calls this, for statements it checked.
/// A host in a state the owner did not approve gets an error saying so.
Result<TPMT_SIGNATURE> authkey_sign(Esys& tpm, ByteView auth, ByteView digest, const HostPolicy& policy);

/// TPM2_Quote of the host PCRs `pcrs` by the host AK over `qualifying`: what
/// the host PCRs hold when an identity is issued, for the verifier to match
/// against the owner's approval.
Result<SignedAttest> quote_host_pcrs(Esys& tpm, const TPML_PCR_SELECTION& pcrs, ByteView qualifying);

}  // namespace vtpm::hosttpm
