// TPM2_MakeCredential computed in software, as a privacy CA does it: the
// challenge can only be opened (TPM2_ActivateCredential) by the TPM holding
// the private part of the EK *from the certificate*, and only for the key
// whose name is given. Never ask the TPM under test to make its own
// challenge. TPM 2.0 Part 1 §24 (KDFa, "IDENTITY"/"STORAGE"/"INTEGRITY").
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include "util/ossl.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::attest {

struct Credential {
    TPM2B_ID_OBJECT blob{};
    TPM2B_ENCRYPTED_SECRET secret{};
};

/// KDFa with SHA-256 (counter mode, HMAC), `bits` of output.
Bytes kdfa_sha256(ByteView key, std::string_view label, ByteView context_u, ByteView context_v, uint32_t bits);

/// Wrap `secret` (at most 32 bytes) for the object named `name`, to the RSA
/// EK `ek` (TCG default EK: SHA-256 name algorithm, AES-128-CFB).
/// ECC EKs are refused with a message saying so.
Result<Credential> make_credential(EVP_PKEY* ek, ByteView name, ByteView secret);

}  // namespace vtpm::attest
