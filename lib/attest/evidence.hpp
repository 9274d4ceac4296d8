// The two containers of the attestation flow, as tag-length-value files:
//  - IdentityBundle: what the host writes into the vTPM's NV next to the
//    CertvAIK (the AuthKey, its fresh TPM2_Certify by the host AK, the host
//    PCR policy inputs, the owner's approval of them, a quote of the host
//    PCRs by the host AK, the identity generation);
//  - Evidence: what `vtpm-attest quote` writes and `verify` reads.
// Layout: 8-byte magic, then records {u16 tag, u32 length, value} (big
// endian). Unknown tags are skipped, a repeated single-valued tag is an
// error. Pure codec; every parser input is untrusted.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tpm/objects.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::attest {

struct IdentityBundle {
    Bytes authkey_public;      // marshalled TPM2B_PUBLIC of the AuthKey
    Bytes certify_attest;      // TPMS_ATTEST of TPM2_Certify(AuthKey) by the host AK
    Bytes certify_signature;   // marshalled TPMT_SIGNATURE
    Bytes host_pcr_selection;  // marshalled TPML_PCR_SELECTION the AuthKey policy covers
    Bytes host_pcr_digest;     // H(selected host PCR values) at issuance
    uint64_t generation = 0;   // identity generation of this VM
    Bytes owner_public;        // marshalled TPM2B_PUBLIC of the host owner's policy key
    Bytes owner_approval;      // the owner's signature over the AuthKey policy for host_pcr_digest
    Bytes host_quote_attest;   // TPMS_ATTEST of TPM2_Quote(host PCRs) by the host AK over H(user || nonce)
    Bytes host_quote_signature;
};

struct Evidence {
    Bytes quote_attest;     // TPMS_ATTEST of TPM2_Quote by the vAIK
    Bytes quote_signature;  // marshalled TPMT_SIGNATURE
    std::vector<tpm::PcrValue> pcrs;  // the quoted PCR values, in selection order
    Bytes vaik_public;      // marshalled TPM2B_PUBLIC of the vAIK
    Bytes vaik_cert;        // CertvAIK, DER, as read from the vTPM's NV
    Bytes identity_bundle;  // IdentityBundle, as read from the vTPM's NV
    std::vector<Bytes> event_logs;
};

/// Largest evidence file accepted (event logs included).
inline constexpr size_t kMaxEvidence = 32u << 20;

Bytes encode_bundle(const IdentityBundle& b);
Result<IdentityBundle> decode_bundle(ByteView data);

Bytes encode_evidence(const Evidence& e);
Result<Evidence> decode_evidence(ByteView data);

}  // namespace vtpm::attest
