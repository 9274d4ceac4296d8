#include "issuance/quote.hpp"

#include <cstring>

#include "tpm/objects.hpp"
#include "hosttpm/host_keys.hpp"
#include "hosttpm/host_ops.hpp"
#include "issuance/vtpm_identity.hpp"

namespace vtpm::issuance {

Result<attest::Evidence> make_evidence(hosttpm::Esys& vtpm, const QuoteRequest& req) {
    attest::Evidence ev;
    if (req.nonce.empty() || req.nonce.size() > 64)
        return make_error(rc::kBadParameter, "the nonce must be 1 to 64 bytes");
    auto vaik = hosttpm::tr_from_tpm(vtpm, tpm::kVaikHandle);
    if (!vaik)
        return make_error(rc::kFail,
                          "this vTPM has no vAIK at " + hex32(tpm::kVaikHandle) + " (run vtpm-attest issue)");
    TPM2B_PUBLIC* pub_raw = nullptr;
    TSS2_RC prc = Esys_ReadPublic(vtpm.ctx(), vaik->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr,
                                  nullptr);
    hosttpm::EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
    if (prc != TSS2_RC_SUCCESS) return make_error(rc::kFail, hosttpm::tss_error("ReadPublic of the vAIK", prc));
    auto vp = tpm::marshal_public(pub->publicArea);
    if (!vp) return vp.error();
    ev.vaik_public = *vp;
    auto cert = hosttpm::read_nv(vtpm, tpm::kNvVaikCert);
    if (!cert) return make_error(rc::kFail, "no CertvAIK in the vTPM: " + cert.error().message);
    ev.vaik_cert = *cert;
    auto bundle = hosttpm::read_nv(vtpm, tpm::kNvIdentityBundle);
    if (!bundle) return make_error(rc::kFail, "no identity bundle in the vTPM: " + bundle.error().message);
    ev.identity_bundle = *bundle;

    const TPML_PCR_SELECTION sel = tpm::pcr_selection(req.bank, req.pcrs);
    TPM2B_DATA q{};
    q.size = static_cast<UINT16>(req.nonce.size());
    std::memcpy(q.buffer, req.nonce.data(), req.nonce.size());
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    // PCRs may move between the quote and reading them: retry until they agree.
    for (int attempt = 0; attempt < 5; ++attempt) {
        TPM2B_ATTEST* att_raw = nullptr;
        TPMT_SIGNATURE* sig_raw = nullptr;
        const TSS2_RC rc = Esys_Quote(vtpm.ctx(), vaik->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &q,
                                      &scheme, &sel, &att_raw, &sig_raw);
        hosttpm::EsysPtr<TPM2B_ATTEST> att(att_raw);
        hosttpm::EsysPtr<TPMT_SIGNATURE> sig(sig_raw);
        if (rc == TPM2_RC_RETRY) continue;
        if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, hosttpm::tss_error("TPM2_Quote by the vAIK", rc));
        ev.quote_attest.assign(att->attestationData, att->attestationData + att->size);
        auto s = tpm::marshal_signature(*sig);
        if (!s) return s.error();
        ev.quote_signature = *s;
        auto parsed = tpm::parse_attest(ev.quote_attest);
        if (!parsed) return parsed.error();

        auto values = hosttpm::read_pcrs(vtpm, req.bank, req.pcrs);
        if (!values) return make_error(rc::kFail, "reading the vPCRs: " + values.error().message);
        ev.pcrs = std::move(*values);
        Bytes concat;
        for (const auto& v : ev.pcrs) concat.insert(concat.end(), v.digest.begin(), v.digest.end());
        const Bytes digest = sha256_bytes(concat);
        const auto& qd = parsed->attested.quote.pcrDigest;
        if (digest.size() == qd.size && std::memcmp(digest.data(), qd.buffer, qd.size) == 0) {
            ev.event_logs = req.event_logs;
            return ev;
        }
    }
    return make_error(rc::kFail, "the vPCRs kept changing while quoting");
}

}  // namespace vtpm::issuance
