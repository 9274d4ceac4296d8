#include "hosttpm/sealed_secret.hpp"

#include <openssl/crypto.h>
#include <tss2/tss2_mu.h>

#include <cstring>
#include <string>

#include "hosttpm/host_ops.hpp"
#include "tpm/objects.hpp"
#include "util/sha256.hpp"

namespace vtpm::hosttpm {

namespace {

// The owner hierarchy's ECC P-256 storage primary (the TCG "SRK" template):
// derived from the owner seed each time, so nothing of it is kept on disk.
Result<FlushedHandle> storage_primary(Esys& tpm) {
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.eccDetail.symmetric.keyBits.aes = 128;
    p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation{};
    ESYS_TR h = ESYS_TR_NONE;
    TSS2_RC rc = Esys_CreatePrimary(tpm.ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                    &sensitive, &t, &outside, &creation, &h, nullptr, nullptr, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("creating the storage primary", rc));
    return FlushedHandle(tpm.ctx(), h);
}

}  // namespace

Result<ProtectedBytes> new_auth_value(Esys& tpm, std::string_view what) {
    TPM2B_DIGEST* raw = nullptr;
    TSS2_RC rc = Esys_GetRandom(tpm.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, kAuthValueSize, &raw);
    EsysPtr<TPM2B_DIGEST> r(raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("GetRandom for " + std::string(what), rc));
    if (r->size != kAuthValueSize) return make_error(rc::kFail, "the TPM returned too few random bytes");
    ProtectedBytes out(ByteView(r->buffer, r->size));
    OPENSSL_cleanse(r->buffer, r->size);
    return out;
}

Result<Bytes> seal_secret(Esys& tpm, ByteView secret, const HostPolicy& host_policy, std::string_view what) {
    auto policy = host_policy.sealed_auth_policy();
    if (!policy) return policy.error();
    auto srk = storage_primary(tpm);
    if (!srk) return srk.error();

    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_KEYEDHASH;
    p.nameAlg = TPM2_ALG_SHA256;
    // No userWithAuth: Unseal needs the policy; no sensitiveDataOrigin: we give the data.
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
    p.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    p.authPolicy.size = static_cast<UINT16>(policy->size());
    std::memcpy(p.authPolicy.buffer, policy->data(), policy->size());
    TPM2B_SENSITIVE_CREATE sensitive{};
    if (secret.size() > sizeof sensitive.sensitive.data.buffer) return make_error(rc::kBadParameter, "secret too long");
    sensitive.sensitive.data.size = static_cast<UINT16>(secret.size());
    std::memcpy(sensitive.sensitive.data.buffer, secret.data(), secret.size());
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation{};
    TPM2B_PRIVATE* priv_raw = nullptr;
    TPM2B_PUBLIC* pub_raw = nullptr;
    TSS2_RC rc = Esys_Create(tpm.ctx(), srk->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &t,
                             &outside, &creation, &priv_raw, &pub_raw, nullptr, nullptr, nullptr);
    OPENSSL_cleanse(&sensitive, sizeof sensitive);
    EsysPtr<TPM2B_PRIVATE> priv(priv_raw);
    EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("sealing " + std::string(what), rc));
    Bytes out(sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE));
    size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub.get(), out.data(), out.size(), &off) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Marshal(priv.get(), out.data(), out.size(), &off) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "cannot marshal the sealed " + std::string(what));
    out.resize(off);
    return out;
}

Result<ProtectedBytes> unseal_secret(Esys& tpm, ByteView sealed, const HostPolicy& host_policy,
                                     std::string_view what) {
    TPM2B_PUBLIC pub{};
    TPM2B_PRIVATE priv{};
    size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(sealed.data(), sealed.size(), &off, &pub) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(sealed.data(), sealed.size(), &off, &priv) != TSS2_RC_SUCCESS ||
        off != sealed.size())
        return make_error(rc::kFail, "the sealed " + std::string(what) + " is malformed");
    auto srk = storage_primary(tpm);
    if (!srk) return srk.error();
    ESYS_TR obj = ESYS_TR_NONE;
    TSS2_RC rc = Esys_Load(tpm.ctx(), srk->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj);
    if (rc != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, tss_error("loading the sealed " + std::string(what) + " (sealed by another TPM, or "
                                               "the owner hierarchy was cleared?)",
                                               rc));
    FlushedHandle loaded(tpm.ctx(), obj);
    TPMT_SYM_DEF sym{};
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    ESYS_TR s = ESYS_TR_NONE;
    // Salted to the storage primary: the unsealed bytes travel encrypted.
    rc = Esys_StartAuthSession(tpm.ctx(), srk->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr,
                               TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &s);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("starting the unseal policy session", rc));
    FlushedHandle session(tpm.ctx(), s);
    if (auto r = host_policy.satisfy(tpm, s, PolicyUse::Unseal); !r)
        return make_error(rc::kFail, std::string(what) + " cannot be unsealed: " + r.error().message);
    rc = Esys_TRSess_SetAttributes(tpm.ctx(), s, TPMA_SESSION_ENCRYPT, TPMA_SESSION_ENCRYPT);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("session attributes", rc));
    TPM2B_SENSITIVE_DATA* data_raw = nullptr;
    rc = Esys_Unseal(tpm.ctx(), obj, s, ESYS_TR_NONE, ESYS_TR_NONE, &data_raw);
    EsysPtr<TPM2B_SENSITIVE_DATA> data(data_raw);
    if (rc != TSS2_RC_SUCCESS) {
        const TSS2_RC base = rc & ~(TPM2_RC_N_MASK | TPM2_RC_H | TPM2_RC_P | TPM2_RC_S);
        if ((rc & TPM2_RC_FMT1) && (base & 0xbf) == TPM2_RC_POLICY_FAIL)
            return make_error(rc::kFail, std::string(what) + " cannot be unsealed: it is bound to another owner key "
                                                             "than HOSTDIR/owner.pem names");
        return make_error(rc::kFail, tss_error("unsealing " + std::string(what), rc));
    }
    ProtectedBytes out(ByteView(data->buffer, data->size));
    OPENSSL_cleanse(data->buffer, data->size);
    return out;
}

}  // namespace vtpm::hosttpm
