#include "tpm/objects.hpp"

#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include "tpm/mu.hpp"

#include <cstring>

namespace vtpm::tpm {

namespace {

template <typename T, typename F>
Result<Bytes> marshal(const T& v, F fn, const char* what) {
    Bytes out(sizeof(T) + 16);
    size_t off = 0;
    if (fn(&v, out.data(), out.size(), &off) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, std::string("cannot marshal ") + what);
    out.resize(off);
    return out;
}

template <typename T, typename F>
Result<T> unmarshal_all(ByteView data, F fn, const char* what) {
    T v{};
    size_t off = 0;
    if (fn(data.data(), data.size(), &off, &v) != TSS2_RC_SUCCESS)
        return make_error(rc::kBadParameter, std::string("malformed ") + what);
    if (off != data.size())
        return make_error(rc::kBadParameter, std::string("malformed ") + what + ": " +
                                                 std::to_string(data.size() - off) + " trailing bytes");
    return v;
}

Result<Bytes> digest(const EVP_MD* md, std::initializer_list<ByteView> parts) {
    vtpm::MdCtxPtr ctx(EVP_MD_CTX_new());
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) return make_error(rc::kFail, "digest init failed");
    for (ByteView p : parts)
        if (EVP_DigestUpdate(ctx.get(), p.data(), p.size()) != 1) return make_error(rc::kFail, "digest failed");
    if (EVP_DigestFinal_ex(ctx.get(), out, &n) != 1) return make_error(rc::kFail, "digest failed");
    return Bytes(out, out + n);
}

}  // namespace

size_t hash_size(TPMI_ALG_HASH alg) {
    switch (alg) {
        case TPM2_ALG_SHA1: return 20;
        case TPM2_ALG_SHA256: return 32;
        case TPM2_ALG_SHA384: return 48;
        case TPM2_ALG_SHA512: return 64;
        default: return 0;
    }
}

const EVP_MD* hash_md(TPMI_ALG_HASH alg) {
    switch (alg) {
        case TPM2_ALG_SHA1: return EVP_sha1();
        case TPM2_ALG_SHA256: return EVP_sha256();
        case TPM2_ALG_SHA384: return EVP_sha384();
        case TPM2_ALG_SHA512: return EVP_sha512();
        default: return nullptr;
    }
}

Result<Bytes> marshal_public(const TPMT_PUBLIC& pub) {
    TPM2B_PUBLIC b{};
    b.publicArea = pub;
    return marshal(b, mu::TPM2B_PUBLIC_Marshal, "a public area");
}

Result<TPMT_PUBLIC> unmarshal_public(ByteView data, size_t* consumed) {
    if (!consumed) {
        auto b = unmarshal_all<TPM2B_PUBLIC>(data, mu::TPM2B_PUBLIC_Unmarshal, "TPM2B_PUBLIC");
        if (!b) return b.error();
        return b->publicArea;
    }
    TPM2B_PUBLIC pub{};
    size_t off = 0;
    if (mu::TPM2B_PUBLIC_Unmarshal(data.data(), data.size(), &off, &pub) != TSS2_RC_SUCCESS)
        return make_error(rc::kBadParameter, "malformed TPM2B_PUBLIC");
    *consumed = off;
    return pub.publicArea;
}

Result<Bytes> object_name(const TPMT_PUBLIC& pub) {
    const EVP_MD* md = hash_md(pub.nameAlg);
    if (!md) return make_error(rc::kBadParameter, "public area with an unsupported nameAlg " + hex32(pub.nameAlg));
    auto area = marshal(pub, mu::TPMT_PUBLIC_Marshal, "a public area");
    if (!area) return area.error();
    auto h = digest(md, {*area});
    if (!h) return h.error();
    Bytes name;
    put_be16(name, pub.nameAlg);
    name.insert(name.end(), h->begin(), h->end());
    return name;
}

Result<Bytes> marshal_pcr_selection(const TPML_PCR_SELECTION& sel) {
    return marshal(sel, mu::TPML_PCR_SELECTION_Marshal, "a PCR selection");
}

Result<TPML_PCR_SELECTION> unmarshal_pcr_selection(ByteView data) {
    return unmarshal_all<TPML_PCR_SELECTION>(data, mu::TPML_PCR_SELECTION_Unmarshal, "TPML_PCR_SELECTION");
}

TPML_PCR_SELECTION pcr_selection(TPMI_ALG_HASH bank, const std::vector<unsigned>& pcrs) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = bank;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (unsigned p : pcrs)
        if (p < 24) sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
    return sel;
}

std::vector<unsigned> selected_pcrs(const TPML_PCR_SELECTION& sel, TPMI_ALG_HASH bank) {
    std::vector<unsigned> out;
    for (uint32_t i = 0; i < sel.count && i < TPM2_NUM_PCR_BANKS; ++i) {
        const auto& s = sel.pcrSelections[i];
        if (s.hash != bank) continue;
        for (unsigned p = 0; p < 8u * s.sizeofSelect && p / 8 < sizeof(s.pcrSelect); ++p)
            if (s.pcrSelect[p / 8] & (1u << (p % 8))) out.push_back(p);
    }
    return out;
}

std::string pcr_list_text(const std::vector<unsigned>& pcrs) {
    std::string out;
    for (unsigned p : pcrs) out += (out.empty() ? "" : ",") + std::to_string(p);
    return out.empty() ? "none" : out;
}

Result<std::vector<unsigned>> parse_pcr_list(std::string_view text) {
    std::vector<unsigned> out;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view tok = text.substr(start, comma - start);
        // At most two digits before converting: no overflow on long input.
        if (tok.empty() || tok.size() > 2 || tok.find_first_not_of("0123456789") != std::string_view::npos ||
            std::stoul(std::string(tok)) > 23)
            return make_error(rc::kBadParameter, "bad PCR '" + std::string(tok) + "' (0-23)");
        out.push_back(static_cast<unsigned>(std::stoul(std::string(tok))));
        start = comma + 1;
    }
    return out;
}

Result<Bytes> policy_pcr_digest(const TPML_PCR_SELECTION& sel, ByteView pcr_digest) {
    auto s = marshal_pcr_selection(sel);
    if (!s) return s.error();
    const Bytes zero(32, 0);
    Bytes cc;
    put_be32(cc, TPM2_CC_PolicyPCR);
    return digest(EVP_sha256(), {zero, cc, *s, pcr_digest});
}

Result<AuthKeyPolicy> authkey_policy(const TPML_PCR_SELECTION& sel, ByteView pcr_digest) {
    auto pcr = policy_pcr_digest(sel, pcr_digest);
    if (!pcr) return pcr.error();
    Bytes cc_code, cc_sign, cc_certify, cc_or, cc_auth;
    put_be32(cc_code, TPM2_CC_PolicyCommandCode);
    put_be32(cc_sign, TPM2_CC_Sign);
    put_be32(cc_certify, TPM2_CC_Certify);
    put_be32(cc_or, TPM2_CC_PolicyOR);
    put_be32(cc_auth, TPM2_CC_PolicyAuthValue);
    auto sign_cc = digest(EVP_sha256(), {*pcr, cc_code, cc_sign});
    auto certify_cc = digest(EVP_sha256(), {*pcr, cc_code, cc_certify});
    if (!sign_cc || !certify_cc) return make_error(rc::kFail, "digest failed");
    auto sign = digest(EVP_sha256(), {*sign_cc, cc_auth});
    auto certify = digest(EVP_sha256(), {*certify_cc, cc_auth});
    if (!sign || !certify) return make_error(rc::kFail, "digest failed");
    const Bytes zero(32, 0);
    auto all = digest(EVP_sha256(), {zero, cc_or, *sign, *certify});
    if (!all) return all.error();
    return AuthKeyPolicy{*sign, *certify, *all};
}

Result<Bytes> policy_authorize_digest(ByteView signer_name, std::string_view policy_ref) {
    const Bytes zero(32, 0);
    Bytes cc;
    put_be32(cc, TPM2_CC_PolicyAuthorize);
    auto first = digest(EVP_sha256(), {zero, cc, signer_name});
    if (!first) return first.error();
    return digest(EVP_sha256(), {*first, as_bytes(policy_ref)});
}

Bytes approval_message(ByteView approved, std::string_view policy_ref) {
    Bytes m(approved.begin(), approved.end());
    const ByteView ref = as_bytes(policy_ref);
    m.insert(m.end(), ref.begin(), ref.end());
    return m;
}

Result<Bytes> unseal_policy(const TPML_PCR_SELECTION& sel, ByteView pcr_digest) {
    auto pcr = policy_pcr_digest(sel, pcr_digest);
    if (!pcr) return pcr.error();
    Bytes tail;
    put_be32(tail, TPM2_CC_PolicyCommandCode);
    put_be32(tail, TPM2_CC_Unseal);
    return digest(EVP_sha256(), {*pcr, tail});
}

Bytes user_binding(ByteView user_cert_der, ByteView nonce) {
    auto d = digest(EVP_sha256(), {user_cert_der, nonce});
    return d ? *d : Bytes{};
}

Result<TPMS_ATTEST> parse_attest(ByteView attest) {
    return unmarshal_all<TPMS_ATTEST>(attest, mu::TPMS_ATTEST_Unmarshal, "TPMS_ATTEST");
}

Result<TPMT_SIGNATURE> unmarshal_signature(ByteView data) {
    return unmarshal_all<TPMT_SIGNATURE>(data, mu::TPMT_SIGNATURE_Unmarshal, "TPMT_SIGNATURE");
}

Result<Bytes> marshal_signature(const TPMT_SIGNATURE& sig) {
    return marshal(sig, mu::TPMT_SIGNATURE_Marshal, "a signature");
}

Result<Bytes> ecdsa_der(const TPMS_SIGNATURE_ECC& sig) {
    using SigPtr = std::unique_ptr<ECDSA_SIG, vtpm::OsslDeleter<ECDSA_SIG_free>>;
    SigPtr s(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(sig.signatureR.buffer, sig.signatureR.size, nullptr);
    BIGNUM* ss = BN_bin2bn(sig.signatureS.buffer, sig.signatureS.size, nullptr);
    if (!s || !r || !ss || ECDSA_SIG_set0(s.get(), r, ss) != 1) {
        BN_free(r);
        BN_free(ss);
        return make_error(rc::kFail, "out of memory");
    }
    unsigned char* der = nullptr;
    const int n = i2d_ECDSA_SIG(s.get(), &der);
    if (n <= 0) return make_error(rc::kFail, "cannot encode an ECDSA signature");
    Bytes out(der, der + n);
    OPENSSL_free(der);
    return out;
}

Result<void> verify_signature(EVP_PKEY* key, ByteView data, const TPMT_SIGNATURE& sig) {
    TPMI_ALG_HASH halg = TPM2_ALG_NULL;
    Bytes sigbytes;
    int padding = 0;
    switch (sig.sigAlg) {
        case TPM2_ALG_ECDSA: {
            halg = sig.signature.ecdsa.hash;
            auto der = ecdsa_der(sig.signature.ecdsa);
            if (!der) return der.error();
            sigbytes = std::move(*der);
            if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
                return make_error(rc::kFail, "an ECDSA signature but the key is not an EC key");
            break;
        }
        case TPM2_ALG_RSASSA:
        case TPM2_ALG_RSAPSS:
            halg = sig.signature.rsassa.hash;
            sigbytes.assign(sig.signature.rsassa.sig.buffer,
                            sig.signature.rsassa.sig.buffer + sig.signature.rsassa.sig.size);
            padding = sig.sigAlg == TPM2_ALG_RSASSA ? RSA_PKCS1_PADDING : RSA_PKCS1_PSS_PADDING;
            if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
                return make_error(rc::kFail, "an RSA signature but the key is not an RSA key");
            break;
        default:
            return make_error(rc::kFail, "unsupported signature scheme " + hex32(sig.sigAlg));
    }
    const EVP_MD* md = hash_md(halg);
    if (!md || halg == TPM2_ALG_SHA1) return make_error(rc::kFail, "unsupported signature hash " + hex32(halg));
    vtpm::MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) != 1)
        return make_error(rc::kFail, vtpm::ossl_error("cannot start signature verification"));
    if (padding) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, padding);
        if (padding == RSA_PKCS1_PSS_PADDING) EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO);
    }
    if (EVP_DigestVerify(ctx.get(), sigbytes.data(), sigbytes.size(), data.data(), data.size()) != 1) {
        (void)vtpm::ossl_error("");  // clear the queue
        return make_error(rc::kFail, "the signature does not verify with the expected key");
    }
    return {};
}

}  // namespace vtpm::tpm
