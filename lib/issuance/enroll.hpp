// Enrollment of a host with a privacy CA: the CA certifies the host AK only
// after TPM2_MakeCredential/ActivateCredential proves the AK lives in the
// TPM whose EK certificate chains to the given roots, and certifies the
// AuthKey only after the AK's TPM2_Certify of it over a fresh CA nonce
// shows a non-migratable, PCR-bound key in the same TPM.
#pragma once

#include <string>

#include "issuance/host_root.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

struct EnrollResult {
    std::string ak_subject, authkey_subject, ek_subject;
};

/// Enroll the host `root` with the privacy CA in `ca_dir` (created on first
/// use), trusting EK certificates that chain to the certificates in
/// `ek_roots_pem`. Writes ak-cert.pem, authkey-cert.pem and ca-chain.pem
/// into the root's HOSTDIR.
Result<EnrollResult> enroll_host(HostRoot& root, const std::string& ca_dir, const std::string& ek_roots_pem,
                                 int days = 365);

}  // namespace vtpm::issuance
