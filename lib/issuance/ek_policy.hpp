// What vtpm-hostd certifies as a vTPM's EK or platform certificate, and how
// such a certificate is tied to its VM: the UUID its subject names and the
// EK binding of that VM (hoststate/ek_bindings.hpp).
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <string_view>

#include "hostapi/protocol.hpp"
#include "hoststate/ek_bindings.hpp"
#include "util/sha256.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

/// Validity a vTPM certificate may ask for: -1 (no well-defined expiry,
/// vtpm-setup's and swtpm's default) or 1 to 36500 days.
inline constexpr int32_t kMaxCertDays = 36500;

/// The VM a certificate subject names: libvirt's --vmid is "<name>:<uuid>",
/// so the canonical UUID found in `subject`; nullopt when there is none.
/// Refused when it names two different UUIDs (which VM would it be?).
Result<std::optional<std::string>> vm_uuid_in(std::string_view subject);

/// SHA-256 of the key's DER SubjectPublicKeyInfo, as the daemon encodes it.
Result<Digest> spki_digest(EVP_PKEY* key);

/// The family of an EK key the daemon certifies: RSA of 2048 to 8192 bits,
/// or EC on P-256 or P-384 (what vtpm-setup and swtpm_setup make); refused
/// otherwise.
Result<hoststate::EkFamily> ek_key_family(EVP_PKEY* key);

/// An IssueTcgCert request whose fields may go into a certificate: a key
/// ek_key_family accepts, the subject and the fields of its kind non-empty,
/// no field with a NUL or control character or longer than 256 bytes, days
/// -1 or 1 to kMaxCertDays.
Result<void> check_tcg_cert_request(const hostapi::TcgCertRequest& req, EVP_PKEY* key);

/// The subject CN of `cert` (exactly one), UTF-8.
Result<std::string> subject_cn(const X509* cert);

}  // namespace vtpm::issuance
