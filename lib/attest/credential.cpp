#include "attest/credential.hpp"

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <cstring>

namespace vtpm::attest {

namespace {

Bytes hmac_sha256(ByteView key, ByteView data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out, &n);
    return Bytes(out, out + n);
}

}  // namespace

Bytes kdfa_sha256(ByteView key, std::string_view label, ByteView context_u, ByteView context_v, uint32_t bits) {
    Bytes out;
    const size_t want = (bits + 7) / 8;
    for (uint32_t counter = 1; out.size() < want; ++counter) {
        Bytes in;
        put_be32(in, counter);
        in.insert(in.end(), label.begin(), label.end());
        in.push_back(0);  // the label's terminating zero is part of it
        in.insert(in.end(), context_u.begin(), context_u.end());
        in.insert(in.end(), context_v.begin(), context_v.end());
        put_be32(in, bits);
        Bytes h = hmac_sha256(key, in);
        out.insert(out.end(), h.begin(), h.end());
    }
    out.resize(want);
    return out;
}

Result<Credential> make_credential(EVP_PKEY* ek, ByteView name, ByteView secret) {
    if (EVP_PKEY_get_base_id(ek) != EVP_PKEY_RSA)
        return make_error(rc::kBadParameter, "only RSA EKs are supported for credential activation");
    if (secret.size() > 32) return make_error(rc::kBadParameter, "credential secret longer than 32 bytes");
    Credential c;
    // Seed, encrypted to the EK with OAEP(SHA-256), label "IDENTITY\0".
    uint8_t seed[32];
    if (RAND_bytes(seed, sizeof seed) != 1) return make_error(rc::kFail, "no random bytes");
    vtpm::PkeyCtxPtr ctx(EVP_PKEY_CTX_new(ek, nullptr));
    static const char kLabel[] = "IDENTITY";
    // OpenSSL takes ownership of the label copy.
    auto* label = static_cast<unsigned char*>(OPENSSL_memdup(kLabel, sizeof kLabel));
    size_t outlen = sizeof c.secret.secret;
    if (!ctx || !label || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof kLabel) != 1) {
        OPENSSL_free(label);
        return make_error(rc::kFail, vtpm::ossl_error("cannot set up OAEP for the EK"));
    }
    if (EVP_PKEY_encrypt(ctx.get(), c.secret.secret, &outlen, seed, sizeof seed) != 1)
        return make_error(rc::kFail, vtpm::ossl_error("cannot encrypt to the EK"));
    c.secret.size = static_cast<UINT16>(outlen);

    // encIdentity = AES-128-CFB(KDFa(seed, "STORAGE", name), iv 0, TPM2B credential).
    const Bytes sym = kdfa_sha256(ByteView(seed, sizeof seed), "STORAGE", name, {}, 128);
    Bytes plain;
    put_be16(plain, static_cast<uint16_t>(secret.size()));
    plain.insert(plain.end(), secret.begin(), secret.end());
    Bytes enc(plain.size());
    using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, vtpm::OsslDeleter<EVP_CIPHER_CTX_free>>;
    CipherCtxPtr cctx(EVP_CIPHER_CTX_new());
    const uint8_t iv[16] = {};
    int n1 = 0, n2 = 0;
    if (!cctx || EVP_EncryptInit_ex(cctx.get(), EVP_aes_128_cfb(), nullptr, sym.data(), iv) != 1 ||
        EVP_EncryptUpdate(cctx.get(), enc.data(), &n1, plain.data(), static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(cctx.get(), enc.data() + n1, &n2) != 1)
        return make_error(rc::kFail, "AES-CFB failed");

    // outerHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity || name).
    const Bytes hkey = kdfa_sha256(ByteView(seed, sizeof seed), "INTEGRITY", {}, {}, 256);
    Bytes hin = enc;
    hin.insert(hin.end(), name.begin(), name.end());
    const Bytes mac = hmac_sha256(hkey, hin);
    Bytes blob;
    put_be16(blob, static_cast<uint16_t>(mac.size()));
    blob.insert(blob.end(), mac.begin(), mac.end());
    blob.insert(blob.end(), enc.begin(), enc.end());
    if (blob.size() > sizeof c.blob.credential) return make_error(rc::kFail, "credential too large");
    std::memcpy(c.blob.credential, blob.data(), blob.size());
    c.blob.size = static_cast<UINT16>(blob.size());
    OPENSSL_cleanse(seed, sizeof seed);
    return c;
}

}  // namespace vtpm::attest
