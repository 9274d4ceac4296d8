// The host PCR policy through TPM2_PolicyAuthorize (docs/architecture.md
// §2.2). The AuthKey and every secret sealed to the host TPM name the host
// owner's policy key, not PCR values: they are usable while the host PCRs
// hold a state the owner signed an approval for (HOSTDIR/authorization). An
// OS update is then a new approval (`vtpm-host authorize`), not a new AuthKey.
// The TPM checks each approval's signature once (TPM2_VerifySignature) and
// the resulting tickets serve every later policy session.
#pragma once

#include <tss2/tss2_esys.h>

#include <vector>

#include "hoststate/host_files.hpp"
#include "hosttpm/esys.hpp"
#include "util/bytes.hpp"
#include "util/ossl.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// An approval the TPM has checked: tickets for PolicyAuthorize.
struct CheckedApproval {
    hoststate::Approval approval;
    TPMT_TK_VERIFIED authkey_ticket{}, unseal_ticket{};
};

/// What a policy session is for.
enum class PolicyUse { Sign, Certify, Unseal };

class HostPolicy {
public:
    /// The owner key alone: enough to make objects bound to the policy
    /// (seal, create the AuthKey), not to use them.
    static Result<HostPolicy> of_owner(EVP_PKEY* owner_key, const TPML_PCR_SELECTION& pcrs);
    /// The owner key and its approvals as HOSTDIR holds them, each checked
    /// by the TPM. An approval whose signatures do not verify under the
    /// owner key for the policies over `pcrs` refuses the whole list.
    static Result<HostPolicy> check(Esys& tpm, EVP_PKEY* owner_key, const TPML_PCR_SELECTION& pcrs,
                                    const std::vector<hoststate::Approval>& approvals);

    const TPML_PCR_SELECTION& pcrs() const { return pcrs_; }
    const TPMT_PUBLIC& owner() const { return owner_; }
    const Bytes& owner_name() const { return owner_name_; }
    const std::vector<CheckedApproval>& approvals() const { return approvals_; }
    /// The authPolicy of the AuthKey, and of a secret sealed to the host.
    Result<Bytes> authkey_auth_policy() const;
    Result<Bytes> sealed_auth_policy() const;

    /// Satisfy the policy for `use` in the policy session `session`:
    /// PolicyPCR with each approval's digest in turn (the TPM compares it
    /// with the PCRs), the use's own assertions, then PolicyAuthorize with
    /// that approval's ticket. Returns the approval the PCRs matched; when
    /// they match none, an error with their current digest, naming
    /// `vtpm-host authorize`.
    Result<const CheckedApproval*> satisfy(Esys& tpm, ESYS_TR session, PolicyUse use) const;

private:
    TPML_PCR_SELECTION pcrs_{};
    TPMT_PUBLIC owner_{};
    Bytes owner_name_;
    std::vector<CheckedApproval> approvals_;
};

/// The owner's approval of the host state whose `pcrs` digest to
/// `pcr_digest`: signatures by the private `owner_key` over the AuthKey and
/// unseal policies for it. No TPM involved: an operator may approve the
/// values a new OS will measure before booting it.
Result<hoststate::Approval> approve(EVP_PKEY* owner_key, const TPML_PCR_SELECTION& pcrs, ByteView pcr_digest);

}  // namespace vtpm::hosttpm
