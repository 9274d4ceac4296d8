// vtpm-hostd as the certificate authority of vtpm-setup (certificate_issuer
// = hosttpm): the daemon builds each EK or platform certificate from the
// request's fields and signs it with the hardware TPM's AuthKey.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hostapi/client.hpp"
#include "util/ossl.hpp"
#include "x509/tcg_cert.hpp"

namespace vtpm::issuance {

class HostdAuthority final : public x509::CertAuthority {
public:
    /// Ask the daemon on `socket_path` for its AuthKey certificate and chain;
    /// an error when it is unreachable or the host is not enrolled.
    static Result<std::unique_ptr<HostdAuthority>> open(const std::string& socket_path);
    Result<Bytes> issue(const x509::CertRequest& req) override;
    std::vector<const X509*> chain() const override;
    std::string describe() const override { return "hardware-TPM AuthKey through vtpm-hostd (" + client_.path() + ")"; }

    HostdAuthority(hostapi::Client client, std::vector<vtpm::X509Ptr> chain)
        : client_(std::move(client)), chain_(std::move(chain)) {}

private:
    hostapi::Client client_;
    std::vector<vtpm::X509Ptr> chain_;
};

}  // namespace vtpm::issuance
