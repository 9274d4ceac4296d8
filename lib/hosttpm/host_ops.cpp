#include "hosttpm/host_ops.hpp"

#include <openssl/crypto.h>

#include <cstring>
#include <string>

#include "tpm/objects.hpp"
#include "hosttpm/host_keys.hpp"

namespace vtpm::hosttpm {

namespace {

constexpr uint16_t kNvChunk = 512;  // below every TPM's TPM_PT_NV_BUFFER_MAX

TPMT_SYM_DEF aes128cfb() {
    TPMT_SYM_DEF sym{};
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    return sym;
}

Result<FlushedHandle> start_session(Esys& tpm, TPM2_SE type, ESYS_TR salt_key, const char* what) {
    TPMT_SYM_DEF sym = aes128cfb();
    ESYS_TR s = ESYS_TR_NONE;
    TSS2_RC rc = Esys_StartAuthSession(tpm.ctx(), salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       nullptr, type, &sym, TPM2_ALG_SHA256, &s);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error(std::string("starting ") + what, rc));
    return FlushedHandle(tpm.ctx(), s);
}

// A policy session satisfying the AuthKey's policy for `use`
// (HostPolicy::satisfy). PolicyAuthValue in it makes the command's HMAC
// depend on the AuthKey's auth value, which `authkey` is given here.
Result<FlushedHandle> authkey_session(Esys& tpm, ESYS_TR authkey, ByteView auth, const HostPolicy& policy,
                                      PolicyUse use) {
    TPM2B_AUTH value{};
    if (auth.size() > sizeof value.buffer) return make_error(rc::kBadParameter, "the AuthKey auth value is too long");
    value.size = static_cast<UINT16>(auth.size());
    std::memcpy(value.buffer, auth.data(), auth.size());
    TSS2_RC set = Esys_TR_SetAuth(tpm.ctx(), authkey, &value);
    OPENSSL_cleanse(&value, sizeof value);
    if (set != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("setting the AuthKey auth value", set));
    auto s = start_session(tpm, TPM2_SE_POLICY, ESYS_TR_NONE, "the AuthKey policy session");
    if (!s) return s.error();
    if (auto r = policy.satisfy(tpm, s->get(), use); !r) return r.error();
    return s;
}

// Policy failures mean the host's measured state is not the provisioned one.
Error authkey_error(const char* what, TSS2_RC rc) {
    const TSS2_RC base = rc & ~(TPM2_RC_N_MASK | TPM2_RC_H | TPM2_RC_P | TPM2_RC_S);
    if ((rc & TPM2_RC_FMT1) && (base & 0xbf) == TPM2_RC_POLICY_FAIL)
        return make_error(rc::kFail, std::string(what) +
                                         ": the AuthKey's policy is not satisfied: the host is not in a state the "
                                         "owner approved, so it may not vouch for VMs");
    if ((rc & TPM2_RC_FMT1) && ((base & 0xbf) == TPM2_RC_AUTH_FAIL || (base & 0xbf) == TPM2_RC_BAD_AUTH))
        return make_error(rc::kFail, std::string(what) + ": the AuthKey's auth value is wrong");
    return make_error(rc::kFail, tss_error(what, rc));
}

TPM2B_PUBLIC ek_template_rsa2048() {
    // TCG EK Credential Profile, template L-1.
    static const uint8_t kPolicy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                        0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                        0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_RSA;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p.authPolicy.size = 32;
    std::memcpy(p.authPolicy.buffer, kPolicy, 32);
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.unique.rsa.size = 256;
    return t;
}

}  // namespace

Result<std::vector<tpm::PcrValue>> read_pcrs(Esys& tpm, TPMI_ALG_HASH bank, const std::vector<unsigned>& pcrs) {
    std::vector<tpm::PcrValue> out;
    TPML_PCR_SELECTION want = tpm::pcr_selection(bank, pcrs);
    // A TPM returns at most 8 digests per PCR_Read: ask again for the rest.
    for (int round = 0; round < 8 && !tpm::selected_pcrs(want, bank).empty(); ++round) {
        TPML_PCR_SELECTION* got_raw = nullptr;
        TPML_DIGEST* values_raw = nullptr;
        UINT32 counter = 0;
        TSS2_RC rc = Esys_PCR_Read(tpm.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &want, &counter, &got_raw,
                                   &values_raw);
        EsysPtr<TPML_PCR_SELECTION> got(got_raw);
        EsysPtr<TPML_DIGEST> values(values_raw);
        if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("reading PCRs", rc));
        const auto idx = tpm::selected_pcrs(*got, bank);
        if (idx.empty() || idx.size() != values->count)
            return make_error(rc::kFail, "the TPM returned no PCR values (bank not allocated?)");
        for (size_t i = 0; i < idx.size(); ++i) {
            const auto& d = values->digests[i];
            out.push_back({bank, static_cast<uint8_t>(idx[i]), Bytes(d.buffer, d.buffer + d.size)});
            want.pcrSelections[0].pcrSelect[idx[i] / 8] &= static_cast<uint8_t>(~(1u << (idx[i] % 8)));
        }
    }
    if (!tpm::selected_pcrs(want, bank).empty())
        return make_error(rc::kFail, "the TPM did not return every PCR asked for");
    return out;
}

Result<Bytes> pcr_digest(Esys& tpm, const TPML_PCR_SELECTION& sel) {
    Bytes concat;
    for (uint32_t i = 0; i < sel.count && i < TPM2_NUM_PCR_BANKS; ++i) {
        const TPMI_ALG_HASH bank = sel.pcrSelections[i].hash;
        auto values = read_pcrs(tpm, bank, tpm::selected_pcrs(sel, bank));
        if (!values) return values.error();
        for (const auto& v : *values) concat.insert(concat.end(), v.digest.begin(), v.digest.end());
    }
    return sha256_bytes(concat);
}

Result<Bytes> read_nv(Esys& tpm, uint32_t index) {
    auto h = tr_from_tpm(tpm, index);
    if (!h) return make_error(rc::kRetry, "NV index " + hex32(index) + " is not defined");
    TPM2B_NV_PUBLIC* pub_raw = nullptr;
    TSS2_RC rc = Esys_NV_ReadPublic(tpm.ctx(), h->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr);
    EsysPtr<TPM2B_NV_PUBLIC> pub(pub_raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("NV_ReadPublic(" + hex32(index) + ")", rc));
    Bytes out;
    const uint16_t size = pub->nvPublic.dataSize;
    while (out.size() < size) {
        const auto n = static_cast<uint16_t>(std::min<size_t>(kNvChunk, size - out.size()));
        TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
        rc = Esys_NV_Read(tpm.ctx(), h->get(), h->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                          static_cast<uint16_t>(out.size()), &data_raw);
        EsysPtr<TPM2B_MAX_NV_BUFFER> data(data_raw);
        if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("NV_Read(" + hex32(index) + ")", rc));
        out.insert(out.end(), data->buffer, data->buffer + data->size);
    }
    return out;
}

Result<EkObject> load_ek(Esys& tpm) {
    EkObject ek;
    if (auto p = read_persistent(tpm, kEkHandleRsa)) {
        auto h = tr_from_tpm(tpm, kEkHandleRsa);
        if (!h) return h.error();
        ek.pub = *p;
        ek.persistent = std::move(*h);
        ek.handle = ek.persistent.get();
        return ek;
    }
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation{};
    TPM2B_PUBLIC tmpl = ek_template_rsa2048();
    ESYS_TR h = ESYS_TR_NONE;
    TPM2B_PUBLIC* out_raw = nullptr;
    TSS2_RC rc = Esys_CreatePrimary(tpm.ctx(), ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                    &sensitive, &tmpl, &outside, &creation, &h, &out_raw, nullptr, nullptr, nullptr);
    EsysPtr<TPM2B_PUBLIC> out(out_raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("creating the EK from the default template", rc));
    ek.transient = FlushedHandle(tpm.ctx(), h);
    ek.handle = h;
    ek.pub = *out;
    return ek;
}

Result<Bytes> activate_credential(Esys& tpm, uint32_t key_handle, const EkObject& ek, const TPM2B_ID_OBJECT& blob,
                                  const TPM2B_ENCRYPTED_SECRET& secret) {
    auto key = tr_from_tpm(tpm, key_handle);
    if (!key) return key.error();
    auto policy = start_session(tpm, TPM2_SE_POLICY, ESYS_TR_NONE, "the EK policy session");
    if (!policy) return policy.error();
    TPM2B_TIMEOUT* timeout = nullptr;
    TPMT_TK_AUTH* ticket = nullptr;
    TSS2_RC rc = Esys_PolicySecret(tpm.ctx(), ESYS_TR_RH_ENDORSEMENT, policy->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, &timeout, &ticket);
    EsysPtr<TPM2B_TIMEOUT> t1(timeout);
    EsysPtr<TPMT_TK_AUTH> t2(ticket);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("PolicySecret(endorsement) for the EK", rc));
    // The recovered secret leaves the TPM encrypted (session salted to the EK).
    auto enc = start_session(tpm, TPM2_SE_HMAC, ek.handle, "the EK-salted session");
    if (!enc) return enc.error();
    rc = Esys_TRSess_SetAttributes(tpm.ctx(), enc->get(), TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("session attributes", rc));
    TPM2B_DIGEST* info_raw = nullptr;
    rc = Esys_ActivateCredential(tpm.ctx(), key->get(), ek.handle, ESYS_TR_PASSWORD, policy->get(), enc->get(), &blob,
                                 &secret, &info_raw);
    EsysPtr<TPM2B_DIGEST> info(info_raw);
    if (rc != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, tss_error("ActivateCredential (the AK is not in the TPM of this EK?)", rc));
    Bytes out(info->buffer, info->buffer + info->size);
    OPENSSL_cleanse(info->buffer, info->size);
    return out;
}

namespace {

Result<TrHandle> host_ak(Esys& tpm) {
    auto ak = tr_from_tpm(tpm, kHostAkHandle);
    if (!ak) return make_error(rc::kFail, "no host AK at " + hex32(kHostAkHandle) + ": run vtpm-host provision");
    return ak;
}

Result<TPM2B_DATA> qualifying_data(ByteView qualifying) {
    TPM2B_DATA q{};
    if (qualifying.size() > sizeof q.buffer) return make_error(rc::kBadParameter, "qualifying data too long");
    q.size = static_cast<UINT16>(qualifying.size());
    std::memcpy(q.buffer, qualifying.data(), qualifying.size());
    return q;
}

// What a TPM2_Certify or TPM2_Quote returned, as the attest bytes and the
// marshalled signature.
Result<SignedAttest> signed_attest(EsysPtr<TPM2B_ATTEST> att, EsysPtr<TPMT_SIGNATURE> sig) {
    auto s = tpm::marshal_signature(*sig);
    if (!s) return s.error();
    return SignedAttest{Bytes(att->attestationData, att->attestationData + att->size), std::move(*s)};
}

}  // namespace

Result<SignedAttest> certify_authkey(Esys& tpm, ByteView auth, ByteView qualifying, const HostPolicy& policy) {
    auto ak = host_ak(tpm);
    if (!ak) return ak.error();
    auto authkey = tr_from_tpm(tpm, kAuthKeyHandle);
    if (!authkey) return make_error(rc::kFail, "no AuthKey at " + hex32(kAuthKeyHandle) + ": run vtpm-host provision");
    auto session = authkey_session(tpm, authkey->get(), auth, policy, PolicyUse::Certify);
    if (!session) return session.error();
    auto q = qualifying_data(qualifying);
    if (!q) return q.error();
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_ATTEST* att_raw = nullptr;
    TPMT_SIGNATURE* sig_raw = nullptr;
    TSS2_RC rc = Esys_Certify(tpm.ctx(), authkey->get(), ak->get(), session->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                              &*q, &scheme, &att_raw, &sig_raw);
    EsysPtr<TPM2B_ATTEST> att(att_raw);
    EsysPtr<TPMT_SIGNATURE> sig(sig_raw);
    if (rc != TSS2_RC_SUCCESS) return authkey_error("TPM2_Certify of the AuthKey by the host AK", rc);
    return signed_attest(std::move(att), std::move(sig));
}

Result<TPMT_SIGNATURE> authkey_sign(Esys& tpm, ByteView auth, ByteView digest, const HostPolicy& policy) {
    auto authkey = tr_from_tpm(tpm, kAuthKeyHandle);
    if (!authkey) return make_error(rc::kFail, "no AuthKey at " + hex32(kAuthKeyHandle) + ": run vtpm-host provision");
    auto session = authkey_session(tpm, authkey->get(), auth, policy, PolicyUse::Sign);
    if (!session) return session.error();
    TPM2B_DIGEST d{};
    if (digest.size() != 32) return make_error(rc::kBadParameter, "the AuthKey signs SHA-256 digests");
    d.size = 32;
    std::memcpy(d.buffer, digest.data(), 32);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPMT_TK_HASHCHECK check{};
    check.tag = TPM2_ST_HASHCHECK;
    check.hierarchy = TPM2_RH_NULL;
    TPMT_SIGNATURE* sig_raw = nullptr;
    TSS2_RC rc = Esys_Sign(tpm.ctx(), authkey->get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme, &check,
                           &sig_raw);
    EsysPtr<TPMT_SIGNATURE> sig(sig_raw);
    if (rc != TSS2_RC_SUCCESS) return authkey_error("TPM2_Sign with the AuthKey", rc);
    return *sig;
}

Result<SignedAttest> quote_host_pcrs(Esys& tpm, const TPML_PCR_SELECTION& pcrs, ByteView qualifying) {
    auto ak = host_ak(tpm);
    if (!ak) return ak.error();
    auto q = qualifying_data(qualifying);
    if (!q) return q.error();
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_ATTEST* att_raw = nullptr;
    TPMT_SIGNATURE* sig_raw = nullptr;
    TSS2_RC rc = Esys_Quote(tpm.ctx(), ak->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &*q, &scheme, &pcrs,
                            &att_raw, &sig_raw);
    EsysPtr<TPM2B_ATTEST> att(att_raw);
    EsysPtr<TPMT_SIGNATURE> sig(sig_raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("TPM2_Quote of the host PCRs by the host AK", rc));
    return signed_attest(std::move(att), std::move(sig));
}

}  // namespace vtpm::hosttpm
