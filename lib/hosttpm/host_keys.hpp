// The host side of the hardware-rooted identity (docs/architecture.md §2.2): a host AK
// (restricted signing key in the endorsement hierarchy) and the AuthKey
// (non-migratable signing key whose use is bound by PolicyPCR to the host's
// measured state), both persistent in the hardware TPM.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "hosttpm/esys.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// Documented persistent handles (endorsement-range AK, owner-range AuthKey).
inline constexpr uint32_t kHostAkHandle = 0x81010010;
inline constexpr uint32_t kAuthKeyHandle = 0x81000010;

struct ProvisionOptions {
    std::vector<uint32_t> pcrs{0, 1, 2, 3, 4, 5, 6, 7};
    TPMI_ALG_HASH bank = TPM2_ALG_SHA256;
};

struct HostKeys {
    TPM2B_PUBLIC ak{}, authkey{};
    TPML_PCR_SELECTION pcrs{};
    TPM2B_DIGEST policy{};  // PolicyPCR digest the AuthKey is bound to
    bool ak_created = false, authkey_created = false;
    /// The AuthKey's auth value sealed to this TPM (sealed_secret.hpp); set
    /// only when the AuthKey was created now.
    Bytes sealed_auth;
};

/// The PCR selection for `o`; error naming a PCR out of range.
Result<TPML_PCR_SELECTION> pcr_selection(const ProvisionOptions& o);

/// The AuthKey policy (tpm::authkey_policy) over the PCRs' current values.
Result<TPM2B_DIGEST> current_pcr_policy(Esys& tpm, const TPML_PCR_SELECTION& sel);

/// Public area of a persistent object, rc::kRetry if the handle is empty.
Result<TPM2B_PUBLIC> read_persistent(Esys& tpm, uint32_t handle);

/// Create (or adopt, when present and as expected) the host AK and the
/// AuthKey. A new AuthKey gets a fresh random auth value, returned sealed.
/// An AuthKey whose policy no longer matches the PCRs' values is reported,
/// not replaced.
Result<HostKeys> provision(Esys& tpm, const ProvisionOptions& o);

/// Templates (exposed for tests and the verifier's attribute checks).
TPM2B_PUBLIC host_ak_template();
TPM2B_PUBLIC authkey_template(const TPM2B_DIGEST& policy);


}  // namespace vtpm::hosttpm
