// Enrollment of a host with a privacy CA: the CA certifies the host AK only
// after TPM2_MakeCredential/ActivateCredential proves the AK lives in the
// TPM whose EK certificate chains to the given roots, and certifies the
// AuthKey only after the AK's TPM2_Certify of it over a fresh CA nonce
// shows a non-migratable, PCR-bound key in the same TPM.
#pragma once

#include <string>

#include "hosttpm/esys.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

struct EnrollResult {
    std::string ak_subject, authkey_subject, ek_subject;
};

/// Enroll the host whose TPM is `tpm` and whose files are in `host_dir`
/// with the privacy CA in `ca_dir` (created on first use), trusting EK
/// certificates that chain to the certificates in `ek_roots_pem`.
/// Writes ak-cert.pem, authkey-cert.pem and ca-chain.pem into host_dir.
Result<EnrollResult> enroll_host(hosttpm::Esys& tpm, const std::string& host_dir, const std::string& ca_dir,
                                 const std::string& ek_roots_pem, int days = 365);

}  // namespace vtpm::issuance
