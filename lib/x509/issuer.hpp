// Who signs the certificates a vTPM is manufactured with. Pluggable: the
// local CA on disk (local_ca.hpp) or the host's hardware-TPM AuthKey
// (issuance/host_identity.hpp).
#pragma once

#include <string>
#include <vector>

#include "util/ossl.hpp"
#include "vtpm/result.hpp"

namespace vtpm::x509 {

class Issuer {
public:
    virtual ~Issuer() = default;
    /// The certificate whose subject becomes the issuer of what we sign.
    virtual const X509* certificate() const = 0;
    /// The issuer's chain up to and including its root, issuer first.
    virtual std::vector<const X509*> chain() const = 0;
    /// Sign `cert` (issuer name and AKID are already set).
    virtual Result<void> sign(X509* cert) = 0;
    /// One line naming the issuer, for logs and --display.
    virtual std::string describe() const = 0;
};

}  // namespace vtpm::x509
