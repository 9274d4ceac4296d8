// The VM side of the identity, inside its vTPM: the vAIK (restricted ECC
// P-256 signing primary in the endorsement hierarchy, persistent) and the NV
// indices the host fills for software in the guest. Documented handles:
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <optional>

#include "issuance/vtpm_channel.hpp"
#include "tpm/handles.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

/// The vAIK template (also what a verifier expects of its attributes).
TPMT_PUBLIC vaik_template();

/// Public area of the vAIK, nullopt when the vTPM has none yet.
Result<std::optional<TPMT_PUBLIC>> read_vaik(VtpmChannel& ch);
/// Create and persist the vAIK (owner authorisation, empty as shipped).
Result<TPMT_PUBLIC> create_vaik(VtpmChannel& ch);

/// The identity generation stored in the vTPM (0 when never issued).
Result<uint64_t> read_generation(VtpmChannel& ch);

/// Replace NV index `index` with exactly `data` (owner-written, readable by
/// anyone with the empty index auth, as EK certificate indices are).
Result<void> write_nv(VtpmChannel& ch, uint32_t index, ByteView data);
/// Contents of an NV index, rc::kRetry when it is not defined.
Result<Bytes> read_nv(VtpmChannel& ch, uint32_t index);

/// TPM2_ActivateCredential in the vTPM: open a challenge (marshalled
/// TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET) for the vAIK with the RSA EK
/// at its persistent handle (PolicySecret(endorsement) session).
Result<Bytes> activate_vaik_credential(VtpmChannel& ch, ByteView credential_blob, ByteView encrypted_secret);

}  // namespace vtpm::issuance
