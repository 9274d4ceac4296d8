// The host's identity files (HOSTDIR) and the AuthKey as a certificate
// issuer: what `vtpm-host provision/enroll` write and `vtpm-attest issue`
// and `vtpm-setup` (certificate_issuer = hosttpm) use.
//   host.conf          handles, AuthKey PCR selection and policy
//   ak.pem, ak.pub      host AK public key (PEM, TPM2B_PUBLIC)
//   authkey.pem/.pub    AuthKey public key
//   authkey.policy      its PolicyPCR digest
//   ak-cert.pem         host AK certificate from the privacy CA (enroll)
//   authkey-cert.pem    AuthKey certificate from the privacy CA (enroll)
//   ca-chain.pem        the privacy CA's issuing and root certificates
//   vms/<uuid>.record   uniqueness records
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <memory>
#include <string>

#include "hosttpm/esys.hpp"
#include "identity/issuer.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

inline constexpr const char* kHostConf = "host.conf";
inline constexpr const char* kAkCertFile = "ak-cert.pem";
inline constexpr const char* kAuthKeyCertFile = "authkey-cert.pem";
inline constexpr const char* kCaChainFile = "ca-chain.pem";

struct HostConfig {
    TPML_PCR_SELECTION authkey_pcrs{};
};

/// Read HOSTDIR/host.conf (written by `vtpm-host provision`).
Result<HostConfig> read_host_config(const std::string& host_dir);

/// Write `text` to HOSTDIR/name durably (temp file, fsync, rename).
Result<void> write_host_file(const std::string& host_dir, const std::string& name, const std::string& text,
                             unsigned mode = 0644);

/// The AuthKey in the hardware TPM as an X.509 issuer: its certificate from
/// HOSTDIR (after enroll), signatures by TPM2_Sign through the PCR policy.
class AuthKeyIssuer final : public identity::Issuer {
public:
    static Result<std::unique_ptr<AuthKeyIssuer>> open(hosttpm::Esys& tpm, const std::string& host_dir);
    /// What HOSTDIR/host.conf says (read once, by open()).
    const HostConfig& config() const { return cfg_; }
    const X509* certificate() const override { return cert_.get(); }
    std::vector<const X509*> chain() const override;
    Result<void> sign(X509* cert) override;
    std::string describe() const override;

    AuthKeyIssuer(hosttpm::Esys& tpm, std::string dir, HostConfig cfg, identity::X509Ptr cert,
                  identity::X509StackPtr chain)
        : tpm_(tpm), dir_(std::move(dir)), cfg_(cfg), cert_(std::move(cert)), chain_(std::move(chain)) {}

private:
    hosttpm::Esys& tpm_;
    std::string dir_;
    HostConfig cfg_;
    identity::X509Ptr cert_;
    identity::X509StackPtr chain_;
};

}  // namespace vtpm::issuance
