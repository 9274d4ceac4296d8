// Small helpers for building X.509 certificates with OpenSSL: OIDs from
// text, extensions from raw DER or OpenSSL's config syntax, serial numbers
// and validity. Shared by every certificate we issue.
#pragma once

#include <ctime>

#include "util/ossl.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::x509 {

/// An OBJECT IDENTIFIER from dotted text.
Result<Asn1ObjPtr> object(const char* dotted);
/// Add an extension whose value is the DER `value`.
Result<void> add_raw_ext(X509* cert, const char* dotted, ByteView value, bool critical);
/// Add an extension in OpenSSL's config syntax ("critical,CA:FALSE").
Result<void> add_conf_ext(X509* cert, X509* issuer, int nid, const char* value);
/// A random positive 128-bit serial number.
Result<void> set_random_serial(X509* cert);
/// notBefore = now, notAfter = now + days (negative: 99991231235959Z).
Result<void> set_validity(X509* cert, int days);
/// The DER value of extension `dotted` in `cert`, or rc::kRetry if absent.
Result<Bytes> extension_value(const X509* cert, const char* dotted);

}  // namespace vtpm::x509
