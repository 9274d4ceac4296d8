#include "tpm/public_key.hpp"

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

#include <string_view>

namespace vtpm::tpm {

namespace {

using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, OsslDeleter<OSSL_PARAM_BLD_free>>;
using ParamsPtr = std::unique_ptr<OSSL_PARAM, OsslDeleter<OSSL_PARAM_free>>;

Result<PkeyPtr> from_params(const char* type, OSSL_PARAM_BLD* bld) {
    ParamsPtr params(OSSL_PARAM_BLD_to_param(bld));
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
        return make_error(rc::kFail, ossl_error(std::string("could not build the ") + type + " public key"));
    return PkeyPtr(raw);
}

}  // namespace

Result<PkeyPtr> pkey_from_rsa_modulus(ByteView modulus, uint32_t exponent) {
    BnPtr n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
    BnPtr e(BN_new());
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (!n || !e || !bld || !BN_set_word(e.get(), exponent) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()))
        return make_error(rc::kFail, "out of memory");
    return from_params("RSA", bld.get());
}

Result<PkeyPtr> pkey_from_tpm_public(const TPMT_PUBLIC& pub) {
    if (pub.type == TPM2_ALG_RSA) {
        const auto& rsa = pub.unique.rsa;
        const uint32_t exp = pub.parameters.rsaDetail.exponent ? pub.parameters.rsaDetail.exponent : 65537;
        return pkey_from_rsa_modulus(ByteView(rsa.buffer, rsa.size), exp);
    }
    if (pub.type == TPM2_ALG_ECC) {
        const char* curve = nullptr;
        switch (pub.parameters.eccDetail.curveID) {
            case TPM2_ECC_NIST_P256: curve = "P-256"; break;
            case TPM2_ECC_NIST_P384: curve = "P-384"; break;
            case TPM2_ECC_NIST_P521: curve = "P-521"; break;
            default: return make_error(rc::kBadParameter, "unsupported ECC curve in the TPM public area");
        }
        const auto& x = pub.unique.ecc.x;
        const auto& y = pub.unique.ecc.y;
        Bytes point{0x04};  // uncompressed
        point.insert(point.end(), x.buffer, x.buffer + x.size);
        point.insert(point.end(), y.buffer, y.buffer + y.size);
        ParamBldPtr bld(OSSL_PARAM_BLD_new());
        if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()))
            return make_error(rc::kFail, "out of memory");
        return from_params("EC", bld.get());
    }
    return make_error(rc::kBadParameter, "the TPM public area is neither RSA nor ECC");
}

Result<PkeyPtr> parse_pem_key(ByteView pem, bool want_private, const std::string& what) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key && !want_private) {
        ERR_clear_error();
        bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        key.reset(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    }
    if (!key) return make_error(rc::kFail, ossl_error(what + (want_private ? " holds no private key" : " holds no key")));
    return key;
}

Result<TPMT_PUBLIC> owner_public(EVP_PKEY* key) {
    char group[32] = {};
    size_t glen = 0;
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1 ||
        std::string_view(group, glen) != "prime256v1")
        return make_error(rc::kBadParameter, "the owner policy key must be an EC P-256 key (openssl genpkey "
                                             "-algorithm EC -pkeyopt ec_paramgen_curve:P-256)");
    BIGNUM* xr = nullptr;
    BIGNUM* yr = nullptr;
    const bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &xr) == 1 &&
                     EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &yr) == 1;
    BnPtr x(xr), y(yr);
    if (!got) return make_error(rc::kFail, ossl_error("the owner key's public point"));
    TPMT_PUBLIC p{};
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 32;
    p.unique.ecc.y.size = 32;
    if (BN_bn2binpad(x.get(), p.unique.ecc.x.buffer, 32) != 32 || BN_bn2binpad(y.get(), p.unique.ecc.y.buffer, 32) != 32)
        return make_error(rc::kFail, "the owner key's public point does not fit P-256");
    return p;
}

Result<TPMT_SIGNATURE> sign_ecdsa_sha256(EVP_PKEY* key, ByteView message) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1)
        return make_error(rc::kFail, ossl_error("signing with the owner key"));
    Bytes der(len);
    if (EVP_DigestSign(ctx.get(), der.data(), &len, message.data(), message.size()) != 1)
        return make_error(rc::kFail, ossl_error("signing with the owner key"));
    const unsigned char* p = der.data();
    std::unique_ptr<ECDSA_SIG, OsslDeleter<ECDSA_SIG_free>> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
    if (!sig) return make_error(rc::kFail, ossl_error("the owner key's signature"));
    TPMT_SIGNATURE out{};
    out.sigAlg = TPM2_ALG_ECDSA;
    out.signature.ecdsa.hash = TPM2_ALG_SHA256;
    auto& r = out.signature.ecdsa.signatureR;
    auto& s = out.signature.ecdsa.signatureS;
    r.size = s.size = 32;
    if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), r.buffer, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), s.buffer, 32) != 32)
        return make_error(rc::kFail, "the owner key's signature does not fit P-256");
    return out;
}

}  // namespace vtpm::tpm
