// The host side of the hardware-rooted identity (docs/architecture.md §2.2): a host AK
// (restricted signing key in the endorsement hierarchy) and the AuthKey
// (non-migratable signing key usable only in host states its owner approved,
// host_policy.hpp), both persistent in the hardware TPM.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "hosttpm/esys.hpp"
#include "util/ossl.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// Documented persistent handles (endorsement-range AK, owner-range AuthKey).
inline constexpr uint32_t kHostAkHandle = 0x81010010;
inline constexpr uint32_t kAuthKeyHandle = 0x81000010;

/// The default host PCRs: firmware, boot loader, kernel, initrd and command
/// line (0-9). A host booting unified kernel images selects 0-7 and 11.
inline const std::vector<uint32_t> kDefaultHostPcrs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

struct ProvisionOptions {
    std::vector<uint32_t> pcrs = kDefaultHostPcrs;
    TPMI_ALG_HASH bank = TPM2_ALG_SHA256;
    EVP_PKEY* owner_key = nullptr;  // the owner's policy key (public part suffices)
};

struct HostKeys {
    TPM2B_PUBLIC ak{}, authkey{};
    TPML_PCR_SELECTION pcrs{};
    TPM2B_DIGEST policy{};  // the AuthKey's authPolicy: PolicyAuthorize by the owner key
    bool ak_created = false, authkey_created = false;
    /// The AuthKey's auth value sealed to this TPM (sealed_secret.hpp); set
    /// only when the AuthKey was created now.
    Bytes sealed_auth;
};

/// The PCR selection for `o`; error naming a PCR out of range.
Result<TPML_PCR_SELECTION> pcr_selection(const ProvisionOptions& o);

/// Public area of a persistent object, rc::kRetry if the handle is empty.
Result<TPM2B_PUBLIC> read_persistent(Esys& tpm, uint32_t handle);

/// Create (or adopt, when present and as expected) the host AK and the
/// AuthKey. A new AuthKey gets a fresh random auth value, returned sealed.
/// An AuthKey bound to another owner key (or made by an older libvtpm) is
/// reported, not replaced.
Result<HostKeys> provision(Esys& tpm, const ProvisionOptions& o);

/// Templates (exposed for tests and the verifier's attribute checks).
TPM2B_PUBLIC host_ak_template();
TPM2B_PUBLIC authkey_template(const TPM2B_DIGEST& policy);


}  // namespace vtpm::hosttpm
