// The default certificate issuer: a two-level CA kept in a directory (root
// and issuing certificate, their keys), created on first use as
// swtpm-localca does. Several vtpm-setup processes may share it: creation
// and signing happen under an exclusive lock on DIR/.lock.
#pragma once

#include <memory>
#include <string>

#include "x509/issuer.hpp"

namespace vtpm::x509 {

/// File names inside the CA directory.
inline constexpr const char* kCaRootCert = "root-cert.pem";
inline constexpr const char* kCaRootKey = "root-key.pem";
inline constexpr const char* kCaIssuerCert = "issuer-cert.pem";
inline constexpr const char* kCaIssuerKey = "issuer-key.pem";

class LocalCa final : public Issuer {
public:
    /// Open the CA in `dir`, creating the directory (0750) and the CA (keys
    /// 0600) if absent. Errors name the file and the reason.
    static Result<std::unique_ptr<LocalCa>> open(const std::string& dir);

    const X509* certificate() const override { return issuer_.get(); }
    std::vector<const X509*> chain() const override { return {issuer_.get(), root_.get()}; }
    Result<void> sign(X509* cert) override;
    std::string describe() const override;

    const std::string& dir() const { return dir_; }

    LocalCa(std::string dir, X509Ptr root, X509Ptr issuer, PkeyPtr key)
        : dir_(std::move(dir)), root_(std::move(root)), issuer_(std::move(issuer)), key_(std::move(key)) {}

private:
    std::string dir_;
    X509Ptr root_, issuer_;
    PkeyPtr key_;
};

/// Read a PEM certificate file.
Result<X509Ptr> read_pem_certificate(const std::string& path);
/// Read every PEM certificate in a file (a bundle).
Result<X509StackPtr> read_pem_certificates(const std::string& path);

}  // namespace vtpm::x509
