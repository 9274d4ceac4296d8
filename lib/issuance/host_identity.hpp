// The AuthKey in the hardware TPM as a certificate issuer: what
// `vtpm-attest issue` and `vtpm-setup` (certificate_issuer = hosttpm) sign
// with. The files it reads are described in hoststate/host_files.hpp.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <memory>
#include <string>

#include "hoststate/host_files.hpp"
#include "hosttpm/esys.hpp"
#include "x509/issuer.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

/// The AuthKey in the hardware TPM as an X.509 issuer: its certificate from
/// HOSTDIR (after enroll), signatures by TPM2_Sign through the PCR policy.
class AuthKeyIssuer final : public x509::Issuer {
public:
    static Result<std::unique_ptr<AuthKeyIssuer>> open(hosttpm::Esys& tpm, const std::string& host_dir);
    /// What HOSTDIR/host.conf says (read once, by open()).
    const hoststate::HostConfig& config() const { return cfg_; }
    const X509* certificate() const override { return cert_.get(); }
    std::vector<const X509*> chain() const override;
    Result<void> sign(X509* cert) override;
    std::string describe() const override;

    AuthKeyIssuer(hosttpm::Esys& tpm, std::string dir, hoststate::HostConfig cfg, vtpm::X509Ptr cert,
                  vtpm::X509StackPtr chain)
        : tpm_(tpm), dir_(std::move(dir)), cfg_(cfg), cert_(std::move(cert)), chain_(std::move(chain)) {}

private:
    hosttpm::Esys& tpm_;
    std::string dir_;
    hoststate::HostConfig cfg_;
    vtpm::X509Ptr cert_;
    vtpm::X509StackPtr chain_;
};

}  // namespace vtpm::issuance
