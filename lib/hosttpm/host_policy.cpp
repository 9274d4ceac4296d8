#include "hosttpm/host_policy.hpp"

#include <cstring>
#include <ctime>
#include <string>

#include "hosttpm/host_ops.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"

namespace vtpm::hosttpm {

namespace {

// The approved policy and its policyRef for a use, over one PCR digest.
struct Approved {
    Bytes policy;
    std::string_view ref;
};

Result<Approved> approved_policy(const TPML_PCR_SELECTION& pcrs, ByteView pcr_digest, PolicyUse use) {
    if (use == PolicyUse::Unseal) {
        auto p = tpm::unseal_policy(pcrs, pcr_digest);
        if (!p) return p.error();
        return Approved{std::move(*p), tpm::kUnsealPolicyRef};
    }
    auto p = tpm::authkey_policy(pcrs, pcr_digest);
    if (!p) return p.error();
    return Approved{std::move(p->digest), tpm::kAuthKeyPolicyRef};
}

template <typename T2B>
Result<T2B> sized(ByteView v, const char* what) {
    T2B out{};
    if (v.size() > sizeof out.buffer) return make_error(rc::kBadParameter, std::string(what) + " is too long");
    out.size = static_cast<UINT16>(v.size());
    std::memcpy(out.buffer, v.data(), v.size());
    return out;
}

bool is_value_error(TSS2_RC rc) {
    const TSS2_RC base = rc & ~(TPM2_RC_N_MASK | TPM2_RC_H | TPM2_RC_P | TPM2_RC_S);
    return (rc & TPM2_RC_FMT1) && (base & 0xbf) == TPM2_RC_VALUE;
}

// TPM2_VerifySignature of the owner's signature over `a` for `use`.
Result<TPMT_TK_VERIFIED> verify(Esys& tpm, ESYS_TR owner, const TPML_PCR_SELECTION& pcrs, ByteView pcr_digest,
                                ByteView signature, PolicyUse use) {
    auto a = approved_policy(pcrs, pcr_digest, use);
    if (!a) return a.error();
    auto sig = tpm::unmarshal_signature(signature);
    if (!sig) return sig.error();
    auto digest = sized<TPM2B_DIGEST>(sha256_bytes(tpm::approval_message(a->policy, a->ref)), "aHash");
    if (!digest) return digest.error();
    TPMT_TK_VERIFIED* raw = nullptr;
    TSS2_RC rc =
        Esys_VerifySignature(tpm.ctx(), owner, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &*digest, &*sig, &raw);
    EsysPtr<TPMT_TK_VERIFIED> ticket(raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("the owner's signature", rc));
    return *ticket;
}

}  // namespace

Result<HostPolicy> HostPolicy::of_owner(EVP_PKEY* owner_key, const TPML_PCR_SELECTION& pcrs) {
    HostPolicy p;
    auto owner = tpm::owner_public(owner_key);
    if (!owner) return owner.error();
    auto name = tpm::object_name(*owner);
    if (!name) return name.error();
    p.pcrs_ = pcrs;
    p.owner_ = *owner;
    p.owner_name_ = std::move(*name);
    return p;
}

Result<HostPolicy> HostPolicy::check(Esys& tpm, EVP_PKEY* owner_key, const TPML_PCR_SELECTION& pcrs,
                                     const std::vector<hoststate::Approval>& approvals) {
    auto p = of_owner(owner_key, pcrs);
    if (!p) return p.error();
    TPM2B_PUBLIC pub{};
    pub.publicArea = p->owner_;
    ESYS_TR h = ESYS_TR_NONE;
    // In the owner hierarchy, not the null one: PolicyAuthorize refuses
    // tickets made under the null hierarchy.
    TSS2_RC rc = Esys_LoadExternal(tpm.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr, &pub,
                                   ESYS_TR_RH_OWNER, &h);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("loading the owner's policy key", rc));
    FlushedHandle owner(tpm.ctx(), h);
    for (size_t i = 0; i < approvals.size(); ++i) {
        const auto& a = approvals[i];
        const std::string which = "approval " + std::to_string(i + 1) + " (PCR digest " +
                                  to_hex(a.pcr_digest).substr(0, 16) + "...)";
        CheckedApproval c{a, {}, {}};
        auto k = verify(tpm, owner.get(), pcrs, a.pcr_digest, a.authkey_signature, PolicyUse::Sign);
        if (!k) return make_error(rc::kFail, which + ": the AuthKey policy is not signed by the owner key: " +
                                                 k.error().message);
        auto u = verify(tpm, owner.get(), pcrs, a.pcr_digest, a.unseal_signature, PolicyUse::Unseal);
        if (!u) return make_error(rc::kFail, which + ": the unseal policy is not signed by the owner key: " +
                                                 u.error().message);
        c.authkey_ticket = *k;
        c.unseal_ticket = *u;
        p->approvals_.push_back(std::move(c));
    }
    return p;
}

Result<Bytes> HostPolicy::authkey_auth_policy() const {
    return tpm::policy_authorize_digest(owner_name_, tpm::kAuthKeyPolicyRef);
}

Result<Bytes> HostPolicy::sealed_auth_policy() const {
    return tpm::policy_authorize_digest(owner_name_, tpm::kUnsealPolicyRef);
}

Result<const CheckedApproval*> HostPolicy::satisfy(Esys& tpm, ESYS_TR session, PolicyUse use) const {
    const CheckedApproval* chosen = nullptr;
    for (const auto& c : approvals_) {
        auto d = sized<TPM2B_DIGEST>(c.approval.pcr_digest, "PCR digest");
        if (!d) return d.error();
        // With a digest given, the TPM compares it with the PCRs now and
        // leaves the session as it was when they differ.
        TSS2_RC rc = Esys_PolicyPCR(tpm.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &*d, &pcrs_);
        if (rc == TSS2_RC_SUCCESS) {
            chosen = &c;
            break;
        }
        if (!is_value_error(rc)) return make_error(rc::kFail, tss_error("PolicyPCR", rc));
    }
    if (!chosen) {
        auto now = pcr_digest(tpm, pcrs_);
        const std::string pcr_text = tpm::pcr_list_text(tpm::selected_pcrs(pcrs_, TPM2_ALG_SHA256));
        return make_error(rc::kFail, "the host PCRs (sha256 " + pcr_text + ", digest " +
                                         (now ? to_hex(*now) : "unreadable") +
                                         ") are in a state the owner has not approved (" +
                                         std::to_string(approvals_.size()) +
                                         " approved): run vtpm-host authorize for this OS");
    }
    auto approved = approved_policy(pcrs_, chosen->approval.pcr_digest, use);
    if (!approved) return approved.error();
    TSS2_RC rc = TSS2_RC_SUCCESS;
    const auto step = [&](const char* what) -> Result<void> {
        if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error(what, rc));
        return {};
    };
    if (use == PolicyUse::Unseal) {
        rc = Esys_PolicyCommandCode(tpm.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CC_Unseal);
        if (auto r = step("PolicyCommandCode(Unseal)"); !r) return r.error();
    } else {
        auto branches = tpm::authkey_policy(pcrs_, chosen->approval.pcr_digest);
        if (!branches) return branches.error();
        rc = Esys_PolicyCommandCode(tpm.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    use == PolicyUse::Sign ? TPM2_CC_Sign : TPM2_CC_Certify);
        if (auto r = step("PolicyCommandCode for the AuthKey"); !r) return r.error();
        rc = Esys_PolicyAuthValue(tpm.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
        if (auto r = step("PolicyAuthValue for the AuthKey"); !r) return r.error();
        TPML_DIGEST list{};
        list.count = 2;
        for (auto [i, d] : {std::pair{0, &branches->branch_sign}, {1, &branches->branch_certify}}) {
            list.digests[i].size = static_cast<UINT16>(d->size());
            std::memcpy(list.digests[i].buffer, d->data(), d->size());
        }
        rc = Esys_PolicyOR(tpm.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &list);
        if (auto r = step("PolicyOR for the AuthKey"); !r) return r.error();
    }
    auto policy = sized<TPM2B_DIGEST>(approved->policy, "approved policy");
    auto ref = sized<TPM2B_NONCE>(as_bytes(approved->ref), "policy reference");
    TPM2B_NAME name{};
    if (owner_name_.size() > sizeof name.name) return make_error(rc::kFail, "owner key name too long");
    name.size = static_cast<UINT16>(owner_name_.size());
    std::memcpy(name.name, owner_name_.data(), owner_name_.size());
    if (!policy || !ref) return make_error(rc::kFail, "approved policy or reference too long");
    const TPMT_TK_VERIFIED& ticket = use == PolicyUse::Unseal ? chosen->unseal_ticket : chosen->authkey_ticket;
    rc = Esys_PolicyAuthorize(tpm.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &*policy, &*ref, &name,
                              &ticket);
    if (auto r = step("PolicyAuthorize with the owner's approval"); !r) return r.error();
    return chosen;
}

Result<hoststate::Approval> approve(EVP_PKEY* owner_key, const TPML_PCR_SELECTION& pcrs, ByteView pcr_digest) {
    if (pcr_digest.size() != 32) return make_error(rc::kBadParameter, "a host PCR digest is 32 bytes (SHA-256)");
    hoststate::Approval out;
    out.pcr_digest.assign(pcr_digest.begin(), pcr_digest.end());
    out.time = static_cast<uint64_t>(std::time(nullptr));
    for (auto [use, field] : {std::pair{PolicyUse::Sign, &out.authkey_signature},
                              std::pair{PolicyUse::Unseal, &out.unseal_signature}}) {
        auto a = approved_policy(pcrs, pcr_digest, use);
        if (!a) return a.error();
        auto sig = tpm::sign_ecdsa_sha256(owner_key, tpm::approval_message(a->policy, a->ref));
        if (!sig) return sig.error();
        auto bytes = tpm::marshal_signature(*sig);
        if (!bytes) return bytes.error();
        *field = std::move(*bytes);
    }
    return out;
}

}  // namespace vtpm::hosttpm
