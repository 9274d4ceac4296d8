// The AuthKey in the hardware TPM as a certificate issuer: what vtpm-hostd
// signs CertvAIKs and vTPM EK/platform certificates with, for the statements
// it checked. The files it reads are described in hoststate/host_files.hpp.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <memory>
#include <string>

#include "hoststate/host_files.hpp"
#include "issuance/host_root.hpp"
#include "x509/issuer.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

/// The AuthKey in the hardware TPM as an X.509 issuer: its certificate from
/// HOSTDIR (after enroll), signatures by TPM2_Sign through the PCR policy.
class AuthKeyIssuer final : public x509::Issuer {
public:
    static Result<std::unique_ptr<AuthKeyIssuer>> open(HostRoot& root);
    const X509* certificate() const override { return cert_.get(); }
    std::vector<const X509*> chain() const override;
    Result<void> sign(X509* cert) override;
    std::string describe() const override;

    AuthKeyIssuer(HostRoot& root, vtpm::X509Ptr cert, vtpm::X509StackPtr chain)
        : root_(root), cert_(std::move(cert)), chain_(std::move(chain)) {}

private:
    HostRoot& root_;
    vtpm::X509Ptr cert_;
    vtpm::X509StackPtr chain_;
};

}  // namespace vtpm::issuance
