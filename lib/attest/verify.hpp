// The tenant's check of a VM's evidence (docs/architecture.md §2.2),
// in a fixed order; the first failing step is named and the rest are not
// reached. Pure: certificates and bytes in, a report out.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "attest/evidence.hpp"
#include "hoststate/identity_records.hpp"
#include "tpm/objects.hpp"
#include "util/ossl.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::attest {

/// Expected values: PCRs of the VM ("sha256:9" -> digest) and optionally the
/// host PCR digest the AuthKey policy must have been computed over.
struct Reference {
    std::map<std::pair<uint16_t, unsigned>, Bytes> pcrs;
    std::optional<Bytes> host_pcr_digest;
};

/// Text form: one "BANK:PCR HEX" or "host-pcr-digest HEX" per line, '#' comments.
Result<Reference> parse_reference(std::string_view text);

/// The shortest nonce the verifier accepts.
inline constexpr size_t kMinNonce = 16;

struct VerifyInputs {
    const X509* host_ak_cert = nullptr;
    std::vector<const X509*> ca;  // the verifier's trust: self-signed roots and intermediates
    Bytes user_cert_der;
    Bytes nonce;
    std::optional<std::string> vm_uuid;  // the VM the tenant rents (required: evidence of any VM is refused)
    std::vector<unsigned> required_host_pcrs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const EVP_PKEY* owner_key = nullptr;  // the host owner's policy key the verifier trusts (else NOT VERIFIED)
    std::optional<Reference> reference;
    std::optional<hoststate::IdentityRecord> host_record;                // the host's uniqueness record
};

/// Skip: the step could not run for want of an input (no event log, no
/// reference values, no host record); reported as NOT VERIFIED.
enum class StepStatus { Pass, Fail, Skip, NotReached };

struct StepResult {
    std::string id, title;
    StepStatus status = StepStatus::NotReached;
    std::string detail;
};

struct Report {
    std::vector<StepResult> steps;
    bool ok = false;
    /// The first failing step's id (empty on success).
    std::string failed_step;
    std::string vm_uuid;
    uint64_t generation = 0;
};

/// The AuthKey is non-migratable, a plain signing key, usable only through
/// its policy (fixedTPM, fixedParent, sensitiveDataOrigin, sign,
/// adminWithPolicy; no userWithAuth, no decrypt).
Result<void> check_authkey_attributes(const TPMT_PUBLIC& p);
/// An attestation key (host AK, vAIK): non-migratable restricted signing key.
Result<void> check_attestation_key(const TPMT_PUBLIC& p, const char* what);
/// `attest` is a TPM-generated TPM2_Certify result, signed by `signer`, that
/// certifies the object named `name`; `what` names it in errors. The
/// caller checks the qualifying data (extraData) against its own nonce.
Result<TPMS_ATTEST> check_certify(ByteView attest, ByteView signature, EVP_PKEY* signer, ByteView name,
                                  const std::string& what);

/// Run every check on `evidence` (bytes as read from the file).
Report verify_evidence(const VerifyInputs& in, ByteView evidence);

/// Machine-readable report (one JSON object) and a table for people.
std::string report_json(const Report& r);
std::string report_table(const Report& r);

}  // namespace vtpm::attest
