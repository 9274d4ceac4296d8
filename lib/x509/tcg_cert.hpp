// Building EK and platform certificates with the fields of the TCG EK
// Credential Profile (TPM manufacturer/model/version in subjectAltName,
// TPMSpecification in subjectDirectoryAttributes, tcg-kp EKU), and reading
// those fields back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "x509/issuer.hpp"
#include "util/ossl.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::x509 {

/// TPMAttributes as libtpms reports them (e.g. "id:00001014", "swtpm", "id:20191023").
struct TpmAttributes {
    std::string manufacturer, model, version;
};

/// TPMSpecification: family "2.0" or "1.2", level, revision.
struct TpmSpecification {
    std::string family;
    uint64_t level = 0, revision = 0;
};

struct PlatformAttributes {
    std::string manufacturer, model, version;
};

enum class CertKind { Ek, Platform };

struct CertRequest {
    CertKind kind = CertKind::Ek;
    /// Public key the certificate is for (the EK's, for both kinds).
    EVP_PKEY* subject_key = nullptr;
    bool tpm2 = true;
    /// Key usage of an EK: decryption (keyEncipherment / keyAgreement) and
    /// or signing (digitalSignature, only for --allow-signing EKs).
    bool allow_signing = false;
    bool decryption = true;
    /// Subject common name; empty leaves the subject empty (TPM 1.2 profile).
    std::string subject_cn;
    TpmAttributes tpm;
    TpmSpecification spec;
    PlatformAttributes platform;
    /// Validity in days from now; negative: no expiry (99991231235959Z).
    int days = -1;
};

/// Build and sign a certificate; DER-encoded result.
Result<Bytes> issue_certificate(const CertRequest& req, Issuer& issuer);

/// Who turns a CertRequest into a certificate for a vTPM being
/// manufactured: an Issuer in this process (the local CA), or the host
/// daemon, which builds and signs it with the hardware TPM's AuthKey.
class CertAuthority {
public:
    virtual ~CertAuthority() = default;
    /// The DER certificate for `req`.
    virtual Result<Bytes> issue(const CertRequest& req) = 0;
    /// The chain certificates are checked against: issuer first, root last.
    virtual std::vector<const X509*> chain() const = 0;
    /// One line naming the authority, for logs.
    virtual std::string describe() const = 0;
};

/// CertAuthority over an in-process Issuer.
class IssuerAuthority final : public CertAuthority {
public:
    explicit IssuerAuthority(Issuer& issuer) : issuer_(issuer) {}
    Result<Bytes> issue(const CertRequest& req) override { return issue_certificate(req, issuer_); }
    std::vector<const X509*> chain() const override { return issuer_.chain(); }
    std::string describe() const override { return issuer_.describe(); }

private:
    Issuer& issuer_;
};

/// The TCG fields found in a certificate (empty strings if absent).
struct TcgFields {
    CertKind kind = CertKind::Ek;
    bool has_tcg_eku = false;
    TpmAttributes tpm;
    PlatformAttributes platform;
    std::optional<TpmSpecification> spec;
};
Result<TcgFields> read_tcg_fields(const X509* cert);

/// Whether `cert` lists `dotted_oid` (e.g. "2.23.133.8.3") in its extended key usage.
bool has_extended_key_usage(const X509* cert, const char* dotted_oid);

/// Parse one DER certificate.
Result<X509Ptr> parse_der_certificate(ByteView der);
/// DER of a certificate.
Result<Bytes> to_der(const X509* cert);
/// PEM text of a certificate.
Result<std::string> to_pem(const X509* cert);

}  // namespace vtpm::x509
