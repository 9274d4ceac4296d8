// Where a certificate is checked: chain verification against trusted roots,
// the TCG profile fields, and that a certificate is for a given key.
#pragma once

#include <string>
#include <vector>

#include "util/ossl.hpp"
#include "x509/tcg_cert.hpp"
#include "vtpm/result.hpp"

namespace vtpm::x509 {

/// Verify `leaf` up to one of `trusted` (self-signed roots or trust anchors),
/// using `untrusted` intermediates. On success: the subjects of the chain,
/// leaf first. On failure the message names the certificate and the reason.
Result<std::vector<std::string>> verify_chain(const X509* leaf, const std::vector<const X509*>& untrusted,
                                              const std::vector<const X509*>& trusted);

/// A certificate bundle split into self-signed roots and the rest.
struct TrustBundle {
    std::vector<const X509*> roots, intermediates;
};
TrustBundle split_roots(const std::vector<const X509*>& bundle);

/// Check the EK-certificate profile: TCG EKU of `kind`, TPM manufacturer,
/// model and version present (and TPMSpecification for an EK).
Result<TcgFields> check_tcg_profile(const X509* cert, CertKind kind);

/// The certificate's public key is `key`.
Result<void> check_certifies_key(const X509* cert, EVP_PKEY* key);

/// One-line subject, issuer and validity, for --display and logs.
std::string summarize(const X509* cert);

}  // namespace vtpm::x509
