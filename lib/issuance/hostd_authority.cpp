#include "issuance/hostd_authority.hpp"

#include <openssl/x509.h>

namespace vtpm::issuance {

Result<std::unique_ptr<HostdAuthority>> HostdAuthority::open(const std::string& socket_path) {
    hostapi::Client client(socket_path);
    auto info = client.host_info();
    if (!info) return info.error();
    if (info->authkey_cert.empty())
        return make_error(rc::kFail, "the host has no AuthKey certificate yet (run vtpm-host enroll)");
    std::vector<vtpm::X509Ptr> chain;
    info->chain.insert(info->chain.begin(), info->authkey_cert);
    for (const auto& der : info->chain) {
        auto cert = x509::parse_der_certificate(der);
        if (!cert) return make_error(rc::kFail, "vtpm-hostd sent a malformed certificate: " + cert.error().message);
        chain.push_back(std::move(*cert));
    }
    return std::make_unique<HostdAuthority>(std::move(client), std::move(chain));
}

Result<Bytes> HostdAuthority::issue(const x509::CertRequest& req) {
    hostapi::TcgCertRequest r;
    r.kind = req.kind == x509::CertKind::Ek ? 0 : 1;
    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(req.subject_key, &der);
    if (n <= 0) return make_error(rc::kFail, "cannot encode the subject public key");
    r.subject_public_key.assign(der, der + n);
    OPENSSL_free(der);
    r.tpm2 = req.tpm2;
    r.allow_signing = req.allow_signing;
    r.decryption = req.decryption;
    r.subject_cn = req.subject_cn;
    r.tpm_manufacturer = req.tpm.manufacturer;
    r.tpm_model = req.tpm.model;
    r.tpm_version = req.tpm.version;
    r.spec_family = req.spec.family;
    r.spec_level = req.spec.level;
    r.spec_revision = req.spec.revision;
    r.platform_manufacturer = req.platform.manufacturer;
    r.platform_model = req.platform.model;
    r.platform_version = req.platform.version;
    r.days = req.days;
    return client_.issue_tcg_cert(r);
}

std::vector<const X509*> HostdAuthority::chain() const {
    std::vector<const X509*> out;
    for (const auto& c : chain_) out.push_back(c.get());
    return out;
}

}  // namespace vtpm::issuance
