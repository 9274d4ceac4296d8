#include "tpm/public_key.hpp"

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

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

}  // namespace vtpm::tpm
