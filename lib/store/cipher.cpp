// swtpm's AES-CBC blob encryption (state-format.md §2.4) on OpenSSL 3.
#include "store/cipher.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

#include <memory>

#include "store/blob.hpp"

namespace vtpm::store {
namespace {

struct CtxFree {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

constexpr size_t kAesBlock = 16;
constexpr size_t kHmacLen = 32;

Result<void> check_key(const Key& key) {
    if (key.bytes.size() != 16 && key.bytes.size() != 32)
        return make_error(rc::kBadKeyProperty, "key must be 16 or 32 bytes, not " + std::to_string(key.bytes.size()));
    return {};
}

const EVP_CIPHER* cipher_for(const Key& key) { return key.is256() ? EVP_aes_256_cbc() : EVP_aes_128_cbc(); }

// AES-CBC without OpenSSL padding; `in` is a multiple of the block size.
Result<SecureBytes> cbc(const Key& key, const uint8_t* iv, ByteView in, bool encrypt) {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return make_error(rc::kFail, "out of memory");
    if (EVP_CipherInit_ex(ctx.get(), cipher_for(key), nullptr, key.bytes.data(), iv, encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1)
        return make_error(encrypt ? rc::kEncryptError : rc::kDecryptError, "AES-CBC setup failed");
    SecureBytes out(in.size() + kAesBlock);
    int n1 = 0, n2 = 0;
    if (EVP_CipherUpdate(ctx.get(), out.data(), &n1, in.data(), static_cast<int>(in.size())) != 1 ||
        EVP_CipherFinal_ex(ctx.get(), out.data() + n1, &n2) != 1)
        return make_error(encrypt ? rc::kEncryptError : rc::kDecryptError, "AES-CBC failed");
    out.resize(static_cast<size_t>(n1 + n2));
    return out;
}

// HMAC-SHA256 keyed with the AES key over a || b (ciphertext || IV).
Result<Bytes> hmac(const Key& key, ByteView a, ByteView b) {
    std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> alg(EVP_MAC_fetch(nullptr, "HMAC", nullptr), EVP_MAC_free);
    if (!alg) return make_error(rc::kFail, "HMAC unavailable");
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(alg.get()), EVP_MAC_CTX_free);
    if (!ctx) return make_error(rc::kFail, "out of memory");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
    Bytes mac(kHmacLen);
    size_t outl = 0;
    if (EVP_MAC_init(ctx.get(), key.bytes.data(), key.bytes.size(), params) != 1 ||
        EVP_MAC_update(ctx.get(), a.data(), a.size()) != 1 || EVP_MAC_update(ctx.get(), b.data(), b.size()) != 1 ||
        EVP_MAC_final(ctx.get(), mac.data(), &outl, mac.size()) != 1 || outl != kHmacLen)
        return make_error(rc::kFail, "HMAC-SHA256 failed");
    return mac;
}

}  // namespace

Result<Bytes> encrypt_to_tlvs(const Key& key, ByteView plain, uint16_t ct_tag, uint16_t iv_tag) {
    if (auto k = check_key(key); !k) return k.error();
    const size_t kl = key.bytes.size();
    // swtpm pads to a multiple of the key length with p bytes of value p.
    const size_t pad = kl - plain.size() % kl;
    SecureBytes padded(plain);
    padded.resize(plain.size() + pad);
    for (size_t i = plain.size(); i < padded.size(); ++i) padded[i] = static_cast<uint8_t>(pad);
    Bytes iv(kl);
    if (RAND_bytes(iv.data(), static_cast<int>(iv.size())) != 1)
        return make_error(rc::kEncryptError, "no random bytes for the IV");
    auto ct = cbc(key, iv.data(), padded, true);
    if (!ct) return ct.error();
    auto mac = hmac(key, *ct, iv);
    if (!mac) return mac.error();
    Bytes out;
    out.reserve(ct->size() + mac->size() + iv.size() + 18);
    append_tlv(out, ct_tag, *ct);
    append_tlv(out, kTagHmac, *mac);
    append_tlv(out, iv_tag, iv);
    return out;
}

Result<SecureBytes> decrypt_from_tlvs(const Key& key, ByteView tlvs, uint16_t ct_tag, uint16_t iv_tag) {
    if (auto k = check_key(key); !k) return k.error();
    auto ct = find_tlv(tlvs, ct_tag);
    if (!ct) return make_error(rc::kFail, "encrypted data record missing (is the blob encrypted at all?)");
    auto mac = find_tlv(tlvs, kTagHmac);
    if (!mac) return make_error(rc::kFail, "HMAC record missing");
    auto iv_rec = find_tlv(tlvs, iv_tag);
    ByteView iv = iv_rec ? *iv_rec : ByteView{};
    auto expect = hmac(key, *ct, iv);
    if (!expect) return expect.error();
    if (mac->size() != kHmacLen || CRYPTO_memcmp(mac->data(), expect->data(), kHmacLen) != 0)
        return make_error(rc::kDecryptError, "HMAC check failed: wrong key or tampered data");
    if (ct->empty() || ct->size() % kAesBlock != 0)
        return make_error(rc::kDecryptError, "ciphertext length is not a multiple of the AES block");
    uint8_t ivbuf[kAesBlock] = {};
    if (iv_rec) {
        if (iv.size() < kAesBlock) return make_error(rc::kDecryptError, "IV shorter than the AES block");
        std::copy(iv.begin(), iv.begin() + kAesBlock, ivbuf);
    }
    auto plain = cbc(key, ivbuf, *ct, false);
    if (!plain) return plain.error();
    const size_t pad = plain->empty() ? 0 : (*plain)[plain->size() - 1];
    if (pad < 1 || pad > key.bytes.size() || pad > plain->size())
        return make_error(rc::kDecryptError, "bad padding after decryption");
    for (size_t i = plain->size() - pad; i < plain->size(); ++i)
        if ((*plain)[i] != pad) return make_error(rc::kDecryptError, "bad padding after decryption");
    plain->resize(plain->size() - pad);
    return plain;
}

Result<SecureBytes> decrypt_legacy_v1(const Key& key, ByteView payload) {
    if (auto k = check_key(key); !k) return k.error();
    if (payload.empty() || payload.size() % kAesBlock != 0)
        return make_error(rc::kDecryptError, "legacy encrypted file has a bad length");
    const uint8_t zero_iv[kAesBlock] = {};
    auto plain = cbc(key, zero_iv, payload, false);
    if (!plain) return plain.error();
    const size_t pad = (*plain)[plain->size() - 1];
    if (pad < 1 || pad > key.bytes.size() || pad > plain->size())
        return make_error(rc::kDecryptError, "bad padding in legacy encrypted file");
    plain->resize(plain->size() - pad);
    if (plain->size() < 32) return make_error(rc::kDecryptError, "legacy encrypted file too short");
    uint8_t digest[32];
    unsigned dl = 0;
    if (EVP_Digest(plain->data() + 32, plain->size() - 32, digest, &dl, EVP_sha256(), nullptr) != 1 ||
        CRYPTO_memcmp(digest, plain->data(), 32) != 0)
        return make_error(rc::kDecryptError, "legacy encrypted file: hash check failed (wrong key?)");
    return SecureBytes(ByteView(plain->data() + 32, plain->size() - 32));
}

}  // namespace vtpm::store
