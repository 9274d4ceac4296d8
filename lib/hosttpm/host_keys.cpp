#include "hosttpm/host_keys.hpp"

#include <openssl/crypto.h>

#include <cstring>
#include <string>

#include "tpm/objects.hpp"
#include "hosttpm/host_ops.hpp"
#include "hosttpm/host_policy.hpp"
#include "hosttpm/sealed_secret.hpp"

namespace vtpm::hosttpm {

namespace {

TPM2B_PUBLIC ecc_signing_template(TPMA_OBJECT attrs) {
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = attrs;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    return t;
}

constexpr TPMA_OBJECT kNonMigratable =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;

Result<FlushedHandle> create_primary(Esys& tpm, ESYS_TR hierarchy, const TPM2B_PUBLIC& tmpl, const char* what,
                                     ByteView auth = {}) {
    TPM2B_SENSITIVE_CREATE sensitive{};
    if (auth.size() > sizeof sensitive.sensitive.userAuth.buffer) return make_error(rc::kBadParameter, "auth too long");
    sensitive.sensitive.userAuth.size = static_cast<UINT16>(auth.size());
    std::memcpy(sensitive.sensitive.userAuth.buffer, auth.data(), auth.size());
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcr{};
    ESYS_TR handle = ESYS_TR_NONE;
    TSS2_RC rc = Esys_CreatePrimary(tpm.ctx(), hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                    &tmpl, &outside, &creation_pcr, &handle, nullptr, nullptr, nullptr, nullptr);
    OPENSSL_cleanse(&sensitive, sizeof sensitive);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error(std::string("creating the ") + what, rc));
    return FlushedHandle(tpm.ctx(), handle);
}

Result<void> persist(Esys& tpm, FlushedHandle& obj, uint32_t handle, const char* what) {
    ESYS_TR out = ESYS_TR_NONE;
    TSS2_RC rc = Esys_EvictControl(tpm.ctx(), ESYS_TR_RH_OWNER, obj.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                   handle, &out);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error(std::string("persisting the ") + what, rc));
    Esys_TR_Close(tpm.ctx(), &out);
    return {};
}

bool same_public(const TPMT_PUBLIC& a, const TPMT_PUBLIC& b) {
    return a.type == b.type && a.nameAlg == b.nameAlg && a.objectAttributes == b.objectAttributes &&
           a.authPolicy.size == b.authPolicy.size &&
           std::memcmp(a.authPolicy.buffer, b.authPolicy.buffer, a.authPolicy.size) == 0 &&
           a.parameters.eccDetail.curveID == b.parameters.eccDetail.curveID &&
           a.parameters.eccDetail.scheme.scheme == b.parameters.eccDetail.scheme.scheme;
}

}  // namespace

TPM2B_PUBLIC host_ak_template() {
    return ecc_signing_template(kNonMigratable | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
                                TPMA_OBJECT_SIGN_ENCRYPT);
}

TPM2B_PUBLIC authkey_template(const TPM2B_DIGEST& policy) {
    // No userWithAuth: every use must satisfy the PCR policy.
    TPM2B_PUBLIC t = ecc_signing_template(kNonMigratable | TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_SIGN_ENCRYPT);
    t.publicArea.authPolicy = policy;
    return t;
}

Result<TPML_PCR_SELECTION> pcr_selection(const ProvisionOptions& o) {
    if (o.pcrs.empty()) return make_error(rc::kBadParameter, "no host PCRs selected for the AuthKey policy");
    for (uint32_t p : o.pcrs)
        if (p > 23) return make_error(rc::kBadParameter, "host PCR " + std::to_string(p) + " is out of range (0-23)");
    return tpm::pcr_selection(o.bank, std::vector<unsigned>(o.pcrs.begin(), o.pcrs.end()));
}

Result<TPM2B_PUBLIC> read_persistent(Esys& tpm, uint32_t handle) {
    auto obj = tr_from_tpm(tpm, handle);
    if (!obj) return obj.error();
    TPM2B_PUBLIC* raw = nullptr;
    TSS2_RC rc =
        Esys_ReadPublic(tpm.ctx(), obj->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw, nullptr, nullptr);
    EsysPtr<TPM2B_PUBLIC> pub(raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("ReadPublic(" + hex32(handle) + ")", rc));
    return *pub;
}

Result<HostKeys> provision(Esys& tpm, const ProvisionOptions& o) {
    HostKeys k;
    auto sel = pcr_selection(o);
    if (!sel) return sel.error();
    k.pcrs = *sel;
    if (!o.owner_key) return make_error(rc::kBadParameter, "no owner policy key given (--owner-key)");
    auto host_policy = HostPolicy::of_owner(o.owner_key, k.pcrs);
    if (!host_policy) return host_policy.error();
    auto policy = host_policy->authkey_auth_policy();
    if (!policy) return policy.error();
    k.policy.size = static_cast<UINT16>(policy->size());
    std::memcpy(k.policy.buffer, policy->data(), policy->size());

    const TPM2B_PUBLIC ak_tmpl = host_ak_template();
    if (auto existing = read_persistent(tpm, kHostAkHandle)) {
        if (!same_public(existing->publicArea, ak_tmpl.publicArea))
            return make_error(rc::kFail, "the object at " + hex32(kHostAkHandle) +
                                             " is not a host AK (attributes differ); refusing to adopt it");
        k.ak = *existing;
    } else if (existing.code() == rc::kRetry) {
        auto obj = create_primary(tpm, ESYS_TR_RH_ENDORSEMENT, ak_tmpl, "host AK");
        if (!obj) return obj.error();
        if (auto r = persist(tpm, *obj, kHostAkHandle, "host AK"); !r) return r.error();
        auto pub = read_persistent(tpm, kHostAkHandle);
        if (!pub) return pub.error();
        k.ak = *pub;
        k.ak_created = true;
    } else {
        return existing.error();
    }

    const TPM2B_PUBLIC auth_tmpl = authkey_template(k.policy);
    if (auto existing = read_persistent(tpm, kAuthKeyHandle)) {
        const auto& e = existing->publicArea;
        if (e.authPolicy.size != k.policy.size || std::memcmp(e.authPolicy.buffer, k.policy.buffer, k.policy.size) != 0)
            return make_error(rc::kFail, "the AuthKey at " + hex32(kAuthKeyHandle) +
                                             " has another policy: it names another owner key, or an older libvtpm "
                                             "made it (PCR-bound without owner authorization)");
        if (!same_public(e, auth_tmpl.publicArea))
            return make_error(rc::kFail, "the object at " + hex32(kAuthKeyHandle) +
                                             " is not an AuthKey (attributes differ); refusing to adopt it");
        k.authkey = *existing;
    } else if (existing.code() == rc::kRetry) {
        // The auth value leaves this function only sealed to this TPM.
        auto auth = new_auth_value(tpm, kAuthValueName);
        if (!auth) return auth.error();
        auto sealed = seal_secret(tpm, *auth, *host_policy, kAuthValueName);
        if (!sealed) return sealed.error();
        k.sealed_auth = std::move(*sealed);
        auto obj = create_primary(tpm, ESYS_TR_RH_OWNER, auth_tmpl, "AuthKey", *auth);
        if (!obj) return obj.error();
        if (auto r = persist(tpm, *obj, kAuthKeyHandle, "AuthKey"); !r) return r.error();
        auto pub = read_persistent(tpm, kAuthKeyHandle);
        if (!pub) return pub.error();
        k.authkey = *pub;
        k.authkey_created = true;
    } else {
        return existing.error();
    }
    return k;
}

}  // namespace vtpm::hosttpm
