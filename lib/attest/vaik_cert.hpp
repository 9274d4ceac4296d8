// CertvAIK: the X.509 certificate for a VM's vAIK, signed by the host's
// AuthKey. Besides the key it carries, in a private extension, what binds it
// to one VM and one verifier request: the VM UUID, H(certuser || nonce), the
// identity generation, the vAIK's and the AuthKey's TPM names. The UUID is
// also a urn:uuid subjectAltName for ordinary X.509 tooling.
#pragma once

#include <cstdint>
#include <string>

#include "x509/issuer.hpp"
#include "util/ossl.hpp"
#include "util/bytes.hpp"
#include "util/uuid.hpp"
#include "vtpm/result.hpp"

namespace vtpm::attest {

/// Our extension: 2.25.<UUID 7afef1f8-6f9e-4df4-8fb2-2e258e226f24>.1
inline constexpr const char* kOidVtpmIdentity = "2.25.163489566631670580805286640126261358372.1";
/// TCG tcg-kp-AIKCertificate.
inline constexpr const char* kOidAikCertificate = "2.23.133.8.3";

struct VaikBinding {
    std::string vm_uuid;  // canonical lower-case text form
    Bytes user_binding;   // H(certuser || nonce)
    uint64_t generation = 0;
    Bytes vaik_name, authkey_name;
};

struct VaikCertRequest {
    EVP_PKEY* vaik_key = nullptr;
    VaikBinding binding;
    int days = 7;
};

/// Build CertvAIK and have `issuer` sign it. DER result.
Result<Bytes> issue_vaik_certificate(const VaikCertRequest& req, x509::Issuer& issuer);

/// Read the binding extension back; error if absent or malformed.
Result<VaikBinding> read_vaik_binding(const X509* cert);


}  // namespace vtpm::attest
